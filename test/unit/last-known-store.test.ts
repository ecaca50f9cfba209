/**
 * The store that keeps a Redis outage from changing any flag decision, over
 * an in-memory stand-in for the SDK's Redis store (which answers "not found"
 * and drops writes while Redis is down; the Redis tests check the real one):
 * while the backend is down the last known item answers, and a change
 * received from LaunchDarkly that the backend could not take still applies.
 */
import type {
  interfaces,
  LDFeatureStore,
  LDFeatureStoreDataStorage,
  LDFeatureStoreItem,
  LDFeatureStoreKindData,
  LDKeyedFeatureStoreItem,
} from '@launchdarkly/node-server-sdk';
import { describe, expect, it } from 'vitest';
import { LastKnownStore } from '../../src/tenants/last-known-store.js';

const FLAGS: interfaces.DataKind = { namespace: 'features' };

/** A persistent store that, while `down`, finds nothing and keeps no write, as the SDK's Redis store does. */
class FlakyBackend implements LDFeatureStore {
  down = false;
  readonly data: LDFeatureStoreDataStorage = {};

  get(kind: interfaces.DataKind, key: string, callback: (item: LDFeatureStoreItem | null) => void) {
    callback(this.down ? null : (this.data[kind.namespace]?.[key] ?? null));
  }
  all(kind: interfaces.DataKind, callback: (items: LDFeatureStoreKindData) => void) {
    callback(this.down ? {} : { ...this.data[kind.namespace] });
  }
  init(allData: LDFeatureStoreDataStorage, callback: (err?: Error) => void) {
    if (!this.down) Object.assign(this.data, structuredClone(allData));
    callback();
  }
  delete(kind: interfaces.DataKind, key: string, version: number, callback: () => void) {
    this.upsert(kind, { key, version, deleted: true }, () => callback());
  }
  upsert(
    kind: interfaces.DataKind,
    item: LDKeyedFeatureStoreItem,
    callback: (err?: Error) => void,
  ) {
    if (this.down) return callback(new Error('Redis is down'));
    const items = this.data[kind.namespace] ?? {};
    this.data[kind.namespace] = items;
    const stored = items[item.key];
    if (!stored || stored.version < item.version) items[item.key] = item;
    callback();
  }
  initialized(callback: (initialized: boolean) => void) {
    callback(!this.down);
  }
  close() {}
  getDescription() {
    return 'flaky backend';
  }
}

function setup() {
  const backend = new FlakyBackend();
  const store = new LastKnownStore(backend, () => !backend.down);
  const get = (key: string) =>
    new Promise<LDFeatureStoreItem | null>((resolve) => store.get(FLAGS, key, resolve));
  const upsert = (item: LDKeyedFeatureStoreItem) =>
    new Promise<Error | undefined>((resolve) => store.upsert(FLAGS, item, resolve));
  return { backend, store, get, upsert };
}

const flag = (version: number, on: boolean) => ({ key: 'publish', version, on });

describe('the last-known flag store', () => {
  it('answers with the last item read while the backend is down, never "not found"', async () => {
    const { backend, get } = setup();
    backend.data.features = { publish: flag(3, false) };
    expect(await get('publish')).toEqual(flag(3, false));
    backend.down = true;
    expect(await get('publish')).toEqual(flag(3, false));
    // Nothing known of this one: "not found" is all there is to say.
    expect(await get('other')).toBeNull();
  });

  it('lets the backend answer while it is up, a change made elsewhere included', async () => {
    const { backend, get } = setup();
    backend.data.features = { publish: flag(3, false) };
    await get('publish');
    backend.data.features = { publish: flag(4, true) };
    expect(await get('publish')).toEqual(flag(4, true));
    backend.down = true;
    expect(await get('publish')).toEqual(flag(4, true));
  });

  it('applies a change received while the backend could not take it, once it is back too', async () => {
    const { backend, get, upsert } = setup();
    backend.data.features = { publish: flag(3, true) };
    await get('publish');
    backend.down = true;
    expect(await upsert(flag(4, false))).toBeInstanceOf(Error);
    expect(await get('publish')).toEqual(flag(4, false));
    // Back up but still holding version 3: the newer change received wins.
    backend.down = false;
    expect(backend.data.features?.publish).toEqual(flag(3, true));
    expect(await get('publish')).toEqual(flag(4, false));
  });

  it('keeps the newer of what was received and what the backend holds', async () => {
    const { backend, get, upsert } = setup();
    await upsert(flag(5, true));
    // An older version sent late changes nothing, even while the backend cannot answer.
    backend.down = true;
    await upsert(flag(4, false));
    expect(await get('publish')).toEqual(flag(5, true));
    backend.down = false;
    expect(await get('publish')).toEqual(flag(5, true));
    // Another relay's SDK stored a newer one.
    backend.data.features = { publish: flag(6, false) };
    expect(await get('publish')).toEqual(flag(6, false));
  });

  it('treats a deletion received while the backend was down as gone', async () => {
    const { backend, store, get } = setup();
    backend.data.features = { publish: flag(3, true) };
    await get('publish');
    backend.down = true;
    await new Promise<void>((resolve) => store.delete(FLAGS, 'publish', 4, resolve));
    backend.down = false;
    expect(backend.data.features?.publish).toEqual(flag(3, true));
    expect(await get('publish')).toBeNull();
  });

  it('takes a full data set as the truth, whatever versions were known before', async () => {
    const { backend, store, get, upsert } = setup();
    await upsert(flag(9, true));
    await upsert({ key: 'retired', version: 1, on: true });
    backend.down = true;
    await new Promise<Error | undefined>((resolve) =>
      store.init({ features: { publish: flag(2, false) }, segments: {} }, resolve),
    );
    expect(await get('publish')).toEqual(flag(2, false));
    // Not in the data set: nothing is known of it any more.
    expect(await get('retired')).toBeNull();
    expect(store.watched()).toEqual([{ kind: { namespace: 'features' }, key: 'publish' }]);
  });
});
