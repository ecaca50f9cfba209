/**
 * The kill switch remembers: a LaunchDarkly feature store that the SDK
 * evaluates from in memory, and that saves the flags the gate evaluates (with
 * the prerequisite flags and segments they depend on, as LaunchDarkly sent
 * them) in PostgreSQL whenever they change.
 *
 * At start-up the store is filled from the saved snapshot before the SDK
 * connects. The SDK evaluates from a store that has data even before it has
 * initialized ("last known values"), so a relay that starts while LaunchDarkly
 * is unreachable decides every tenant, including tenants it never met, as
 * LaunchDarkly last said. The first data set LaunchDarkly sends replaces the
 * snapshot in memory, and from then on LaunchDarkly is followed as usual.
 *
 * Memory is the truth for evaluations; PostgreSQL only ever receives copies,
 * after the fact: a slow or unreachable database never delays nor loses a
 * flag change for this relay. Saving is one write at a time, of what differs
 * from what this relay knows PostgreSQL holds (nothing on a reconnect that
 * brings the same flags), retried with backoff while it fails. See
 * flag-snapshot-queries.ts for how concurrent relays' writes combine.
 */
import { createHash } from 'node:crypto';
import type {
  interfaces,
  LDFeatureStore,
  LDFeatureStoreDataStorage,
  LDFeatureStoreItem,
  LDFeatureStoreKindData,
  LDKeyedFeatureStoreItem,
} from '@launchdarkly/node-server-sdk';
import type pg from 'pg';
import { Backoff, SHORTEN_JITTER } from '../backoff.js';
import { isUndefinedTable } from '../db/pool.js';
import type { Logger } from '../log/logger.js';
import type { SavedFlagsStatus } from '../relay/tenant-gate.js';
import { flagsAndDependencies, itemId } from './flag-dependencies.js';
import { type FlagData, type FlagDataNamespace, itemJson, reviveItems } from './flag-item-json.js';
import {
  type FlagSnapshotStatements,
  flagSnapshotStatements,
  readSnapshot,
  type SnapshotWrite,
  writeSnapshot,
} from './flag-snapshot-queries.js';

const NAMESPACES: readonly FlagDataNamespace[] = ['features', 'segments'];
/** Between failed saves: 1 s doubling to 60 s, jittered down to half (relays share the database). */
const SAVE_RETRY = { firstMs: 1000, maxMs: 60_000, jitter: SHORTEN_JITTER } as const;

/** The snapshot's key for an SDK key: one snapshot per LaunchDarkly environment, the key never stored. */
export function environmentOf(sdkKey: string): string {
  return createHash('sha256').update(sdkKey).digest('hex').slice(0, 16);
}

/** Options of {@link FlagSnapshotStore}. */
export interface FlagSnapshotOptions {
  pool: pg.Pool;
  schema: string;
  sdkKey: string;
  /** The flags the gate evaluates: what is saved is these and what they depend on. */
  flagKeys: readonly string[];
  logger: Logger;
}

type Item = LDFeatureStoreItem;

/** A feature store kept in memory and saved, on change, in PostgreSQL. */
export class FlagSnapshotStore implements LDFeatureStore {
  private readonly data = new Map<string, Map<string, Item>>();
  private readonly statements: FlagSnapshotStatements;
  private readonly environment: string;
  /** Versions PostgreSQL holds, as far as this relay knows: read at start, then written. */
  private readonly persisted = new Map<
    string,
    { kind: FlagDataNamespace; key: string; version: number }
  >();
  private hasData = false;
  private loaded: { savedAt: Date; ageSeconds: number; at: number } | undefined;
  private fullSetsReceived = 0;
  private fullSetsSaved = 0;
  private dirty = false;
  private writing: Promise<void> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private readonly saveRetry = new Backoff(SAVE_RETRY);
  private stopped = false;
  private disabled = false;

  private constructor(private readonly options: FlagSnapshotOptions) {
    this.statements = flagSnapshotStatements(options.schema);
    this.environment = environmentOf(options.sdkKey);
  }

  /** A store filled with the saved snapshot, if there is one; never rejects (it warns and starts empty). */
  static async open(options: FlagSnapshotOptions): Promise<FlagSnapshotStore> {
    const store = new FlagSnapshotStore(options);
    await store.load();
    return store;
  }

  /** While no flags have come from LaunchDarkly: the saved snapshot in use, if one was loaded. */
  saved(): SavedFlagsStatus | undefined {
    if (!this.loaded || this.fullSetsReceived > 0) return undefined;
    const elapsed = (performance.now() - this.loaded.at) / 1000;
    return {
      store: 'postgres',
      savedAt: this.loaded.savedAt,
      ageSeconds: this.loaded.ageSeconds + elapsed,
    };
  }

