/**
 * Help texts, generated from the settings table so they cannot drift from the code.
 */
import { type SettingScope, settingsFor } from '../config.js';
import type { ExtraFlag } from './args.js';

/** The top-level help. */
export const MAIN_HELP = `outbox-relay — publishes a PostgreSQL transactional outbox to RabbitMQ

Usage:
  outbox-relay migrate up|down|status [options]   manage the outbox schema
  outbox-relay run [--once] [options]             run the relay
  outbox-relay tenants [--json] [options]         pending events per tenant, paused or throttled now
  outbox-relay dead list|retry|discard [...]      inspect, retry or discard dead events
  outbox-relay purge --tenant T [--before TIME] --yes
                                                  discard a tenant's pending events
  outbox-relay claim --explain [--tenant T ...]   print one claim as a psql script for EXPLAIN
  outbox-relay <command> --help                   options of a command
  outbox-relay --version                          the installed version

Every option is also an environment variable; flags win over the environment.
Options take their value as --name value or --name=value, and may be given once
(--id of dead and --tenant of claim are repeatable).
Exit codes: 0 success, 1 failure (e.g. database unreachable), 2 bad usage or configuration.
`;

/** Help for one command: its usage line, extra flags, and its settings with env names and defaults. */
export function commandHelp(
  usage: string,
  scopes: readonly SettingScope[],
  extra: readonly ExtraFlag[] = [],
): string {
  const lines = [`Usage: ${usage}`, '', 'Options (flag / environment variable, default):'];
  for (const flag of extra) {
    const name = flag.type === 'string' ? `${flag.name} <value>` : flag.name;
    lines.push(`  --${name.padEnd(22)} ${flag.description}`);
  }
  for (const [, spec] of settingsFor(scopes)) {
    lines.push(`${`  --${spec.flag} <value>`.padEnd(26)} ${spec.env} (default ${spec.default})`);
    lines.push(`${' '.repeat(27)}${spec.description}`);
  }
  lines.push(`  --${'help'.padEnd(22)} show this help`);
  return `${lines.join('\n')}\n`;
}
