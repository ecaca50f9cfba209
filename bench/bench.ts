/**
 * `npm run bench`: measures outbox-relay against the broker's own limit and a
 * naive relay, in one run, on the local PostgreSQL and RabbitMQ.
 *
 *   npm run bench                    full run (about 30 minutes)
 *   npm run bench -- --quick         smaller sizes (under 2 minutes)
 *   npm run bench -- --json          also print the results as JSON
 *   npm run bench -- --only latency,write-path
 *   npm run bench -- --update-docs   write the results into docs/benchmarks.md
 *   npm run bench -- --cpu-prof      profile every spawned relay (.bench/profiles)
 *   npm run bench -- --rounds 5      alternating throughput rounds (default 3, 2 with --quick)
 *
 * BENCH_DATABASE_URL (an admin connection; the bench creates and drops the
 * database outbox_bench) and BENCH_AMQP_URL default to the local services.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { measureBacklog } from './backlog.js';
import { measureClaimCapacity } from './claim-capacity.js';
import { measureFailover } from './failover.js';
import { closeBenchEnv, openBenchEnv, percentile, setRelayNodeArgs } from './harness.js';
import { measureIdle } from './idle.js';
import { measureLatency } from './latency.js';
import { measureHorizontal, measureMemory } from './resources.js';
import { measureFlood, measurePausedBacklog } from './tenants.js';
import { type Comparator, cpuLine, measureNaive, measureThroughput } from './throughput.js';
import { measureWriteFloor } from './write-floor.js';
import { measureBrokerDown, measureStatementNaming, measureWritePath } from './write-path.js';

const SCENARIOS = [
  'throughput',
  'naive',
  'latency',
  'write-path',
  'backlog',
  'tenants',
  'memory',
  'horizontal',
  'idle',
  'failover',
  'claim-capacity',
] as const;
type Scenario = (typeof SCENARIOS)[number];

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    json: { type: 'boolean' },
    only: { type: 'string' },
    'update-docs': { type: 'boolean' },
    'cpu-prof': { type: 'boolean' },
    rounds: { type: 'string' },
  },
});
const quick = values.quick === true;
const only = new Set((values.only ?? SCENARIOS.join(',')).split(',').map((s) => s.trim()));
for (const name of only) {
  if (!SCENARIOS.includes(name as Scenario)) {
    process.stderr.write(`bench: unknown scenario '${name}' (known: ${SCENARIOS.join(', ')})\n`);
    process.exit(2);
  }
}
const sizes = quick
  ? {
      throughput: 20_000,
      throughputRounds: 2,
      naive: 5_000,
      latencySeconds: 5,
      writeSeconds: 1.5,
      enqueueCalls: 5,
      backlog: 1_000_000,
      sample: 20_000,
      held: 100_000,
      flood: 20_000,
      memory: 100_000,
      horizontal: 30_000,
      idleCpuSeconds: 5,
      idleSilences: [1.5, 1.5, 1.5, 1.5, 10],
      failoverRuns: 2,
    }
  : {
      throughput: 200_000,
      throughputRounds: 3,
      naive: 20_000,
      latencySeconds: 20,
      writeSeconds: 4,
      enqueueCalls: 20,
      backlog: 10_000_000,
      sample: 100_000,
      held: 1_000_000,
      flood: 200_000,
      memory: 1_000_000,
      horizontal: 200_000,
      idleCpuSeconds: 20,
      idleSilences: [1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 60],
      failoverRuns: 5,
    };

if (values['cpu-prof']) {
  mkdirSync('.bench/profiles', { recursive: true });
  setRelayNodeArgs(['--cpu-prof', '--cpu-prof-dir=.bench/profiles']);
}

const log = (line: string) => process.stderr.write(`${line}\n`);

/** One line of the results table. */
interface Row {
  metric: string;
  value: string;
  target: string;
  ok: boolean | undefined;
}

const rows: Row[] = [];
const results: Record<string, unknown> = {};
const add = (metric: string, value: string, target = '', ok: boolean | undefined = undefined) =>
  rows.push({ metric, value, target, ok });
