import { describe, expect, it } from 'vitest';
import { loadConfig, parseDuration, SETTINGS } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { redactUrl } from '../../src/redact-url.js';

describe('loadConfig', () => {
  it('has defaults that name the database user and work on localhost', () => {
    const config = loadConfig({});
    expect(config.databaseUrl).toBe('postgres://postgres@localhost:5432/postgres');
    expect(config.amqpUrl).toBe('amqp://guest:guest@localhost:5672');
    expect(config.schema).toBe('outbox');
    expect(config.channels).toBe(2);
    expect(config.retentionMs).toBe(0);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('reads environment variables and lets flags override them', () => {
    const config = loadConfig(
      { OUTBOX_BATCH_SIZE: '200', OUTBOX_LEASE: '2m' },
      { 'batch-size': '300' },
    );
    expect(config.batchSize).toBe(300);
    expect(config.leaseMs).toBe(120_000);
  });

  it.each([
    ['OUTBOX_BATCH_SIZE', 'abc', /invalid OUTBOX_BATCH_SIZE: expected an integer/],
    ['OUTBOX_BATCH_SIZE', '0', /from 1 to 10000/],
    ['OUTBOX_CHANNELS', '33', /from 1 to 32/],
    ['OUTBOX_LEASE', 'soon', /expected a duration/],
    ['OUTBOX_LEASE', '10ms', /from 1000ms/],
    ['OUTBOX_LISTEN', 'maybe', /expected true or false/],
    ['OUTBOX_SCHEMA', 'Bad-Name', /lower-case SQL identifier/],
    ['DATABASE_URL', 'mysql://x', /expected a postgres: or postgresql: URL/],
    ['DATABASE_URL', 'not a url', /expected a URL/],
    ['AMQP_URL', 'http://broker', /expected a amqp: or amqps: URL/],
    ['LOG_LEVEL', 'loud', /expected one of debug, info, warn, error/],
  ])('rejects %s=%s naming the variable', (name, value, message) => {
    const error = (() => {
      try {
        loadConfig({ [name]: value });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({ code: 'INVALID_CONFIG', variable: name });
    expect((error as Error).message).toMatch(message);
  });

  it('names the flag when the bad value came from the command line', () => {
    expect(() => loadConfig({}, { channels: 'many' })).toThrow(/invalid --channels/);
  });

  it('never prints a password from a bad URL', () => {
    expect(() => loadConfig({ AMQP_URL: 'http://user:secret@host' })).toThrow(/user:\*\*\*@host/);
    expect(redactUrl('postgres://u:pw@h/db')).toBe('postgres://u:***@h/db');
    // Unparseable (port out of range), with an '@' in the password.
    expect(redactUrl('postgres://u:p@ss@host:99999/db')).toBe('postgres://u:***@host:99999/db');
    expect(() => loadConfig({ DATABASE_URL: 'postgres://u:p@ss@host:99999/db' })).not.toThrow(
      /ss@/,
    );
  });

  it('parses durations', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration('42')).toBe(42);
    expect(parseDuration('-1s')).toBeUndefined();
  });

  it('gives every setting a distinct environment variable and flag', () => {
    const specs = Object.values(SETTINGS);
    expect(new Set(specs.map((s) => s.env)).size).toBe(specs.length);
    expect(new Set(specs.map((s) => s.flag)).size).toBe(specs.length);
  });
});
