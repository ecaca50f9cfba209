/**
 * What the gate's flags depend on: a flag evaluates through its prerequisite
 * flags and the segments its rules match, so the flag snapshot saves those
 * too (flag-snapshot-store.ts), or a relay restarted without LaunchDarkly
 * would evaluate the flags against missing pieces.
 */
import type { LDFeatureStoreItem } from '@launchdarkly/node-server-sdk';
import type { FlagDataNamespace } from './flag-item-json.js';

type Item = LDFeatureStoreItem;
type Clause = { op?: unknown; values?: unknown };

/** One needed flag or segment, as the store holds it. */
export interface NeededItem {
  kind: FlagDataNamespace;
  key: string;
  item: Item;
}

/** The key of a flag or segment across both namespaces (`features:x`, `segments:y`). */
export function itemId(kind: FlagDataNamespace, key: string): string {
  return `${kind}:${key}`;
}

function segmentsUsedBy(item: Item): string[] {
  const rules = Array.isArray(item.rules) ? (item.rules as { clauses?: Clause[] }[]) : [];
  return rules
    .flatMap((rule) => rule.clauses ?? [])
    .filter((clause) => clause.op === 'segmentMatch' && Array.isArray(clause.values))
    .flatMap((clause) => (clause.values as unknown[]).filter((v) => typeof v === 'string'));
}

/**
 * The flags `flagKeys` and, transitively, their prerequisite flags and the
 * segments they match, found in `data` (namespace → key → item), by
 * {@link itemId}. A deleted item is included (its deletion must be saved) but
 * not followed.
 */
export function flagsAndDependencies(
  data: ReadonlyMap<string, ReadonlyMap<string, Item>>,
  flagKeys: readonly string[],
): Map<string, NeededItem> {
  const found = new Map<string, NeededItem>();
  const visit = (kind: FlagDataNamespace, key: string) => {
    const item = data.get(kind)?.get(key);
    if (!item || found.has(itemId(kind, key))) return;
    found.set(itemId(kind, key), { kind, key, item });
    if (item.deleted) return;
    const prerequisites = Array.isArray(item.prerequisites)
      ? (item.prerequisites as { key?: unknown }[])
      : [];
    for (const prerequisite of prerequisites) {
      if (typeof prerequisite.key === 'string') visit('features', prerequisite.key);
    }
    for (const segment of segmentsUsedBy(item)) visit('segments', segment);
  };
  for (const key of flagKeys) visit('features', key);
  return found;
}
