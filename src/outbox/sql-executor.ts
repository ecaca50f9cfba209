/**
 * Runs outbox SQL on whatever the caller hands us: a transaction (or client,
 * or pool) of pg, Kysely, Knex, Drizzle, postgres.js, TypeORM, Sequelize,
 * MikroORM or Prisma. Each is recognised by shape in src/outbox/client-adapters.ts.
 */
import { UnsupportedExecutorError } from '../errors.js';
import { CLIENT_ADAPTERS } from './client-adapters.js';
import type { SqlExecutor } from './sql-executor-port.js';

/** The port, declared in its own file; re-exported so callers need one import. */
export type { SqlExecutor } from './sql-executor-port.js';

/** "a pg Client…, a Kysely transaction…, …": what `enqueue` accepts. */
const ACCEPTED = CLIENT_ADAPTERS.map((adapter) => adapter.accepts).join('; ');

/** What a value is, for an error message: its type, class or keys. */
function describeValue(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'function') {
    return value.name ? `a function named ${value.name}` : 'an anonymous function';
  }
  if (typeof value !== 'object') return `a ${typeof value}`;
  const constructorName = (value as { constructor?: { name?: unknown } }).constructor?.name;
  if (typeof constructorName === 'string' && constructorName !== 'Object') {
    return `an instance of ${constructorName}`;
  }
  const keys = Object.keys(value);
  if (keys.length === 0) return 'an empty object';
  const shown = keys.slice(0, 5).join(', ');
  return `an object with keys ${shown}${keys.length > 5 ? ', …' : ''}`;
}

function unsupported(value: unknown, holder?: string): UnsupportedExecutorError {
  const what = `${holder ? `${holder} is ` : ''}${describeValue(value)}`;
  return new UnsupportedExecutorError(
    `enqueue's executor is ${what}, which outbox-relay cannot run SQL on. Pass one of: ${ACCEPTED}`,
  );
}

function resolve(value: unknown, holder?: string): SqlExecutor {
  const adapter = CLIENT_ADAPTERS.find((candidate) => candidate.matches(value));
  if (!adapter) throw unsupported(value, holder);
  return adapter.wrap(value, resolve);
}

/**
 * Wraps a supported client or transaction. Throws {@link UnsupportedExecutorError}
 * (field `executor`) naming what was passed and listing what is accepted.
 */
export function toSqlExecutor(value: unknown): SqlExecutor {
  return resolve(value);
}
