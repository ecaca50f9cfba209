/**
 * LaunchDarkly flag definitions in the SDK's data format, for the file
 * source and the local streaming server, with per-tenant targets.
 */

/** The publish flag: true for every tenant except those listed (paused). */
/** A flag in the SDK's data format. */
export type FlagData = Record<string, unknown> & { key: string };

export function publishFlag(paused: readonly string[], version = 1): FlagData {
  return {
    key: 'outbox-publish-enabled',
    version,
    on: true,
    variations: [true, false],
    offVariation: 0,
    fallthrough: { variation: 0 },
    targets: [],
    contextTargets:
      paused.length > 0 ? [{ contextKind: 'tenant', values: [...paused], variation: 1 }] : [],
    rules: [],
    prerequisites: [],
    salt: 'outbox',
  };
}

/** The rate-limit flag: `limits[tenant]` events per second for listed tenants, 0 (unlimited) otherwise. */
export function rateLimitFlag(limits: Readonly<Record<string, number>>, version = 1): FlagData {
  const values = [0, ...new Set(Object.values(limits))];
  return {
    key: 'outbox-tenant-rate-limit',
    version,
    on: true,
    variations: values,
    offVariation: 0,
    fallthrough: { variation: 0 },
    targets: [],
    contextTargets: values.slice(1).map((rate) => ({
      contextKind: 'tenant',
      values: Object.entries(limits)
        .filter(([, r]) => r === rate)
        .map(([tenant]) => tenant),
      variation: values.indexOf(rate),
    })),
    rules: [],
    prerequisites: [],
    salt: 'outbox',
  };
}

/** A flags file (LaunchDarkly file data source format) pausing `paused`. */
export function flagsFileJson(paused: readonly string[], version = 1): string {
  return JSON.stringify(
    { flags: { 'outbox-publish-enabled': publishFlag(paused, version) } },
    null,
    2,
  );
}

/** What {@link publishFlagWithRules} pauses besides its targets. */
export interface PauseRules {
  /** Tenants paused by their id in the flag's targets. */
  paused?: readonly string[];
  /** A rule pauses every tenant whose id starts with this. */
  pausedPrefix?: string;
  /** A rule pauses every member of this segment. */
  pausedSegment?: string;
}

/** The publish flag, pausing by targets, by a rule on the tenant's id and by a segment rule. */
export function publishFlagWithRules(rules: PauseRules, version: number): FlagData {
  const clauses = [
    ...(rules.pausedPrefix
      ? [
          {
            contextKind: 'tenant',
            attribute: 'key',
            op: 'startsWith',
            values: [rules.pausedPrefix],
            negate: false,
          },
        ]
      : []),
  ];
  return {
    ...publishFlag(rules.paused ?? [], version),
    rules: [
      ...clauses.map((clause, i) => ({ id: `prefix-${i}`, variation: 1, clauses: [clause] })),
      ...(rules.pausedSegment
        ? [
            {
              id: 'segment',
              variation: 1,
              clauses: [
                {
                  attribute: '',
                  op: 'segmentMatch',
                  values: [rules.pausedSegment],
                  negate: false,
                },
              ],
            },
          ]
        : []),
    ],
  };
}

/** A segment of tenants (over 100 of them, the SDK keeps the list as a Set). */
export function tenantSegment(key: string, tenants: readonly string[], version = 1): FlagData {
  return {
    key,
    version,
    included: [],
    excluded: [],
    includedContexts: [{ contextKind: 'tenant', values: [...tenants] }],
    excludedContexts: [],
    rules: [],
    salt: 'outbox',
    deleted: false,
  };
}
