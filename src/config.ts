/**
 * Every setting of the relay and the CLI, parsed and validated once.
 *
 * `SETTINGS` is the single table of names, defaults and documentation: the
 * CLI's help, the flag parser and docs/configuration.md are derived from it.
 * Its rows live by scope in src/config/ (database-settings.ts, relay-settings.ts,
 * flag-settings.ts), their parsers in src/config/setting.ts. `loadConfig` reads
 * environment variables, lets command-line flags override them, and returns a
 * frozen object that is passed down — nothing else in the code reads
 * `process.env`.
 */
import { DATABASE_SETTINGS } from './config/database-settings.js';
import { FLAG_SETTINGS } from './config/flag-settings.js';
import { RELAY_SETTINGS } from './config/relay-settings.js';
import type { SettingScope, SettingSpec } from './config/setting.js';
import { ConfigError } from './errors.js';

export { parseDuration, type SettingScope } from './config/setting.js';

/** The table of settings; order is the order of the help text and the docs. */
export const SETTINGS = {
  ...DATABASE_SETTINGS,
  ...RELAY_SETTINGS,
  ...FLAG_SETTINGS,
} as const;

/** Name of one setting in {@link SETTINGS}. */
export type SettingKey = keyof typeof SETTINGS;

/** The parsed, frozen configuration. */
export type Config = {
  readonly [K in SettingKey]: ReturnType<(typeof SETTINGS)[K]['parse']>;
};

/**
 * Parses every setting from `env`, with `flags` (keyed by flag name, from the
 * command line) taking precedence. Throws {@link ConfigError} naming the
 * variable or flag at the first invalid value.
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>>,
  flags: Readonly<Record<string, string | undefined>> = {},
): Config {
  const config: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(SETTINGS) as [SettingKey, SettingSpec<unknown>][]) {
    const fromFlag = flags[spec.flag];
    const fromEnv = env[spec.env];
    if (fromFlag !== undefined) {
      config[key] = spec.parse(fromFlag, `--${spec.flag}`);
    } else if (fromEnv !== undefined && fromEnv !== '') {
      config[key] = spec.parse(fromEnv, spec.env);
    } else {
      config[key] = spec.parse(spec.default, spec.env);
    }
  }
  if (config.launchDarklyDaemonMode && config.flagsFile) {
    throw new ConfigError(
      env.LAUNCHDARKLY_DAEMON_MODE !== undefined
        ? 'LAUNCHDARKLY_DAEMON_MODE'
        : '--launchdarkly-daemon-mode',
      "daemon mode reads flags from a Relay Proxy's Redis, not from OUTBOX_FLAGS_FILE: set one of them",
    );
  }
  if (config.launchDarklyDaemonMode && !config.launchDarklyRedisUrl) {
    throw new ConfigError(
      env.LAUNCHDARKLY_DAEMON_MODE !== undefined
        ? 'LAUNCHDARKLY_DAEMON_MODE'
        : '--launchdarkly-daemon-mode',
      'daemon mode reads flags from Redis: set LAUNCHDARKLY_REDIS_URL too',
    );
  }
  if (config.flagsFile && config.launchDarklySdkKey) {
    throw new ConfigError(
      env.OUTBOX_FLAGS_FILE !== undefined ? 'OUTBOX_FLAGS_FILE' : '--flags-file',
      'set either a flags file or LAUNCHDARKLY_SDK_KEY, not both',
    );
  }
  return Object.freeze(config) as Config;
}

/** Settings that apply to commands of the given scopes, in table order. */
export function settingsFor(scopes: readonly SettingScope[]): [SettingKey, SettingSpec<unknown>][] {
  return (Object.entries(SETTINGS) as [SettingKey, SettingSpec<unknown>][]).filter(([, spec]) =>
    scopes.includes(spec.scope),
  );
}
