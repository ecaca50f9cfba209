/**
 * The LaunchDarkly clients the gate evaluates with, one per flag source: the
 * real SDK streaming from LaunchDarkly (or a Relay Proxy), a local flags file,
 * or a TestData source (tests). Only src/tenants/ imports the SDK.
 */
import { EventEmitter } from 'node:events';
import {
  basicLogger,
  init,
  integrations,
  type LDClient,
  type LDLogger,
  type LDOptions,
} from '@launchdarkly/node-server-sdk';
import { parse as parseYaml } from 'yaml';
import { describeError } from '../errors.js';
import { type Logger, silentLogger } from '../log/logger.js';
import { FileChangeWatcher } from './file-change-watcher.js';

/** What the gate needs from a LaunchDarkly client. */
export interface FlagClient {
  readonly source: 'launchdarkly' | 'flags-file' | 'test-data';
  variation(flagKey: string, tenantId: string, fallback: unknown): Promise<unknown>;
  initialized(): boolean;
  /** Emits 'update' whenever any flag may have changed. */
  readonly events: EventEmitter;
  close(): Promise<void>;
}

/** Routes the SDK's own log lines into ours, at warn and above (never the SDK key). */
function sdkLogger(logger: Logger): LDLogger {
  return basicLogger({
    level: 'warn',
    destination: (line: string) => logger.warn('launchdarkly', { detail: line }),
  });
}

function tenantContext(tenantId: string) {
  return { kind: 'tenant', key: tenantId };
}

/**
 * Handles the SDK's 'error' events: an unknown flag is expected (the
 * rate-limit flag is optional) and ignored; anything else is logged once per
 * distinct message, so a bad SDK key is visible without flooding the log.
 */
function listenForErrors(client: LDClient, logger: Logger): void {
  const seen = new Set<string>();
  client.on('error', (error: unknown) => {
    const message = describeError(error);
    if (/unknown feature flag/i.test(message) || seen.has(message)) return;
    if (seen.size < 100) seen.add(message);
    logger.warn('launchdarkly error', { detail: message });
  });
}

/** Wraps one SDK client; re-emits its flag changes as 'update'. */
function wrap(client: LDClient, source: FlagClient['source'], logger: Logger): FlagClient {
  const events = new EventEmitter();
  client.on('update', () => events.emit('update'));
  listenForErrors(client, logger);
  return {
    source,
    variation: (flagKey, tenantId, fallback) =>
      client.variation(flagKey, tenantContext(tenantId), fallback),
    initialized: () => client.initialized(),
    events,
    close: async () => {
      client.close();
    },
  };
}

async function waitForInit(
  client: LDClient,
  timeoutMs: number,
  what: string,
  logger: Logger,
): Promise<void> {
  try {
    await client.waitForInitialization({ timeout: Math.max(1, timeoutMs / 1000) });
  } catch (error) {
    logger.warn(
      `${what} did not initialize in time; until it does, tenants are handled as OUTBOX_FLAGS_FAIL_CLOSED says (default: all publish)`,
      { error },
    );
  }
}

/** Options of the streaming SDK client. */
export interface LaunchDarklyOptions {
  sdkKey: string;
  baseUri?: string;
  streamUri?: string;
  eventsUri?: string;
  sendEvents: boolean;
  initTimeoutMs: number;
  logger: Logger;
}

/** The real SDK, streaming flag changes (from LaunchDarkly or a Relay Proxy). */
export async function launchDarklyClient(options: LaunchDarklyOptions): Promise<FlagClient> {
  const ldOptions: LDOptions = {
    stream: true,
    sendEvents: options.sendEvents,
    logger: sdkLogger(options.logger),
    ...(options.baseUri ? { baseUri: options.baseUri } : {}),
    ...(options.streamUri ? { streamUri: options.streamUri } : {}),
    ...(options.eventsUri ? { eventsUri: options.eventsUri } : {}),
  };
  const client = init(options.sdkKey, ldOptions);
  const wrapped = wrap(client, 'launchdarkly', options.logger);
  await waitForInit(client, options.initTimeoutMs, 'LaunchDarkly', options.logger);
  return wrapped;
}

/** A client over a TestData source (tests; one TestData per client). */
export async function testDataClient(testData: integrations.TestData): Promise<FlagClient> {
  const client = init('test-data', { updateProcessor: testData.getFactory(), sendEvents: false });
  const wrapped = wrap(client, 'test-data', silentLogger);
  await client.waitForInitialization({ timeout: 5 });
  return wrapped;
}

function fileSourceClient(path: string, logger: Logger): LDClient {
  const factory = new integrations.FileDataSourceFactory({
    paths: [path],
    // Reloads are ours (FileChangeWatcher): the SDK's watcher misses a file
    // replaced by rename, as editors and Kubernetes ConfigMaps do.
    autoUpdate: false,
    yamlParser: (text: string) => parseYaml(text),
  });
  const client = init('flags-file', {
    updateProcessor: factory.getFactory(),
    sendEvents: false,
    logger: sdkLogger(logger),
  });
  listenForErrors(client, logger);
  return client;
}

/**
 * A local flags file in LaunchDarkly's file data source format (JSON or
 * YAML; per-tenant targets work). Any change to the file, written in place or
 * replaced by rename, builds a fresh SDK client from it and swaps it in.
 */
export async function flagsFileClient(
  path: string,
  initTimeoutMs: number,
  logger: Logger,
): Promise<FlagClient> {
  const events = new EventEmitter();
  let current = fileSourceClient(path, logger);
  await waitForInit(current, initTimeoutMs, `flags file ${path}`, logger);
  let reloading = Promise.resolve();
  const reload = () => {
    reloading = reloading.then(async () => {
      const next = fileSourceClient(path, logger);
      try {
        await next.waitForInitialization({ timeout: Math.max(1, initTimeoutMs / 1000) });
      } catch (error) {
        // A half-written or invalid file: keep the last good flags.
        logger.warn('flags file could not be loaded; keeping the previous flags', { path, error });
        next.close();
        return;
      }
      const previous = current;
      current = next;
      previous.close();
      logger.info('flags file reloaded', { path });
      events.emit('update');
    });
  };
  const watcher = new FileChangeWatcher(path, reload, logger);
  watcher.start();
  return {
    source: 'flags-file',
    variation: (flagKey, tenantId, fallback) =>
      current.variation(flagKey, tenantContext(tenantId), fallback),
    initialized: () => current.initialized(),
    events,
    close: async () => {
      watcher.stop();
      await reloading;
      current.close();
    },
  };
}
