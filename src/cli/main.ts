#!/usr/bin/env node
/**
 * The `outbox-relay` command. Parses the command line and environment once,
 * dispatches, and turns every failure into one line on stderr and an exit
 * code: 1 for a runtime failure, 2 for bad usage or configuration.
 */
import { type Config, loadConfig, type SettingScope } from '../config.js';
import { ConfigError, describeError, OutboxError } from '../errors.js';
import { createLogger, type Logger } from '../log/logger.js';
import {
  type ExtraFlag,
  integerFlag,
  type ParsedArgs,
  parseCommandArgs,
  stringFlag,
  stringsFlag,
  UsageError,
} from './args.js';
import { claimCommand } from './claim-command.js';
import { deadCommand } from './dead-command.js';
import { FATAL_EXIT_CODE, fatalErrorHandler } from './fatal-errors.js';
import { commandHelp, MAIN_HELP } from './help.js';
import { migrateCommand } from './migrate-command.js';
import { packageVersion } from './package-version.js';
import { purgeCommand } from './purge-command.js';
import { runCommand } from './run-command.js';
import { tenantsCommand } from './tenants-command.js';
import { printable } from './terminal-text.js';

const RUN_FLAGS: ExtraFlag[] = [
  { name: 'once', type: 'boolean', description: 'publish what is pending, then exit' },
];
const DEAD_FLAGS: ExtraFlag[] = [
  { name: 'id', type: 'string', multiple: true, description: 'a dead row by id (repeatable)' },
  { name: 'tenant', type: 'string', description: "a tenant's dead rows" },
  { name: 'all', type: 'boolean', description: 'every dead row (retry, discard)' },
  { name: 'limit', type: 'string', description: 'most rows to list (default 100)' },
  { name: 'json', type: 'boolean', description: 'print JSON for scripts (list)' },
  { name: 'yes', type: 'boolean', description: 'confirm discard, or retry --all' },
];
const TENANTS_FLAGS: ExtraFlag[] = [
  { name: 'json', type: 'boolean', description: 'print JSON for scripts' },
  {
    name: 'top',
    type: 'boolean',
    description: 'tenants by write rate: a live view (with --json, one report over one interval)',
  },
  {
    name: 'interval',
    type: 'string',
    description: 'seconds between two reads of --top (default 2)',
  },
];
const PURGE_FLAGS: ExtraFlag[] = [
  { name: 'tenant', type: 'string', description: 'the tenant whose pending events to discard' },
  {
    name: 'before',
    type: 'string',
    description: 'only events created before this time (ISO 8601; default now)',
  },
  { name: 'yes', type: 'boolean', description: 'confirm: the events are deleted for good' },
];
const CLAIM_FLAGS: ExtraFlag[] = [
  {
    name: 'explain',
    type: 'boolean',
    description: 'print one claim as a psql script that EXPLAINs it (rolled back)',
  },
  {
    name: 'generic',
    type: 'boolean',
    description: "with --explain: the generic plan of the relay's named statements",
  },
  {
    name: 'tenant',
    type: 'string',
    multiple: true,
    description: "the claim's tenants (repeatable; default: those a claim would take now)",
  },
  {
    name: 'relay-id',
    type: 'string',
    description: 'the relay id to claim as (default: a new one)',
  },
];

/** One subcommand: its usage line, the settings and flags it takes, and what it does. */
interface Command {
  usage: string;
  scopes: SettingScope[];
  flags?: ExtraFlag[];
  /** Most positional arguments it accepts. */
  positionals: number;
  run(args: ParsedArgs, config: Config, logger: Logger): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  migrate: {
    usage: 'outbox-relay migrate up|down|status [options]',
    scopes: ['database'],
    positionals: 1,
    run: (args, config, log) => migrateCommand(args.positionals[0], config, log),
  },
  run: {
    usage: 'outbox-relay run [--once] [options]',
    scopes: ['database', 'relay', 'flags'],
    flags: RUN_FLAGS,
    positionals: 0,
    run: (args, config, log) => runCommand(config, { once: args.extra.once === true }, log),
  },
  tenants: {
    usage: 'outbox-relay tenants [--top [--interval SECONDS]] [--json] [options]',
    scopes: ['database', 'flags'],
    flags: TENANTS_FLAGS,
    positionals: 0,
    run: (args, config, log) =>
      tenantsCommand(
        config,
        {
          json: args.extra.json === true,
          top: args.extra.top === true,
          intervalMs: (integerFlag(args, 'interval', { min: 1, max: 3600 }) ?? 2) * 1000,
        },
        log,
      ),
  },
  dead: {
    usage: 'outbox-relay dead list|retry|discard [--id ID ... | --tenant T | --all] [options]',
    scopes: ['database'],
    flags: DEAD_FLAGS,
    positionals: 1,
    run: (args, config, log) =>
      deadCommand(
        args.positionals[0],
        config,
        {
          ids: stringsFlag(args, 'id'),
          tenant: stringFlag(args, 'tenant'),
          all: args.extra.all === true,
          yes: args.extra.yes === true,
          json: args.extra.json === true,
          limit: integerFlag(args, 'limit', { min: 1, max: 100_000 }),
        },
        log,
      ),
  },
  claim: {
    usage: 'outbox-relay claim --explain [--generic] [--tenant T ...] [options]',
    scopes: ['database', 'relay'],
    flags: CLAIM_FLAGS,
    positionals: 0,
    run: (args, config, log) =>
      claimCommand(
        config,
        {
          explain: args.extra.explain === true,
          generic: args.extra.generic === true,
          tenants: stringsFlag(args, 'tenant'),
          relayId: stringFlag(args, 'relay-id'),
        },
        log,
      ),
  },
  purge: {
    usage: 'outbox-relay purge --tenant T [--before TIME] --yes [options]',
    scopes: ['database'],
    flags: PURGE_FLAGS,
    positionals: 0,
    run: (args, config, log) =>
      purgeCommand(
        config,
        {
          tenant: stringFlag(args, 'tenant'),
          before: stringFlag(args, 'before'),
          yes: args.extra.yes === true,
        },
        log,
      ),
  },
};

