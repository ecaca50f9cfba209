/**
 * Statements kept as SQL files (`sql/*.sql`, shipped with the package like
 * `migrations/`) that a person can paste into psql: their parameters are psql
 * variables, `:'name'` for a value and `:"schema"` for the schema's
 * identifier. This module reads each file once and turns it into the text
 * sent to PostgreSQL: `:'name'` becomes `$n` (n from the variable order the
 * caller gives), `:"schema"` the quoted schema and `:'schema'` its string
 * literal (the schema is fixed per store, so it is written into the text, as
 * it always was); the file's header comment is left out. It also prints
 * variables as psql `\set` lines, so the same file runs by hand with the
 * values the code would send.
 */
import { readFileSync } from 'node:fs';
import { quoteIdent, quoteLiteral } from './outbox-tables.js';

/** `<package>/sql/`: next to `src/` and `dist/`, as `migrations/` is. */
export const SQL_DIR = new URL('../../sql/', import.meta.url);

/** The variable the schema is bound to, as an identifier (`:"schema"`) and as a literal (`:'schema'`). */
export const SCHEMA_VARIABLE = 'schema';

/** A psql variable reference: `:'name'` or `:"name"` (not the `::` of a cast). */
const VARIABLE = /(?<!:):(['"])([a-z_][a-z0-9_]*)\1/g;

const sources = new Map<string, string>();

/** The text of `sql/<file>`, read on first use. */
export function sqlSource(file: string): string {
  let text = sources.get(file);
  if (text === undefined) {
    text = readFileSync(new URL(file, SQL_DIR), 'utf8');
    sources.set(file, text);
  }
  return text;
}

/** The variables `text` refers to, each once, in order of first use. */
export function sqlVariables(text: string): string[] {
  const names = new Set<string>();
  for (const match of withoutComments(text).matchAll(VARIABLE)) names.add(match[2] as string);
  return [...names];
}

/** `text` with its `--` comments blanked (psql substitutes no variables there). */
function withoutComments(text: string): string {
  return text.replace(/--[^\n]*/g, '');
}

/** A statement from a SQL file, bound to one schema. */
export interface SqlFileStatement<V> {
  /** The file, under `sql/`. */
  readonly file: string;
  /** The text sent to PostgreSQL: `$1` … in place of the variables. */
  readonly text: string;
  /** The variables in `$n` order (the schema is in the text). */
  readonly variables: readonly (keyof V & string)[];
  /** The positional values of `variables`, in `$n` order. */
  values(variables: V): unknown[];
}

/**
 * Reads `sql/<file>` and binds it to `schema`; `order` lists its variables
 * (all but the schema) in `$n` order. A variable the file uses and `order`
 * lacks is an error here, at startup.
 */
export function bindSqlFile<V extends object>(
  file: string,
  schema: string,
  order: readonly (keyof V & string)[],
): SqlFileStatement<V> {
  const source = sqlSource(file);
  const position = new Map<string, number>(order.map((name, index) => [name, index + 1]));
  const lines = source.split('\n');
  // The file's header (its comment for a reader) stays out of the text sent:
  // pg_stat_activity shows a statement's first 1 kB, which should be SQL.
  while (lines.length > 0 && /^\s*(--.*)?$/.test(lines[0] as string)) lines.shift();
  const text = lines
    .map((line) => {
      const comment = line.indexOf('--');
      const code = comment === -1 ? line : line.slice(0, comment);
      const rest = comment === -1 ? '' : line.slice(comment);
      return (
        code.replace(VARIABLE, (_, quote: string, name: string) => {
          if (name === SCHEMA_VARIABLE)
            return quote === '"' ? quoteIdent(schema) : quoteLiteral(schema);
          const n = position.get(name);
          if (quote === '"' || n === undefined) {
            throw new Error(
              `sql/${file} uses variable ${quote}${name}${quote}, which has no value`,
            );
          }
          return `$${n}`;
        }) + rest
      );
    })
    .join('\n')
    .trim()
    .replace(/;$/, '');
  return {
    file,
    text,
    variables: order,
    values: (variables) => order.map((name) => variables[name]),
  };
}

/** `value` as psql's `\set` and `:'name'` take it: arrays as PostgreSQL array literals. */
export function psqlValue(value: unknown): string {
  if (Array.isArray(value)) return `{${value.map(arrayElement).join(',')}}`;
  return String(value);
}

function arrayElement(value: unknown): string {
  return `"${String(value).replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** psql `\set` lines for `variables` (their values quoted as psql meta-commands read them). */
export function psqlSetLines(variables: Readonly<Record<string, unknown>>): string {
  return Object.entries(variables)
    .map(([name, value]) => {
      const quoted = psqlValue(value).replace(/\\/g, '\\\\').replace(/'/g, "''");
      return `\\set ${name} '${quoted}'\n`;
    })
    .join('');
}
