/**
 * The settings of every command (scope `database`): where PostgreSQL and the
 * outbox schema are, how long to wait for a connection, and how to log.
 */
import { duration, identifier, oneOf, setting, url } from './setting.js';

/** Settings of every command, in the order of the help text and the docs. */
export const DATABASE_SETTINGS = {
  databaseUrl: setting({
    env: 'DATABASE_URL',
    flag: 'database-url',
    scope: 'database',
    default: 'postgres://postgres@localhost:5432/postgres',
    description: 'PostgreSQL connection URL (names the user: USER may be unset)',
    parse: url(['postgres:', 'postgresql:']),
  }),
  schema: setting({
    env: 'OUTBOX_SCHEMA',
    flag: 'schema',
    scope: 'database',
    default: 'outbox',
    description: 'PostgreSQL schema that holds the outbox table and the migration bookkeeping',
    parse: identifier,
  }),
  connectTimeoutMs: setting({
    env: 'OUTBOX_CONNECT_TIMEOUT',
    flag: 'connect-timeout',
    scope: 'database',
    default: '10s',
    description: 'How long start-up waits for PostgreSQL or RabbitMQ before giving up',
    parse: duration(100, 25_000),
  }),
  logLevel: setting({
    env: 'LOG_LEVEL',
    flag: 'log-level',
    scope: 'database',
    default: 'info',
    description: 'Lowest level logged: debug, info, warn or error',
    parse: oneOf(['debug', 'info', 'warn', 'error'] as const),
  }),
  logFormat: setting({
    env: 'LOG_FORMAT',
    flag: 'log-format',
    scope: 'database',
    default: 'json',
    description:
      'json: one JSON object per line (pino), for log shippers; pretty: coloured lines for a terminal',
    parse: oneOf(['json', 'pretty'] as const),
  }),
} as const;