  /** Stops saving; waits for a write in flight (bounded by the pool's timeouts). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    await this.writing;
  }

  get(kind: interfaces.DataKind, key: string, callback: (item: Item | null) => void): void {
    const item = this.data.get(kind.namespace)?.get(key);
    callback(item && !item.deleted ? item : null);
  }

  all(kind: interfaces.DataKind, callback: (items: LDFeatureStoreKindData) => void): void {
    const items: LDFeatureStoreKindData = {};
    for (const [key, item] of this.data.get(kind.namespace) ?? []) {
      if (!item.deleted) items[key] = item;
    }
    callback(items);
  }

  init(allData: LDFeatureStoreDataStorage, callback: (err?: Error) => void): void {
    this.data.clear();
    for (const [namespace, items] of Object.entries(allData)) {
      this.data.set(namespace, new Map(Object.entries(items ?? {})));
    }
    this.hasData = true;
    this.fullSetsReceived += 1;
    this.changed();
    callback();
  }

  upsert(
    kind: interfaces.DataKind,
    item: LDKeyedFeatureStoreItem,
    callback: (err?: Error) => void,
  ): void {
    let items = this.data.get(kind.namespace);
    if (!items) {
      items = new Map();
      this.data.set(kind.namespace, items);
    }
    const old = items.get(item.key);
    if (!old || old.version < item.version) {
      items.set(item.key, item);
      this.changed();
    }
    callback();
  }

  delete(kind: interfaces.DataKind, key: string, version: number, callback: () => void): void {
    this.upsert(kind, { key, version, deleted: true }, () => callback());
  }

  initialized(callback: (isInitialized: boolean) => void): void {
    callback(this.hasData);
  }

  close(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
  }

  getDescription(): string {
    return 'outbox-relay PostgreSQL flag snapshot';
  }

  private async load(): Promise<void> {
    const { pool, logger } = this.options;
    try {
      const saved = await readSnapshot(pool, this.statements, this.environment);
      if (!saved) return;
      const data: FlagData = { features: {}, segments: {} };
      for (const row of saved.rows) {
        data[row.kind][row.key] = row.item;
        this.persisted.set(itemId(row.kind, row.key), {
          kind: row.kind,
          key: row.key,
          version: row.version,
        });
      }
      reviveItems(data);
      for (const namespace of NAMESPACES) {
        this.data.set(namespace, new Map(Object.entries(data[namespace])));
      }
      this.hasData = true;
      this.loaded = {
        savedAt: saved.confirmedAt,
        ageSeconds: saved.ageSeconds,
        at: performance.now(),
      };
    } catch (error) {
      if (isUndefinedTable(error)) {
        this.disable();
        return;
      }
      logger.warn('cannot read the saved tenant flags; starting without them', { error });
    }
  }

  private disable(): void {
    this.disabled = true;
    this.options.logger.warn(
      `the flag snapshot table ${this.options.schema}.flag_snapshot does not exist (run \`outbox-relay migrate up\`): tenant flags are not remembered across restarts`,
    );
  }

  private changed(): void {
    if (this.disabled || this.stopped) return;
    this.dirty = true;
    this.startSaving();
  }

  /** Starts the one writer unless it runs or waits to retry; it starts again if a change came as it ended. */
  private startSaving(): void {
    if (this.writing || this.retry || !this.dirty || this.stopped || this.disabled) return;
    this.writing = this.save().finally(() => {
      this.writing = undefined;
      this.startSaving();
    });
  }

  /** Writes until nothing differs; on failure, schedules a retry with backoff and jitter. */
  private async save(): Promise<void> {
    while (this.dirty && !this.disabled) {
      this.dirty = false;
      const fullSets = this.fullSetsReceived;
      const write = this.pendingWrite(fullSets > this.fullSetsSaved);
      if (write.upserts.length + write.deletes.length === 0 && !write.confirmed) continue;
      try {
        await writeSnapshot(this.options.pool, this.statements, this.environment, write);
      } catch (error) {
        this.dirty = true;
        if (isUndefinedTable(error)) return this.disable();
        const delay = this.saveRetry.next();
        if (this.saveRetry.failures === 1) {
          this.options.logger.warn('cannot save the tenant flags in PostgreSQL; retrying', {
            error,
          });
        }
        if (this.stopped) return;
        this.retry = setTimeout(() => {
          this.retry = undefined;
          this.startSaving();
        }, delay);
        this.retry.unref();
        return;
      }
      for (const row of write.upserts) this.persisted.set(itemId(row.kind, row.key), row);
      for (const row of write.deletes) this.persisted.delete(itemId(row.kind, row.key));
      this.fullSetsSaved = fullSets;
      if (this.saveRetry.failures > 0) {
        this.options.logger.info('tenant flags saved in PostgreSQL again');
      }
      this.saveRetry.reset();
    }
  }

  /** What differs between memory (the gate's flags and their dependencies) and PostgreSQL. */
  private pendingWrite(confirmed: boolean): SnapshotWrite {
    const needed = flagsAndDependencies(this.data, this.options.flagKeys);
    const upserts: SnapshotWrite['upserts'] = [];
    for (const [rowId, { kind, key, item }] of needed) {
      if (this.persisted.get(rowId)?.version === item.version) continue;
      upserts.push({ kind, key, version: item.version, json: itemJson(item) });
    }
    const deletes = [...this.persisted].filter(([key]) => !needed.has(key)).map(([, row]) => row);
    return { upserts, deletes, confirmed };
  }
}
