/**
 * CPU per message of each party to a drain: the publishing process (relay,
 * ceiling, graphile-worker or raw amqplib), PostgreSQL (the server's own
 * processes and every backend of the bench database, since the comparators
 * connect in different ways), RabbitMQ (beam.smp), the
 * consumer (this bench process) and the whole machine.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { CpuTracker, cpuSeconds, machineTicks } from './harness.js';

/** µs of CPU per message, by party. */
export interface CpuPerMessage {
  publisher: number;
  postgres: number;
  rabbitmq: number;
  consumer: number;
  /** Both cores, every process on the machine (other helpers' work included). */
  machine: number;
}

/**
 * Pids whose process name (/proc/pid/comm) is exactly `name` and that `keep`
 * (given the command line) accepts.
 */
export function pidsNamed(name: string, keep: (cmdline: string) => boolean = () => true): number[] {
  const pids: number[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return pids;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (
        readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === name &&
        keep(readFileSync(`/proc/${entry}/cmdline`, 'utf8'))
      ) {
        pids.push(Number(entry));
      }
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

/**
 * The PostgreSQL server's own processes (postmaster, checkpointer, WAL
 * writer, autovacuum…) and the client backends of the bench database, but not
 * other databases' backends: other work on this shared machine would count
 * otherwise. A backend's title reads `postgres: 15/main: user database host(port) …`.
 */
function ofBenchDatabase(cmdline: string): boolean {
  const clientBackend = /\(\d+\)|\[local\]/.test(cmdline);
  return !clientBackend || cmdline.includes(' outbox_bench ');
}

/**
 * Tracks the CPU of each party over a window. PostgreSQL backends come and
 * go (pools), so `sample()` should run every few hundred ms meanwhile; a
 * backend that ends between two samples loses at most that much of its CPU.
 */
export class DrainCpu {
  private readonly publisher: CpuTracker;
  private readonly postgres = new CpuTracker(async () => pidsNamed('postgres', ofBenchDatabase));
  private readonly rabbitmq = new CpuTracker(async () => pidsNamed('beam.smp'));
  private consumerStart = 0;
  private consumerEnd = 0;
  private machineStart = machineTicks();
  private machineEnd = machineTicks();

  constructor(publisherPid: number) {
    this.publisher = new CpuTracker(async () => [publisherPid]);
  }

  async start(): Promise<void> {
    this.machineStart = machineTicks();
    this.consumerStart = cpuSeconds(process.pid) ?? 0;
    await this.publisher.start();
    await this.postgres.start();
    await this.rabbitmq.start();
  }

  async sample(): Promise<void> {
    await this.publisher.sample();
    await this.postgres.sample();
    await this.rabbitmq.sample();
    this.consumerEnd = cpuSeconds(process.pid) ?? 0;
    this.machineEnd = machineTicks();
  }

  perMessage(messages: number): CpuPerMessage {
    const micros = (seconds: number) => (seconds * 1e6) / messages;
    return {
      publisher: micros(this.publisher.used().cpuSeconds),
      postgres: micros(this.postgres.used().cpuSeconds),
      rabbitmq: micros(this.rabbitmq.used().cpuSeconds),
      consumer: micros(this.consumerEnd - this.consumerStart),
      // /proc/stat ticks are 10 ms.
      machine: micros((this.machineEnd.busy - this.machineStart.busy) / 100),
    };
  }
}
