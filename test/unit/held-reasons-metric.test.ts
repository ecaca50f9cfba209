/**
 * messages_held_total counts claimed rows left pending by reason (paused,
 * throttled, fenced), each reason starting at 0 so rate() sees its first rows.
 */
import { describe, expect, it } from 'vitest';
import { RelayMetrics } from '../../src/metrics/prometheus-metrics.js';

function metrics(): RelayMetrics {
  return new RelayMetrics('t_', {
    broker: () => ({ connected: true, blocked: undefined, channels: 1 }),
    pausedTenants: () => 0,
    throttledTenants: () => 0,
    inFlight: () => 0,
    readiness: () => ({}),
  });
}

async function held(m: RelayMetrics): Promise<Record<string, number>> {
  const { body } = await m.exposition();
  const values: Record<string, number> = {};
  for (const match of body.matchAll(/^t_messages_held_total\{reason="(\w+)"\} (\d+)$/gm)) {
    values[match[1] as string] = Number(match[2]);
  }
  return values;
}

describe('messages_held_total', () => {
  it('starts every reason at 0', async () => {
    expect(await held(metrics())).toEqual({ paused: 0, throttled: 0, fenced: 0 });
  });

  it('adds each settled batch’s held rows under their reason', async () => {
    const m = metrics();
    const batch = { publishMs: 1, publishedCreatedAt: [], failures: [], dead: 0 };
    m.batchSettled({ ...batch, held: { paused: 3, throttled: 0, fenced: 0 } });
    m.batchSettled({ ...batch, held: { paused: 1, throttled: 5, fenced: 2 } });
    expect(await held(m)).toEqual({ paused: 4, throttled: 5, fenced: 2 });
  });
});