/** The command named `name`, or a usage error. */
function commandNamed(name: string): Command {
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (command) return command;
  if (name === '-v' || name === '-V')
    throw new UsageError(`unknown option '${name}' (did you mean --version?)`);
  if (name.startsWith('-'))
    throw new UsageError(`expected a command before options, got '${name}'`);
  throw new UsageError(`unknown command '${name}'`);
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    if (topic !== undefined) {
      const command = commandNamed(topic);
      process.stdout.write(commandHelp(command.usage, command.scopes, command.flags));
      return 0;
    }
    process.stdout.write(MAIN_HELP);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}' after --version`);
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  const command = commandNamed(name);
  const args = parseCommandArgs(rest, command.scopes, command.flags);
  if (args.help) {
    process.stdout.write(commandHelp(command.usage, command.scopes, command.flags));
    return 0;
  }
  if (args.positionals.length > command.positionals) {
    throw new UsageError(`unexpected argument '${args.positionals[command.positionals]}'`);
  }
  const config = loadConfig(process.env, args.settings);
  return command.run(args, config, logger(config));
}

/** The process's logger and configuration once loaded; the fatal-error handler uses them too. */
let activeLogger: Logger | undefined;
let activeConfig: Config | undefined;

function logger(config: Config): Logger {
  activeConfig = config;
  activeLogger = createLogger({ level: config.logLevel, format: config.logFormat });
  return activeLogger;
}

/**
 * How long a shutdown after an unhandled error may take beyond
 * OUTBOX_SHUTDOWN_TIMEOUT; longer than `run`'s own limit for a SIGTERM
 * shutdown, which therefore ends it first.
 */
const FATAL_SHUTDOWN_GRACE_MS = 15_000;

// An error nothing handled leaves the process in an unknown state: log it
// with its cause, shut down as on SIGTERM (bounded), exit 1 (see fatal-errors.ts).
const fatalErrors = fatalErrorHandler({
  logger: () => activeLogger ?? createLogger({ level: 'error', format: 'json' }),
  // `run` shuts down on SIGTERM; the other commands have nothing to shut down.
  shutdown: () => {
    if (process.listenerCount('SIGTERM') === 0) return false;
    process.emit('SIGTERM', 'SIGTERM');
    return true;
  },
  limitMs: () => (activeConfig?.shutdownTimeoutMs ?? 0) + FATAL_SHUTDOWN_GRACE_MS,
  exit: (code) => process.exit(code),
});
process.on('unhandledRejection', (reason) => fatalErrors.handle('unhandled rejection', reason));
process.on('uncaughtException', (error) => fatalErrors.handle('uncaught exception', error));

/** One line on stderr; anything from outside (values, database errors) is escaped. */
function fail(message: string, code: number): void {
  process.stderr.write(`outbox-relay: ${printable(message)}\n`);
  process.exitCode = code;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // After an unhandled error the shutdown has run: exit 1 even if something still holds the loop.
    if (fatalErrors.fatal()) process.exit(FATAL_EXIT_CODE);
  },
  (error: unknown) => {
    if (error instanceof UsageError) fail(`${error.message} (see outbox-relay --help)`, 2);
    else if (error instanceof ConfigError) fail(error.message, 2);
    else if (error instanceof OutboxError) fail(error.message, 1);
    else fail(`unexpected failure: ${describeError(error)}`, 1);
    if (fatalErrors.fatal()) process.exit(FATAL_EXIT_CODE);
  },
);
