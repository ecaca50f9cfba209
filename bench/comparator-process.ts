/**
 * Starts a comparator (raw amqplib, the cheapest relay, graphile-worker) in a
 * process of its own, as the relay runs in its own: the CPU of each process
 * can then be read apart from /proc.
 */
import { fileURLToPath } from 'node:url';
import type { GraphileSettings } from './graphile-outbox.js';
import { benchProcess, type RelayProcess } from './harness.js';

/** What the child does; passed to it as JSON. */
export type ComparatorJob = { databaseUrl: string; amqpUrl: string } & (
  | { kind: 'raw'; routingKey: string; messages: number; channels: number; tenants: number }
  | { kind: 'ceiling'; schema: string; workers: number }
  | { kind: 'graphile'; settings: GraphileSettings }
);

const MAIN = fileURLToPath(new URL('./comparator-main.ts', import.meta.url));

/** Spawns `node --import tsx bench/comparator-main.ts` for `job` (one node process, no tsx wrapper). */
export function spawnComparator(job: ComparatorJob): RelayProcess {
  return benchProcess(process.execPath, ['--import', 'tsx', MAIN], {
    PATH: process.env.PATH,
    BENCH_COMPARATOR: JSON.stringify(job),
  });
}
