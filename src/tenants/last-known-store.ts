/**
 * Wraps a LaunchDarkly persistent store (the SDK's Redis store) so that a
 * Redis outage never changes a decision: while Redis cannot answer, every
 * item the SDK asks for is the last one known, never "not found" (which the
 * SDK would evaluate to the fallback: every tenant publishing). And a change
 * received from LaunchDarkly that Redis could not take (the SDK's Redis store
 * then keeps serving the old item) still applies, as long as it is the newer
 * version. Apart from that the wrapped store answers as it would.
 */
import type {
  interfaces,
  LDFeatureStore,
  LDFeatureStoreDataStorage,
  LDFeatureStoreItem,
  LDFeatureStoreKindData,
  LDKeyedFeatureStoreItem,
} from '@launchdarkly/node-server-sdk';

type Item = LDFeatureStoreItem;

/** An item as last known: read from the store, or received from LaunchDarkly. */
interface Known {
  kind: interfaces.DataKind;
  key: string;
  item: Item | null;
  received: boolean;
}

function newer(known: Item | null, stored: Item | null): boolean {
  if (!known) return false;
  return !stored || known.version > stored.version;
}

function visible(item: Item | null): Item | null {
  return item && !item.deleted ? item : null;
}

/** A feature store that answers with the last known items while its backend is down. */
export class LastKnownStore implements LDFeatureStore {
  private readonly known = new Map<string, Known>();

  /** `available()` says whether the backend can answer right now (e.g. Redis is connected). */
  constructor(
    private readonly inner: LDFeatureStore,
    private readonly available: () => boolean,
  ) {}

  /** The items the SDK has asked for or received, to watch for changes. */
  watched(): { kind: interfaces.DataKind; key: string }[] {
    return [...this.known.values()].map(({ kind, key }) => ({ kind, key }));
  }

  get(kind: interfaces.DataKind, key: string, callback: (item: Item | null) => void): void {
    this.inner.get(kind, key, (stored) => {
      const id = `${kind.namespace}:${key}`;
      const known = this.known.get(id);
      const up = this.available();
      if (known && (known.received || !up) && newer(known.item, stored)) {
        callback(visible(known.item));
        return;
      }
      // A "not found" while the backend is down says nothing: keep what is known.
      if (up || stored) this.known.set(id, { kind, key, item: stored, received: false });
      callback(stored);
    });
  }

  all(kind: interfaces.DataKind, callback: (items: LDFeatureStoreKindData) => void): void {
    this.inner.all(kind, callback);
  }

  init(
    allData: LDFeatureStoreDataStorage,
    callback: (err?: Error) => void,
    initMetadata?: Parameters<LDFeatureStore['init']>[2],
  ): void {
    // A full data set from LaunchDarkly is the truth, whatever versions were known.
    this.known.clear();
    for (const [namespace, items] of Object.entries(allData)) {
      for (const [key, item] of Object.entries(items ?? {})) {
        this.known.set(`${namespace}:${key}`, {
          kind: { namespace },
          key,
          item,
          received: true,
        });
      }
    }
    this.inner.init(allData, callback, initMetadata);
  }

  upsert(
    kind: interfaces.DataKind,
    item: LDKeyedFeatureStoreItem,
    callback: (err?: Error) => void,
  ): void {
    const id = `${kind.namespace}:${item.key}`;
    const known = this.known.get(id);
    if (!known?.item || known.item.version < item.version) {
      this.known.set(id, { kind, key: item.key, item, received: true });
    }
    this.inner.upsert(kind, item, callback);
  }

  delete(kind: interfaces.DataKind, key: string, version: number, callback: () => void): void {
    this.upsert(kind, { key, version, deleted: true }, () => callback());
  }

  initialized(callback: (isInitialized: boolean) => void): void {
    this.inner.initialized(callback);
  }

  close(): void {
    this.inner.close();
  }

  getDescription(): string {
    return this.inner.getDescription?.() ?? 'LaunchDarkly persistent store';
  }
}
