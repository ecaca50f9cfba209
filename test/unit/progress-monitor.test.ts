/**
 * The relay loop's liveness as /healthz judges it, on a clock the test moves:
 * a loop that reports goes on being alive, one that goes quiet outside a known
 * wait is stalled after OUTBOX_STALL_TIMEOUT, a known wait never is, and a
 * loop that threw is dead at once.
 */
import { describe, expect, it } from 'vitest';
import { ProgressMonitor } from '../../src/relay/progress-monitor.js';
import { recordingLogger } from '../helpers/recording-logger.js';

const STALL_MS = 2000;

function setup() {
  let now = 0;
  const { logger, logged } = recordingLogger();
  const monitor = new ProgressMonitor({ stallTimeoutMs: STALL_MS, logger, now: () => now });
  return {
    monitor,
    logged,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('the relay loop progress monitor', () => {
  it('is alive while the loop reports, stalled after the stall timeout without a report, and alive again on the next one', () => {
    const { monitor, logged, advance } = setup();
    expect(monitor.check()).toMatchObject({ alive: true, status: 'ok', lastProgress: 'started' });
    advance(1500);
    monitor.beat('claimed');
    advance(STALL_MS);
    expect(monitor.check()).toMatchObject({
      alive: true,
      lastProgress: 'claimed',
      quietMs: STALL_MS,
    });

    advance(1);
    const stalled = monitor.check();
    expect(stalled).toMatchObject({ alive: false, status: 'stalled', lastProgress: 'claimed' });
    expect(stalled.detail).toContain(`no progress for ${STALL_MS + 1} ms`);
    monitor.check();
    expect(logged.filter((l) => l.message === 'relay loop stalled')).toHaveLength(1);

    monitor.beat('claimed');
    expect(monitor.check()).toMatchObject({ alive: true, status: 'ok' });
    expect(logged.at(-1)?.message).toBe('relay loop making progress again');
  });

  it('never counts a known wait as a stall, however long, and counts from its end', async () => {
    const { monitor, advance } = setup();
    let endWait: () => void = () => undefined;
    const waited = monitor.waiting(
      'caught-up',
      new Promise<void>((resolve) => {
        endWait = resolve;
      }),
    );
    advance(10 * STALL_MS);
    expect(monitor.check()).toMatchObject({
      alive: true,
      status: 'ok',
      lastProgress: 'caught-up',
      quietMs: 0,
    });
    endWait();
    await waited;
    advance(STALL_MS);
    expect(monitor.check().alive).toBe(true);
    advance(1);
    expect(monitor.check()).toMatchObject({ alive: false, lastProgress: 'caught-up' });
  });

  it('returns what the wait resolves to, and still ends the wait when it rejects', async () => {
    const { monitor, advance } = setup();
    await expect(monitor.waiting('broker-not-ready', Promise.resolve(true))).resolves.toBe(true);
    await expect(
      monitor.waiting('claim-failed', Promise.reject(new Error('boom'))),
    ).rejects.toThrow('boom');
    advance(STALL_MS + 1);
    expect(monitor.check()).toMatchObject({ alive: false, lastProgress: 'claim-failed' });
  });

  it('is dead at once when the loop threw, with the reason', () => {
    const { monitor } = setup();
    monitor.beat('claimed');
    monitor.ended(new Error('cannot read properties of undefined'));
    expect(monitor.check()).toMatchObject({
      alive: false,
      status: 'died',
      detail: 'the relay loop died: cannot read properties of undefined',
    });
  });

  it('stays alive while the relay stops on purpose', () => {
    const { monitor, advance } = setup();
    monitor.markStopping();
    advance(10 * STALL_MS);
    expect(monitor.check()).toMatchObject({ alive: true, status: 'stopping' });
  });
});
