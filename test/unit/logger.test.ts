import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { OutboxError } from '../../src/errors.js';
import { createLogger, type LogFormat, type LogLevel } from '../../src/log/logger.js';

/** A logger whose output is collected, one string per line written. */
function capture(level: LogLevel, format: LogFormat = 'json') {
  const lines: string[] = [];
  const logger = createLogger({
    level,
    format,
    colorize: false,
    destination: { write: (line) => lines.push(line) },
  });
  return { logger, lines, records: () => lines.map((line) => JSON.parse(line)) };
}

describe('createLogger', () => {
  it('writes each event as one JSON line with a level name, an ISO time, msg and the base fields', () => {
    const { logger, lines, records } = capture('debug');
    logger.info('relay started', { relayId: 'r-1', batchSize: 1000 });
    logger.debug('swept expired tenant leases', { count: 2 });

    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line.endsWith('}\n')).toBe(true);
    const [started, swept] = records();
    expect(started).toMatchObject({
      level: 'info',
      msg: 'relay started',
      service: 'outbox-relay',
      pid: process.pid,
      hostname: hostname(),
      relayId: 'r-1',
      batchSize: 1000,
    });
    expect(new Date(started.time).toISOString()).toBe(started.time);
    expect(swept).toMatchObject({ level: 'debug', count: 2 });
  });

  it('writes nothing below the configured level', () => {
    const { logger, records } = capture('warn');
    logger.debug('debug line');
    logger.info('info line');
    logger.warn('warn line');
    logger.error('error line');
    expect(records().map((r) => [r.level, r.msg])).toEqual([
      ['warn', 'warn line'],
      ['error', 'error line'],
    ]);
  });

  it('writes an error field with its type, message, code, stack and cause chain', () => {
    const { logger, records } = capture('info');
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5672'), {
      code: 'ECONNREFUSED',
    });
    const error = new OutboxError('BROKER_UNAVAILABLE', 'cannot connect to RabbitMQ', {
      cause: new Error('handshake failed', { cause: refused }),
    });
    logger.error('claim failed; retrying', { error, retryInMs: 100 });

    const [record] = records();
    expect(record).toMatchObject({
      msg: 'claim failed; retrying',
      retryInMs: 100,
      error: {
        type: 'OutboxError',
        message: 'cannot connect to RabbitMQ',
        code: 'BROKER_UNAVAILABLE',
        cause: {
          type: 'Error',
          message: 'handshake failed',
          cause: { message: 'connect ECONNREFUSED 127.0.0.1:5672', code: 'ECONNREFUSED' },
        },
      },
    });
    expect(record.error.stack).toMatch(/^OutboxError: cannot connect to RabbitMQ\n\s+at /);
  });

  it('censors payloads, contents, passwords, SDK keys and the passwords of URLs', () => {
    const { logger, lines } = capture('info');
    const failing = Object.assign(new Error('cannot connect to postgres://app:s3cret@db/outbox'), {
      detail: 'Failing row contains (order-payload-4711)',
    });
    logger.info('connected to postgres://app:s3cret@db/outbox', {
      payload: { order: 'order-payload-4711' },
      message: { id: '1', content: 'order-payload-4711', password: 's3cret' },
      sdkKey: 'sdk-s3cret',
      url: 'amqp://guest:s3cret@rabbit:5672',
      note: 'retrying postgres://app:s3cret@db/outbox',
      settings: { database: { dsn: 'postgres://app:s3cret@db/outbox' } },
      error: failing,
    });

    const output = lines.join('');
    expect(output).not.toMatch(/s3cret|order-payload-4711/);
    const [record] = lines.map((line) => JSON.parse(line));
    expect(record).toMatchObject({
      msg: 'connected to postgres://app:***@db/outbox',
      payload: '[Redacted]',
      message: { id: '1', content: '[Redacted]', password: '[Redacted]' },
      sdkKey: '[Redacted]',
      url: 'amqp://guest:***@rabbit:5672',
      note: 'retrying postgres://app:***@db/outbox',
      settings: { database: { dsn: 'postgres://app:***@db/outbox' } },
      error: { message: 'cannot connect to postgres://app:***@db/outbox' },
    });
  });

  it('censors URL passwords holding an unencoded @ or a quote', () => {
    const { logger, lines, records } = capture('info');
    logger.warn('retrying', {
      at: 'amqp://user:p@ss@rabbit:5672/vhost',
      dsn: 'postgres://app:pa"s3cret@db/outbox',
      contact: 'ops@example.com',
    });
    expect(lines.join('')).not.toMatch(/p@ss|s3cret/);
    expect(records()[0]).toMatchObject({
      at: 'amqp://user:***@rabbit:5672/vhost',
      dsn: 'postgres://app:***@db/outbox',
      contact: 'ops@example.com',
    });
  });

  it('writes messages verbatim, without printf-style interpolation', () => {
    const { logger, records } = capture('info');
    logger.info('100% of %s done', { tenant: 'acme' });
    expect(records()[0]).toMatchObject({ msg: '100% of %s done', tenant: 'acme' });
  });

  it('does not change the fields it is given', () => {
    const { logger } = capture('info');
    const error = new Error('boom');
    const fields = { error, url: 'amqp://guest:s3cret@rabbit' };
    logger.warn('channel error', fields);
    expect(fields).toEqual({ error, url: 'amqp://guest:s3cret@rabbit' });
  });

  it('in pretty mode writes readable text, not JSON, and still redacts', () => {
    const { logger, lines } = capture('info', 'pretty');
    logger.debug('not shown');
    logger.info('relay started', { relayId: 'r-1', sdkKey: 'sdk-s3cret' });
    logger.error('claim failed; retrying', {
      error: new OutboxError('DATABASE_UNAVAILABLE', 'cannot claim'),
    });

    expect(lines).toHaveLength(2);
    expect(() => JSON.parse(lines[0] ?? '')).toThrow();
    expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: relay started .*"relayId":"r-1"/);
    expect(lines[0]).not.toMatch(/s3cret|outbox-relay|hostname/);
    expect(lines[1]).toMatch(/ERROR: claim failed; retrying/);
    expect(lines[1]).toMatch(/"code": "DATABASE_UNAVAILABLE"/);
    expect(lines[1]).toMatch(/OutboxError: cannot claim\n\s+at /);
  });
});
