/**
 * The claim's SQL files and the one mapping from ClaimParams to their psql
 * variables: every variable a file uses gets a value, every value is used,
 * and the text sent to PostgreSQL has positional parameters only.
 */
import { describe, expect, it } from 'vitest';
import {
  claimStatements,
  claimTenantsVariables,
  claimVariables,
  defaultClaimParams,
} from '../../src/outbox/claim-sql.js';
import {
  bindSqlFile,
  psqlSetLines,
  SCHEMA_VARIABLE,
  sqlSource,
  sqlVariables,
} from '../../src/outbox/sql-file.js';

const params = defaultClaimParams('00000000-0000-0000-0000-000000000001', {
  inFlight: ['7', '9'],
  skippedTenants: ['p'],
});
const locked = { tenants: ['a', 'b'], walked_limit: true };

const FILES = [
  { file: 'claim-tenants.sql', variables: claimTenantsVariables(params) },
  { file: 'claim.sql', variables: claimVariables(params, locked) },
] as const;

describe.each(FILES)('sql/$file', ({ file, variables }) => {
  it('uses exactly the variables the mapping gives a value (and the schema)', () => {
    const used = sqlVariables(sqlSource(file));
    expect(new Set(used)).toEqual(new Set([SCHEMA_VARIABLE, ...Object.keys(variables)]));
  });

  it('becomes a text with $1 … $n, one per variable, and none of psql syntax left', () => {
    const statement =
      file === 'claim.sql'
        ? claimStatements('outbox').claim
        : claimStatements('outbox').claimTenants;
    const code = statement.text.replace(/--[^\n]*/g, '');
    expect(code).not.toMatch(/(?<!:):['"][a-z_]+['"]/);
    expect(code).not.toMatch(/;\s*$/);
    const used = new Set([...code.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
    const count = Object.keys(variables).length;
    expect(used).toEqual(new Set(Array.from({ length: count }, (_, i) => i + 1)));
    expect(code).toContain('"outbox".messages');
    expect(statement.values(variables as never)).toHaveLength(count);
  });
});

describe('the claim mapping', () => {
  it('maps ClaimParams to the values the claim sends, in $n order', () => {
    const { claim, claimTenants } = claimStatements('outbox');
    expect(claimTenants.values(claimTenantsVariables(params))).toEqual([
      params.relayId,
      '',
      100,
      ['p'],
    ]);
    expect(claim.values(claimVariables(params, locked))).toEqual([
      params.relayId,
      ['a', 'b'],
      true,
      10,
      500,
      60,
      '{7,9}',
      true,
    ]);
  });

  it('refuses a file variable the mapping has no value for', () => {
    expect(() => bindSqlFile<{ relay_id: string }>('claim.sql', 'outbox', ['relay_id'])).toThrow(
      /uses variable 'tenants', which has no value/,
    );
  });
});

describe('psqlSetLines', () => {
  it('quotes values as psql meta-commands read them, arrays as array literals', () => {
    expect(
      psqlSetLines({ schema: 'outbox', tenants: [`o'b "x" \\y`, 't1'], n: 5, on: false }),
    ).toBe(
      [
        "\\set schema 'outbox'",
        `\\set tenants '{"o''b \\\\"x\\\\" \\\\\\\\y","t1"}'`,
        "\\set n '5'",
        "\\set on 'false'",
        '',
      ].join('\n'),
    );
  });
});
