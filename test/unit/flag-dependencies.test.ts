/**
 * What the flag snapshot saves besides the gate's flags: their prerequisite
 * flags and the segments their rules match, transitively, on plain items
 * (no SDK, no database).
 */
import type { LDFeatureStoreItem } from '@launchdarkly/node-server-sdk';
import { describe, expect, it } from 'vitest';
import { flagsAndDependencies, itemId } from '../../src/tenants/flag-dependencies.js';

function store(items: { features?: LDFeatureStoreItem[]; segments?: LDFeatureStoreItem[] }) {
  return new Map(
    Object.entries(items).map(([kind, list]) => [
      kind,
      new Map(list.map((item) => [String(item.key), item])),
    ]),
  );
}

const segmentRule = (...segments: string[]) => ({
  clauses: [{ op: 'segmentMatch', values: segments }],
});

describe('the flags and what they depend on', () => {
  it('follows prerequisites and matched segments transitively, and nothing else', () => {
    const data = store({
      features: [
        {
          key: 'publish',
          version: 1,
          prerequisites: [{ key: 'base' }],
          rules: [segmentRule('vip')],
        },
        { key: 'base', version: 2, rules: [segmentRule('beta')] },
        { key: 'unrelated', version: 1 },
      ],
      segments: [
        { key: 'vip', version: 1 },
        { key: 'beta', version: 1 },
        { key: 'other', version: 1 },
      ],
    });
    const found = flagsAndDependencies(data, ['publish']);
    expect([...found.keys()].sort()).toEqual(
      [
        itemId('features', 'publish'),
        itemId('features', 'base'),
        itemId('segments', 'vip'),
        itemId('segments', 'beta'),
      ].sort(),
    );
    expect(found.get('features:base')).toMatchObject({ kind: 'features', key: 'base' });
  });

  it('includes a deleted flag without following it, and skips keys it does not hold', () => {
    const data = store({
      features: [{ key: 'publish', version: 3, deleted: true, prerequisites: [{ key: 'base' }] }],
      segments: [],
    });
    data.get('features')?.set('base', { key: 'base', version: 1 });
    const found = flagsAndDependencies(data, ['publish', 'missing']);
    expect([...found.keys()]).toEqual(['features:publish']);
  });

  it('stops on a cycle of prerequisites', () => {
    const data = store({
      features: [
        { key: 'a', version: 1, prerequisites: [{ key: 'b' }] },
        { key: 'b', version: 1, prerequisites: [{ key: 'a' }] },
      ],
    });
    expect([...flagsAndDependencies(data, ['a']).keys()].sort()).toEqual([
      'features:a',
      'features:b',
    ]);
  });
});