const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => `${n.toFixed(2)} ms`;
const pct = (n: number) => `${(100 * n).toFixed(0)}%`;

const adminUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const amqpUrl = process.env.BENCH_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const started = performance.now();
const env = await openBenchEnv(adminUrl, amqpUrl).catch((error: unknown) => {
  process.stderr.write(
    `bench: cannot reach PostgreSQL (${adminUrl}) or RabbitMQ (${amqpUrl}): ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});

const machine = {
  cpus: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  postgres: String((await env.pool.query('show server_version')).rows[0]?.server_version),
  rabbitmq: String(
    (env.amqp as unknown as { connection: { serverProperties: { version?: string } } }).connection
      .serverProperties.version,
  ),
};
results.machine = machine;
results.mode = quick ? 'quick' : 'full';
log(
  `outbox-relay bench (${quick ? 'quick' : 'full'}) on ${machine.cpus}, ${machine.memoryGiB} GiB, Node ${machine.node}, PostgreSQL ${machine.postgres}, RabbitMQ ${machine.rabbitmq}`,
);

try {
  let relayClassic: number | undefined;
  if (only.has('throughput')) {
    const rounds = values.rounds === undefined ? sizes.throughputRounds : Number(values.rounds);
    log(
      `\nthroughput: ${int(sizes.throughput)} persistent 1 KiB messages, durable exchange → durable queue, drained; ${rounds} alternating rounds of raw, ceiling, relay, graphile-worker`,
    );
    for (const type of ['classic', 'quorum'] as const) {
      const r = await measureThroughput(env, type, { messages: sizes.throughput, rounds }, log);
      results[`throughput_${type}`] = r;
      if (type === 'classic') relayClassic = r.relay;
      const perRound = (a: Comparator, b: Comparator) =>
        r.rounds.map((round) => (round.best[a].rate / round.best[b].rate).toFixed(2)).join(', ');
      add(`raw amqplib confirmed publish, ${type} (msg/s)`, int(r.raw));
      add(`outbox-relay end to end, ${type} (msg/s)`, int(r.relay));
      add(`relay / raw, ${type}`, r.ratio.toFixed(2), '≥ 0.80', r.ratio >= 0.8);
      add(
        `machine CPU per message (both cores, all processes), ${type}: raw / relay`,
        `${r.rawCpuMicros.toFixed(0)} µs / ${r.relayCpuMicros.toFixed(0)} µs`,
      );
      add(`cheapest relay (the ceiling), ${type} (msg/s)`, int(r.ceiling));
      add(`graphile-worker as outbox, ${type} (msg/s)`, int(r.graphile));
      add(
        `relay / ceiling, ${type} (median; rounds)`,
        `${r.relayToCeiling.toFixed(2)} (${perRound('relay', 'ceiling')})`,
        '≥ 0.90',
        r.relayToCeiling >= 0.9,
      );
      add(
        `… relay / ceiling, ${type}, with the ceiling's faster variant in each round (the rule before 2026-11-30)`,
        r.relayToCeilingFasterEachRound.toFixed(2),
      );
      add(
        `variants kept for every round, ${type} (the higher median rate)`,
        `raw: ${r.rounds[0]?.best.raw.variant}; ceiling: ${r.rounds[0]?.best.ceiling.variant}; relay: ${r.rounds[0]?.best.relay.variant}`,
      );
      add(
        `relay / graphile-worker, ${type} (median; rounds)`,
        `${r.relayToGraphile.toFixed(2)} (${perRound('relay', 'graphile')})`,
        '≥ 1.5',
        r.relayToGraphile >= 1.5,
      );
      add(
        `ceiling / raw, ${type} (median; rounds)`,
        `${r.ceilingToRaw.toFixed(2)} (${perRound('ceiling', 'raw')})`,
      );
      for (const c of ['raw', 'ceiling', 'relay', 'graphile'] as const) {
        add(
          `CPU µs per message, ${type}, ${c}: publisher / postgres / rabbitmq / consumer / machine`,
          cpuLine(r.cpu[c]),
        );
      }
    }
  }
  if (only.has('naive')) {
    log(`\nnaive relay: ${int(sizes.naive)} messages`);
    const r = await measureNaive(env, sizes.naive, log);
    results.naive = r;
    add('naive relay, classic (msg/s)', int(r.naive));
    if (relayClassic !== undefined) {
      const ratio = relayClassic / r.naive;
      add('outbox-relay / naive relay', `${ratio.toFixed(1)}×`, '≥ 5×', ratio >= 5);
    }
  }
  if (only.has('latency')) {
    log('\nlatency: 1,000 events/s offered by 8 writers');
    const r = await measureLatency(
      env,
      { rate: 1000, writers: 8, seconds: sizes.latencySeconds },
      log,
    );
    results.latency = r;
    add('commit → broker ack p50 at 1,000 events/s', ms(r.p50), '≤ 3 ms', r.p50 <= 3);
    add('commit → broker ack p99 at 1,000 events/s', ms(r.p99), '≤ 20 ms', r.p99 <= 20);
    const own = await measureLatency(
      env,
      { rate: 1000, writers: 8, seconds: sizes.latencySeconds, relay: 'process' },
      log,
    );
    results.latency_relay_process = own;
    add(
      'relay in its own process: commit → arrival p50 / p99 at 1,000 events/s',
      `${ms(own.p50)} / ${ms(own.p99)}`,
    );
  }
  if (only.has('write-path')) {
    log('\nwrite path: insert an order, with and without one enqueue (no relay running)');
    const r = await measureWritePath(
      env,
      { seconds: sizes.writeSeconds, enqueueCalls: sizes.enqueueCalls },
      log,
    );
    results.writePath = r;
    for (const writers of ['1', '32']) {
      const added = r.addedP50[writers] ?? Number.NaN;
      add(`added p50 time of one enqueue, ${writers} writer(s)`, pct(added), '≤ 10%', added <= 0.1);
    }
    add(
      'commit throughput with outbox / without, 32 writers',
      r.throughputRatio32.toFixed(2),
      '≥ 0.90',
      r.throughputRatio32 >= 0.9,
    );
    add(
      '… with the opt-in writer NOTIFY',
      r.throughputRatio32Notify.toFixed(2),
      '(for comparison)',
    );
    add('enqueue of 1,000 messages in one call, p50', ms(r.enqueue1000P50Ms));
    log('\nwrite path against its floor: the same row into a table with only its primary key');
    const floor = await measureWriteFloor(
      env,
      { rounds: quick ? 3 : 5, seconds: Math.max(1, Math.round(sizes.writeSeconds / 2)) },
      log,
    );
    results.writeFloor = floor;
    for (const c of floor.comparisons) {
      add(
        `enqueue / floor, ${c.writers} writer(s): p50 time`,
        c.p50Ratio.toFixed(3),
        '≤ 1.15',
        c.p50Ratio <= 1.15,
      );
      add(
        `enqueue / floor, ${c.writers} writer(s): throughput (floor tx/s / enqueue tx/s)`,
        c.throughputRatio.toFixed(3),
        '≤ 1.15',
        c.throughputRatio <= 1.15,
      );
      for (const [mode, ratio] of Object.entries(c.againstFloor)) {
        if (mode === 'floor' || mode === 'enqueue') continue;
        add(
          `… ${mode} / floor, ${c.writers} writer(s): p50, throughput`,
          `${ratio.p50.toFixed(3)}, ${ratio.throughput.toFixed(3)}`,
          '(breakdown)',
        );
      }
    }
    add(
      'enqueue validation and encoding, client recognition, per message',
      `${floor.encodeMicros.toFixed(2)} µs, ${floor.executorMicros.toFixed(2)} µs`,
      '(breakdown)',
    );
    log('\nwrite path: unnamed statements (the default) against named ones');
    const naming = await measureStatementNaming(
      env,
      { rounds: 8, seconds: Math.max(1, Math.round(sizes.writeSeconds / 4)) },
      log,
    );
    results.statementNaming = naming;
    for (const run of naming) {
      add(
        `unnamed / named statements, ${run.writers} writer(s): p50, throughput`,
        `${(run.unnamed.p50Ms / run.named.p50Ms).toFixed(2)}, ${run.throughputRatio.toFixed(2)}`,
        '(pooler-safe default)',
      );
    }
    const down = await measureBrokerDown(env, sizes.writeSeconds, log);
    results.brokerDown = down;
    add(
      'enqueue throughput, broker unreachable / reachable (32 writers, relay running)',
      down.ratio.toFixed(2),
      '≥ 0.95',
      down.ratio >= 0.95,
    );
  }
  if (only.has('backlog')) {
    log(`\nbig backlog: ${int(sizes.backlog)} pending rows against ${int(sizes.sample)}`);
    const r = await measureBacklog(env, { largeRows: sizes.backlog, sample: sizes.sample }, log);
    results.backlog = r;
    add('claim of 500 rows at 10k pending (server time)', ms(r.claimMsSmall));
    add(
      `claim of 500 rows at ${int(r.largeRows)} pending`,
      ms(r.claimMsLarge),
      'O(batch)',
      r.claimMsLarge <= 2 * r.claimMsSmall + 1,
    );
    add(
      `relay rate, ${int(r.largeRows)} pending / small backlog`,
      r.ratio.toFixed(2),
      '≥ 0.90',
      r.ratio >= 0.9,
    );
  }
  if (only.has('tenants')) {
    log(
      `\ntenants: a paused tenant's ${int(sizes.held)} held rows; a ${int(sizes.flood)}-event flood`,
    );
    const paused = await measurePausedBacklog(
      env,
      { heldRows: sizes.held, others: sizes.sample },
      log,
    );
    results.pausedBacklog = paused;
    add(
      `other tenants' rate with ${int(paused.heldRows)} held rows of a paused tenant / without`,
      paused.ratio.toFixed(2),
      '≥ 0.90',
      paused.ratio >= 0.9,
    );
    const flood = await measureFlood(env, { flood: sizes.flood, rate: 200 }, log);
    results.flood = flood;
    add(`flood tenant alone, draining ${int(flood.flood)} events (msg/s)`, int(flood.floodRate));
    add(
      'other tenants during the flood: commit → ack p99',
      ms(flood.othersP99),
      '< 100 ms',
      flood.othersP99 < 100,
    );
  }
  if (only.has('memory')) {
    log(`\nmemory: relay RSS while draining ${int(sizes.memory)} rows`);
    const r = await measureMemory(env, sizes.memory, log);
    results.memory = r;
    add(
      `relay RSS max while draining ${int(r.rows)} rows`,
      `${r.maxMiB.toFixed(0)} MiB`,
      '< 200 MiB',
      r.maxMiB < 200,
    );
    add(
      'relay RSS, second tenth → last tenth',
      `${r.earlyMiB.toFixed(0)} → ${r.lateMiB.toFixed(0)} MiB`,
      'flat',
      r.lateMiB <= r.earlyMiB * 1.2 + 5,
    );
  }
  if (only.has('horizontal')) {
    log(`\nhorizontal: 1, 2 and 3 relays on one database, ${int(sizes.horizontal)} rows each`);
    const runs = await measureHorizontal(env, sizes.horizontal, log);
    results.horizontal = runs;
    for (const run of runs) {
      add(
        `${run.relays} relay(s) (msg/s; CPU of 2 cores: relays / postgres / rabbitmq)`,
        `${int(run.rate)}; ${pct(run.cpu.relays)} / ${pct(run.cpu.postgres)} / ${pct(run.cpu.rabbitmq)}, machine ${pct(run.machineBusy)} busy`,
      );
    }
  }
  if (only.has('idle')) {
    log(
      `\nidle: one relay and its PostgreSQL backends, ${sizes.idleCpuSeconds} s with nothing written; then one event after each silence`,
    );
    const r = await measureIdle(
      env,
      { cpuSeconds: sizes.idleCpuSeconds, silences: sizes.idleSilences },
      log,
    );
    results.idle = r;
    const total = r.relayCore + r.postgresCore;
    add(
      `idle relay + its PostgreSQL backends, CPU (share of one core, over ${r.cpuWindowSeconds.toFixed(0)} s)`,
      `${(100 * total).toFixed(2)}% (relay ${(100 * r.relayCore).toFixed(2)}%, postgres ${(100 * r.postgresCore).toFixed(2)}%)`,
      '≤ 1%',
      total <= 0.01,
    );
    const longest = r.firstEvents.reduce((a, b) => (b.silenceSeconds > a.silenceSeconds ? b : a));
    add(
      `first event after a silence, commit → arrival: p50 / max of ${r.firstEvents.length}`,
      `${ms(r.firstEventP50Ms)} / ${ms(r.firstEventMaxMs)}`,
      '≤ 250 ms',
      r.firstEventMaxMs <= 250,
    );
    add(
      `… after ${longest.silenceSeconds} s of silence`,
      ms(longest.ms),
      '≤ 250 ms',
      longest.ms <= 250,
    );
  }
  if (only.has('failover')) {
    log(
      `\nfailover: SIGKILL a relay, ${sizes.failoverRuns} runs each with a restart and with a standby`,
    );
    const r = await measureFailover(env, sizes.failoverRuns, log);
    results.failover = r;
    for (const mode of ['restart', 'standby'] as const) {
      const times = r[mode];
      add(
        `SIGKILL → its tenants publish again, ${mode === 'restart' ? 'relay restarted at once' : 'standby relay running'}: median / max of ${times.length}`,
        `${ms(percentile(times, 50))} / ${ms(percentile(times, 100))}`,
        '< 5 s',
        percentile(times, 100) < 5000,
      );
    }
  }
  if (only.has('claim-capacity')) {
    log('\nclaim capacity: 1, 2, 4, 8 relays in one process, a publisher that acks at once');
    const points = await measureClaimCapacity(
      env,
      { rows: quick ? 300_000 : 500_000, seconds: 3 },
      log,
    );
    results.claimCapacity = points;
    for (const p of points) {
      add(
        `claim capacity, ${p.relays} relay(s): claims/s, rows/s, lock wait share of claim time`,
        `${int(p.claimsPerSecond)}, ${int(p.rowsPerSecond)}, ${pct(p.waitShare)}`,
      );
    }
  }
} finally {
  await closeBenchEnv(env);
}

