/**
 * The batches in flight: counted from start to end, full at the bound, a
 * failure handed to the caller, and `allEnded` for shutdown, met or timed out.
 */
import { describe, expect, it } from 'vitest';
import { BatchesInFlight } from '../../src/relay/batches-in-flight.js';

/** A batch the test ends by hand. */
function pendingBatch() {
  let end: () => void = () => undefined;
  let fail: (error: Error) => void = () => undefined;
  const promise = new Promise<void>((resolve, reject) => {
    end = resolve;
    fail = reject;
  });
  return { run: () => promise, end, fail };
}

describe('the batches in flight', () => {
  it('counts a batch from start until it ends, and is full at the bound', async () => {
    const batches = new BatchesInFlight(2);
    const [a, b] = [pendingBatch(), pendingBatch()];
    batches.start(a.run, () => undefined);
    expect(batches.count()).toBe(1);
    expect(batches.full()).toBe(false);
    batches.start(b.run, () => undefined);
    expect(batches.full()).toBe(true);
    a.end();
    expect(await batches.waitForEnd(5000)).toBe(true);
    expect(batches.count()).toBe(1);
    expect(batches.full()).toBe(false);
    b.end();
    expect(await batches.allEnded(Date.now() + 5000)).toBe(true);
    expect(batches.count()).toBe(0);
  });

  it('hands a failed batch to `failed`, and counts it as ended', async () => {
    const batches = new BatchesInFlight(1);
    const batch = pendingBatch();
    const failures: unknown[] = [];
    batches.start(batch.run, (error) => failures.push(error));
    batch.fail(new Error('cannot record publish results'));
    expect(await batches.allEnded(Date.now() + 5000)).toBe(true);
    expect(failures).toEqual([new Error('cannot record publish results')]);
  });

  it('says false when the deadline comes before the batches end', async () => {
    const batches = new BatchesInFlight(1);
    const batch = pendingBatch();
    batches.start(batch.run, () => undefined);
    expect(await batches.allEnded(Date.now() + 20)).toBe(false);
    expect(batches.count()).toBe(1);
    batch.end();
    expect(await batches.allEnded(Date.now() + 5000)).toBe(true);
  });

  it('has nothing to wait for when no batch was started', async () => {
    expect(await new BatchesInFlight(3).allEnded(Date.now())).toBe(true);
  });
});
