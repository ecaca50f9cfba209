/**
 * Flags and segments as JSON, and back as the SDK evaluates them.
 *
 * The SDK keeps items in a processed form: attribute references as objects,
 * long target lists as Sets (`generated_*Set`). Saving one writes what
 * LaunchDarkly sent (those fields undone, without touching the SDK's copy);
 * reviving one processes it again with the SDK's own `reviveFullPayload`, so
 * a saved item evaluates exactly as the one received.
 */
import { type LDFeatureStoreItem, reviveFullPayload } from '@launchdarkly/node-server-sdk';

/** The SDK's namespaces for flags and segments. */
export type FlagDataNamespace = 'features' | 'segments';

/** Fields the SDK adds while processing an item; never part of LaunchDarkly's data. */
const DERIVED = new Set(['attributeReference', 'bucketByAttributeReference']);

const SETS: readonly [setField: string, listField: string][] = [
  ['generated_includedSet', 'included'],
  ['generated_excludedSet', 'excluded'],
  ['generated_valuesSet', 'values'],
];

function restoreLists(_key: string, value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const record = value as Record<string, unknown>;
  if (!SETS.some(([setField]) => record[setField] instanceof Set)) return value;
  // A copy: the SDK's item stays as it is.
  const copy: Record<string, unknown> = { ...record };
  for (const [setField, listField] of SETS) {
    const set = copy[setField];
    if (!(set instanceof Set)) continue;
    copy[listField] = [...set];
    delete copy[setField];
  }
  return copy;
}

/** An item as LaunchDarkly sent it, as JSON text. */
export function itemJson(item: LDFeatureStoreItem): string {
  return JSON.stringify(item, (key, value) =>
    DERIVED.has(key) ? undefined : restoreLists(key, value),
  );
}

/** Items of each namespace, keyed by their key. */
export type FlagData = Record<FlagDataNamespace, Record<string, LDFeatureStoreItem>>;

/** Processes saved items (parsed JSON) into the form the SDK evaluates; deletion placeholders stay as they are. */
export function reviveItems(saved: FlagData): FlagData {
  const live = (items: Record<string, LDFeatureStoreItem>) =>
    Object.fromEntries(Object.entries(items).filter(([, item]) => !item.deleted));
  reviveFullPayload({ flags: live(saved.features), segments: live(saved.segments) });
  return saved;
}
