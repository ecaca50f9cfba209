/**
 * Every database client `enqueue` can run on, each recognised by shape (never
 * `instanceof`: the application may load its own copy of any library) and
 * adapted to one parameterised statement with rows back. The only code in
 * outbox-relay that knows these libraries; none is imported but Kysely, a
 * dependency of outbox-relay, for its CompiledQuery, and only once a Kysely
 * executor is passed (it is most of what importing enqueue would cost).
 *
 * Each adapter keeps the caller's transaction: it runs the statement on the
 * object that holds it (the pg client after `begin`, the Knex or Sequelize
 * transaction, the connection under a Drizzle or MikroORM transaction), so the
 * row commits or rolls back with the caller's own writes.
 *
 * Order matters, most distinctive shape first (see `CLIENT_ADAPTERS`).
 */
import type { SqlExecutor } from './sql-executor-port.js';

let compiledQuery: Promise<typeof import('kysely').CompiledQuery> | undefined;

/** Kysely's CompiledQuery, loaded on first use. */
function loadCompiledQuery(): Promise<typeof import('kysely').CompiledQuery> {
  compiledQuery ??= import('kysely').then((kysely) => kysely.CompiledQuery);
  return compiledQuery;
}

/** Turns the client held inside a wrapper (Drizzle, MikroORM) into an executor. */
export type InnerExecutor = (client: unknown, holder: string) => SqlExecutor;

/** One client library: how to recognise its objects and run a statement on them. */
export interface ClientAdapter {
  /** What the caller passes, for error messages: "a Knex transaction". */
  readonly accepts: string;
  matches(value: unknown): boolean;
  wrap(value: unknown, inner: InnerExecutor): SqlExecutor;
}

type Methods = Record<string, unknown>;

/** True when `value[key]` is a function (for objects and functions alike). */
function hasMethod(value: unknown, key: string): boolean {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return false;
  return typeof (value as Methods)[key] === 'function';
}

function call<T>(value: unknown, key: string, ...args: unknown[]): T {
  return ((value as Methods)[key] as (...a: unknown[]) => T).apply(value, args);
}

/**
 * `$1`-style text to `?` placeholders for Knex, with the values in placeholder
 * order (a `$n` may repeat). A literal `?` is escaped so Knex leaves it alone.
 * Knex's raw binds an array as one parameter, as `$7::bytea[]` needs. (The
 * outbox statements hold no `$` in literals, which this would misread.)
 */
function toQuestionMarks(text: string, values: readonly unknown[]): [string, unknown[]] {
  const ordered: unknown[] = [];
  const sql = text.replace(/\?/g, '\\?').replace(/\$(\d+)/g, (_, n: string) => {
    ordered.push(values[Number(n) - 1]);
    return '?';
  });
  return [sql, ordered];
}

// Without the caller's plugins: a CamelCasePlugin would rename the columns
// the statement returns (message_id to messageId).
const kysely: ClientAdapter = {
  accepts: 'a Kysely instance or transaction',
  matches: (v) => hasMethod(v, 'executeQuery') && hasMethod(v, 'selectFrom'),
  wrap: (v) => ({
    async run<Row>(text: string, values: readonly unknown[]) {
      const CompiledQuery = await loadCompiledQuery();
      const result = await call<Promise<{ rows: Row[] }>>(
        hasMethod(v, 'withoutPlugins') ? call(v, 'withoutPlugins') : v,
        'executeQuery',
        CompiledQuery.raw(text, [...values]),
      );
      return result.rows;
    },
  }),
};

const prisma: ClientAdapter = {
  accepts: 'a Prisma interactive transaction (tx in $transaction(async (tx) => …)) or client',
  matches: (v) => hasMethod(v, '$queryRawUnsafe'),
  wrap: (v) => ({
    run: <Row>(text: string, values: readonly unknown[]) =>
      call<Promise<Row[]>>(v, '$queryRawUnsafe', text, ...values),
  }),
};

// MikroORM 6 keeps an open transaction as a Knex transaction on the
// EntityManager (the one `em.transactional()` hands over, or after em.begin()).
const mikroOrm: ClientAdapter = {
  accepts: 'a MikroORM EntityManager (the em in em.transactional(async (em) => …))',
  matches: (v) => hasMethod(v, 'getTransactionContext') && hasMethod(v, 'getConnection'),
  wrap: (v, inner) =>
    inner(
      call<unknown>(v, 'getTransactionContext') ?? call<unknown>(v, 'getKnex'),
      'a MikroORM EntityManager whose transaction',
    ),
};

// Drizzle exposes no parameterised raw statement without its own `sql`
// template, so the statement goes to the driver client its session holds
// (inside a transaction: the connection that runs it).
const drizzle: ClientAdapter = {
  accepts: 'a Drizzle transaction or database (node-postgres or postgres.js driver)',
  matches: (v) =>
    hasMethod(v, 'transaction') &&
    hasMethod(v, 'execute') &&
    typeof (v as { session?: { client?: unknown } }).session?.client !== 'undefined',
  wrap: (v, inner) =>
    inner((v as { session: { client: unknown } }).session.client, 'a Drizzle session whose client'),
};

const knex: ClientAdapter = {
  accepts: 'a Knex transaction or instance',
  matches: (v) =>
    typeof v === 'function' &&
    hasMethod(v, 'raw') &&
    hasMethod(v, 'transaction') &&
    typeof (v as { client?: unknown }).client === 'object',
  wrap: (v) => ({
    async run<Row>(text: string, values: readonly unknown[]) {
      const [sql, bindings] = toQuestionMarks(text, values);
      const result = await call<Promise<{ rows: Row[] }>>(v, 'raw', sql, bindings);
      return result.rows;
    },
  }),
};

