import { describe, expect, it } from 'vitest';
import { chooseVariants, type Drain, type RoundDrains } from '../../bench/throughput.js';

const drain = (rate: number): Drain => ({
  rate,
  cpu: { publisher: 0, postgres: 0, rabbitmq: 0, consumer: 0, machine: 0 },
});

/** A round whose ceiling drained at `one` and `two` msg/s with one and two workers. */
function round(one: number, two: number): RoundDrains {
  return {
    order: ['raw', 'ceiling', 'relay', 'graphile'],
    drains: {
      raw: { '1 channel': drain(100), '2 channels': drain(90) },
      ceiling: { '1 worker': drain(one), '2 workers': drain(two) },
      relay: { 'outbox-relay run': drain(50) },
      graphile: { 'concurrency 500': drain(40) },
    },
  };
}

describe('the bench keeps one variant of each comparator for every round', () => {
  it('keeps the variant with the higher median rate, not the faster one of each round', () => {
    // Two workers win one round by a wide margin (a lucky draw) but lose the median.
    const chosen = chooseVariants([round(100, 130), round(100, 95), round(100, 96)]);
    expect(chosen).toEqual({
      raw: '1 channel',
      ceiling: '1 worker',
      relay: 'outbox-relay run',
      graphile: 'concurrency 500',
    });
    expect(chooseVariants([round(100, 101), round(100, 99), round(100, 102)]).ceiling).toBe(
      '2 workers',
    );
  });
});
