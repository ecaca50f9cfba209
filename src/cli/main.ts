#!/usr/bin/env node
/**
 * The `outbox-relay` command. Parses the command line and environment once,
 * dispatches, and turns every failure into one line on stderr and an exit
 * code: 1 for a runtime failure, 2 for bad usage or configuration.
 */
import { loadConfig } from '../config.js';
import { ConfigError, OutboxError } from '../errors.js';
import { createJsonLogger, type LogLevel } from '../log/logger.js';
import { type ExtraFlag, parseCommandArgs, UsageError } from './args.js';
import { deadCommand } from './dead-command.js';
import { commandHelp, MAIN_HELP } from './help.js';
import { migrateCommand } from './migrate-command.js';
import { purgeCommand } from './purge-command.js';
import { runCommand } from './run-command.js';
import { tenantsCommand } from './tenants-command.js';

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

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(MAIN_HELP);
    return command === undefined ? 2 : 0;
  }
  if (command === 'migrate') {
    const args = parseCommandArgs(rest, ['database']);
    if (args.help) {
      process.stdout.write(
        commandHelp('outbox-relay migrate up|down|status [options]', ['database']),
      );
      return 0;
    }
    if (args.positionals.length > 1)
      throw new UsageError(`unexpected argument '${args.positionals[1]}'`);
    const config = loadConfig(process.env, args.settings);
    return migrateCommand(args.positionals[0], config, logger(config.logLevel));
  }
  if (command === 'run') {
    const args = parseCommandArgs(rest, ['database', 'relay', 'flags'], RUN_FLAGS);
    if (args.help) {
      process.stdout.write(
        commandHelp(
          'outbox-relay run [--once] [options]',
          ['database', 'relay', 'flags'],
          RUN_FLAGS,
        ),
      );
      return 0;
    }
    if (args.positionals.length > 0)
      throw new UsageError(`unexpected argument '${args.positionals[0]}'`);
    const config = loadConfig(process.env, args.settings);
    return runCommand(config, { once: args.extra.once === true }, logger(config.logLevel));
  }
  if (command === 'tenants') {
    const args = parseCommandArgs(rest, ['database', 'flags'], TENANTS_FLAGS);
    if (args.help) {
      process.stdout.write(
        commandHelp(
          'outbox-relay tenants [--json] [options]',
          ['database', 'flags'],
          TENANTS_FLAGS,
        ),
      );
      return 0;
    }
    if (args.positionals.length > 0)
      throw new UsageError(`unexpected argument '${args.positionals[0]}'`);
    const config = loadConfig(process.env, args.settings);
    return tenantsCommand(config, { json: args.extra.json === true }, logger(config.logLevel));
  }
  if (command === 'dead') {
    const args = parseCommandArgs(rest, ['database'], DEAD_FLAGS);
    if (args.help) {
      process.stdout.write(
        commandHelp(
          'outbox-relay dead list|retry|discard [--id ID ... | --tenant T | --all] [options]',
          ['database'],
          DEAD_FLAGS,
        ),
      );
      return 0;
    }
    if (args.positionals.length > 1)
      throw new UsageError(`unexpected argument '${args.positionals[1]}'`);
    const config = loadConfig(process.env, args.settings);
    const { id, tenant, limit } = args.extra;
    return deadCommand(
      args.positionals[0],
      config,
      {
        ids: Array.isArray(id) ? id.map(String) : typeof id === 'string' ? [id] : [],
        tenant: typeof tenant === 'string' ? tenant : undefined,
        all: args.extra.all === true,
        yes: args.extra.yes === true,
        json: args.extra.json === true,
        limit: typeof limit === 'string' ? limit : undefined,
      },
      logger(config.logLevel),
    );
  }
  if (command === 'purge') {
    const args = parseCommandArgs(rest, ['database'], PURGE_FLAGS);
    if (args.help) {
      process.stdout.write(
        commandHelp(
          'outbox-relay purge --tenant T [--before TIME] --yes [options]',
          ['database'],
          PURGE_FLAGS,
        ),
      );
      return 0;
    }
    if (args.positionals.length > 0)
      throw new UsageError(`unexpected argument '${args.positionals[0]}'`);
    const config = loadConfig(process.env, args.settings);
    const { tenant, before } = args.extra;
    return purgeCommand(
      config,
      {
        tenant: typeof tenant === 'string' ? tenant : undefined,
        before: typeof before === 'string' ? before : undefined,
        yes: args.extra.yes === true,
      },
      logger(config.logLevel),
    );
  }
  throw new UsageError(`unknown command '${command}'`);
}

function logger(level: LogLevel) {
  return createJsonLogger(level, { service: 'outbox-relay' });
}

// Nothing may take the process down unannounced: log, and let the loops recover.
process.on('unhandledRejection', (reason) => {
  process.stderr.write(
    `${JSON.stringify({ level: 'error', msg: 'unhandled rejection', error: String(reason) })}\n`,
  );
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`outbox-relay: ${error.message} (see outbox-relay --help)\n`);
      process.exitCode = 2;
    } else if (error instanceof ConfigError) {
      process.stderr.write(`outbox-relay: ${error.message}\n`);
      process.exitCode = 2;
    } else if (error instanceof OutboxError) {
      process.stderr.write(`outbox-relay: ${error.message}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(
        `outbox-relay: unexpected failure: ${error instanceof Error ? error.message : String(error)}\n`,
      );
      process.exitCode = 1;
    }
  },
);