/** PostgreSQL's `unknown` type: the server infers the parameter's type, as for 0. */
const UNKNOWN_TYPE = 705;

/** A PostgreSQL array literal: `{"a",NULL,"\\x00ff"}` (bytes as bytea hex). */
function arrayLiteral(items: readonly unknown[]): string {
  const elements = items.map((item) => {
    if (item === null || item === undefined) return 'NULL';
    const text =
      item instanceof Uint8Array
        ? `\\x${Buffer.from(item.buffer, item.byteOffset, item.byteLength).toString('hex')}`
        : String(item);
    return `"${text.replace(/[\\"]/g, '\\$&')}"`;
  });
  return `{${elements.join(',')}}`;
}

// postgres.js picks each parameter's encoding from its type: a JS array gets
// its first element's type (a Buffer array goes as one bytea, which the
// server refuses to cast to bytea[]), and a parameter the server describes as
// jsonb is JSON.stringify'd (our JSON text would arrive as a JSON string).
// So text and arrays go as text typed `unknown`, which postgres.js sends as
// is and the server reads as the statement's type; Buffers go as bytea.
const postgresJs: ClientAdapter = {
  accepts: 'a postgres.js transaction (sql in sql.begin(async (sql) => …)) or sql',
  matches: (v) =>
    typeof v === 'function' &&
    hasMethod(v, 'unsafe') &&
    hasMethod(v, 'typed') &&
    (hasMethod(v, 'begin') || hasMethod(v, 'savepoint')),
  wrap: (v) => ({
    async run<Row>(text: string, values: readonly unknown[], name?: string) {
      const parameters = values.map((value) =>
        value === null || value instanceof Uint8Array
          ? value
          : call(
              v,
              'typed',
              Array.isArray(value) ? arrayLiteral(value) : String(value),
              UNKNOWN_TYPE,
            ),
      );
      // postgres.js names its statements itself; it prepares only when asked.
      const result = await call<Promise<Row[]>>(v, 'unsafe', text, parameters, {
        prepare: name !== undefined,
      });
      return [...result];
    },
  }),
};

// A Sequelize query joins a transaction only when handed it, so the caller
// passes the Transaction (which carries its Sequelize instance).
const sequelizeTransaction: ClientAdapter = {
  accepts: 'a Sequelize transaction (t in sequelize.transaction(async (t) => …))',
  matches: (v) =>
    hasMethod((v as { sequelize?: unknown } | null)?.sequelize, 'query') &&
    hasMethod(v, 'commit') &&
    hasMethod(v, 'rollback'),
  wrap: (v) => ({
    run: <Row>(text: string, values: readonly unknown[]) =>
      call<Promise<Row[]>>((v as { sequelize: unknown }).sequelize, 'query', text, {
        bind: [...values],
        transaction: v,
        type: 'SELECT',
        raw: true,
      }),
  }),
};

const sequelize: ClientAdapter = {
  accepts: 'a Sequelize instance (its CLS transaction, if any, or none)',
  matches: (v) =>
    hasMethod(v, 'query') && hasMethod(v, 'define') && hasMethod(v, 'getQueryInterface'),
  wrap: (v) => ({
    run: <Row>(text: string, values: readonly unknown[]) =>
      call<Promise<Row[]>>(v, 'query', text, { bind: [...values], type: 'SELECT', raw: true }),
  }),
};

// EntityManager and DataSource have getRepository, QueryRunner has
// startTransaction; all three take query(text, parameters) and return rows.
const typeOrm: ClientAdapter = {
  accepts:
    'a TypeORM EntityManager (in dataSource.transaction(async (manager) => …)) or QueryRunner',
  matches: (v) =>
    hasMethod(v, 'query') && (hasMethod(v, 'getRepository') || hasMethod(v, 'startTransaction')),
  wrap: (v) => ({
    run: <Row>(text: string, values: readonly unknown[]) =>
      call<Promise<Row[]>>(v, 'query', text, [...values]),
  }),
};

const pg: ClientAdapter = {
  accepts: 'a pg Client or PoolClient (after begin) or Pool',
  matches: (v) => typeof v === 'object' && hasMethod(v, 'query'),
  wrap: (v) => ({
    async run<Row>(text: string, values: readonly unknown[], name?: string) {
      const config =
        name === undefined ? { text, values: [...values] } : { text, values: [...values], name };
      const result = await call<Promise<{ rows: Row[] }>>(v, 'query', config);
      return result.rows;
    },
  }),
};

/**
 * The adapters, in the order they are tried. The pg check (any object with a
 * `query` method) is the catch-all and comes last: Sequelize's and TypeORM's
 * objects also have a `query` method, with another signature (handing a
 * TypeORM EntityManager a pg query config fails deep inside TypeORM), so both
 * are recognised by their own methods first. Sequelize's instance comes before
 * TypeORM's check, which it does not match today but which is loose. Kysely,
 * Prisma, MikroORM and Drizzle go before everything: their markers are
 * unique, and a Drizzle database also holds a `query` (an object). Knex and
 * postgres.js are functions, told apart by `raw` and `unsafe`.
 */
export const CLIENT_ADAPTERS: readonly ClientAdapter[] = [
  kysely,
  prisma,
  mikroOrm,
  drizzle,
  knex,
  postgresJs,
  sequelizeTransaction,
  sequelize,
  typeOrm,
  pg,
];