const seconds = (performance.now() - started) / 1000;
results.seconds = seconds;
const table = [
  '| Metric | Value | Target | |',
  '| --- | --- | --- | --- |',
  ...rows.map(
    (r) =>
      `| ${r.metric} | ${r.value} | ${r.target} | ${r.ok === undefined ? '' : r.ok ? 'met' : '**missed**'} |`,
  ),
].join('\n');
process.stdout.write(`\n${table}\n\nfinished in ${seconds.toFixed(0)} s\n`);
if (values.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
mkdirSync('.bench', { recursive: true });
writeFileSync('.bench/results.json', `${JSON.stringify(results, null, 2)}\n`);

if (values['update-docs']) {
  const file = 'docs/benchmarks.md';
  const start = '<!-- bench-results:start -->';
  const end = '<!-- bench-results:end -->';
  const text = readFileSync(file, 'utf8');
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from < 0 || to < from) throw new Error(`${file} has no ${start} … ${end} markers`);
  const block = [
    '',
    `Run of ${new Date().toISOString().slice(0, 10)} (\`npm run bench${quick ? ' -- --quick' : ''}\`, ${seconds.toFixed(0)} s) on ${machine.cpus}, ${machine.memoryGiB} GiB RAM; Node ${machine.node}, PostgreSQL ${machine.postgres}, RabbitMQ ${machine.rabbitmq}; everything on the one machine.`,
    '',
    table,
    '',
  ].join('\n');
  writeFileSync(file, `${text.slice(0, from + start.length)}\n${block}\n${text.slice(to)}`);
  log(`wrote ${file}`);
}
