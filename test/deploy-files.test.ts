/**
 * The deployment files checked without Docker, Prometheus or Grafana: the
 * Dockerfile's stages and health check, docker-compose.yml's shape, the
 * Grafana dashboard and the Prometheus alert rules. Every PromQL expression is
 * parsed with Prometheus' own grammar (@prometheus-io/lezer-promql) and may
 * only name metrics and labels the relay exports. The compose file is also
 * validated against the Compose specification's schema in CI (dclint), and
 * the alert rules with promtool.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parser as promqlParser } from '@prometheus-io/lezer-promql';
import client from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { METRICS, type MetricType } from '../src/metrics/metric-table.js';

const execFileAsync = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PREFIX = 'outbox_relay_';

function read(path: string): string {
  return readFileSync(`${ROOT}${path}`, 'utf8');
}

// ---------------------------------------------------------------------------
// The metrics the relay exports (src/metrics/metric-table.ts),
// plus prom-client's default process and Node.js metrics.

interface KnownMetric {
  type: MetricType;
  labels: readonly string[];
}

/** Labels every scraped series carries. */
const TARGET_LABELS = ['job', 'instance'];

/** The relay's own metrics, by name without the prefix. */
const RELAY_METRICS: Record<string, KnownMetric> = Object.fromEntries(
  Object.values(METRICS).map((spec) => [spec.name, { type: spec.type, labels: spec.labels }]),
);
const relayMetricNames = Object.keys(RELAY_METRICS);

/** prom-client's default metrics, registered with the relay's prefix. */
async function defaultMetrics(): Promise<Record<string, KnownMetric>> {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: PREFIX });
  const metrics: Record<string, KnownMetric> = {};
  for (const metric of await registry.getMetricsAsJSON()) {
    const labels = new Set(metric.values.flatMap((value) => Object.keys(value.labels)));
    metrics[metric.name.slice(PREFIX.length)] = {
      type: String(metric.type) as MetricType,
      labels: [...labels],
    };
  }
  registry.clear();
  return metrics;
}

let known: Record<string, KnownMetric>;

beforeAll(async () => {
  known = { ...(await defaultMetrics()), ...RELAY_METRICS };
});

/** The metric a series name belongs to (histograms have _bucket, _sum and _count series). */
function metricOf(
  series: string,
): { name: string; metric: KnownMetric; bucket: boolean } | undefined {
  if (!series.startsWith(PREFIX)) return undefined;
  const bare = series.slice(PREFIX.length);
  const direct = known[bare];
  if (direct && direct.type !== 'histogram') return { name: bare, metric: direct, bucket: false };
  const suffix = /_(bucket|sum|count)$/.exec(bare);
  const base = suffix ? bare.slice(0, suffix.index) : undefined;
  const histogram = base ? known[base] : undefined;
  if (base && histogram?.type === 'histogram') {
    return { name: base, metric: histogram, bucket: suffix?.[1] === 'bucket' };
  }
  return undefined;
}

/**
 * Parses one PromQL expression and returns the relay metrics it reads.
 * Throws on a syntax error, an unknown metric, a selector without a metric
 * name, or a label that none of its metrics carries.
 */
function checkPromql(expr: string): string[] {
  const tree = promqlParser.parse(expr);
  const problems: string[] = [];
  const used = new Set<string>();
  const labels = new Set<string>(TARGET_LABELS);
  const labelsUsed: string[] = [];
  tree.iterate({
    enter: (node) => {
      const text = expr.slice(node.from, node.to);
      if (node.type.isError)
        problems.push(`syntax error at ${node.from}: '${expr.slice(node.from)}'`);
      if (node.name === 'VectorSelector' && !node.node.getChild('Identifier')) {
        problems.push(`a selector without a metric name: '${text}'`);
      }
      if (node.name === 'Identifier' && node.node.parent?.name === 'VectorSelector') {
        const metric = metricOf(text);
        if (!metric) {
          problems.push(`unknown metric '${text}'`);
          return;
        }
        used.add(metric.name);
        for (const label of metric.metric.labels) labels.add(label);
        if (metric.bucket) labels.add('le');
      }
      if (node.name === 'LabelName') labelsUsed.push(text);
    },
  });
  for (const label of labelsUsed) {
    if (!labels.has(label)) problems.push(`label '${label}' is on none of its metrics`);
  }
  if (problems.length > 0) throw new Error(`${expr}\n  ${problems.join('\n  ')}`);
  return [...used];
}

describe('the PromQL checker', () => {
  it('accepts a valid expression and names the metrics it reads', () => {
    expect(
      checkPromql(
        'histogram_quantile(0.99, sum by (le) (rate(outbox_relay_commit_to_publish_seconds_bucket{job="x"}[5m])))',
      ),
    ).toEqual(['commit_to_publish_seconds']);
  });

  it.each([
    ['sum(rate(outbox_relay_messages_published_total[5m])', /syntax error/],
    ['max(outbox_relay_pending_messagez)', /unknown metric/],
    ['sum by (tenant) (outbox_relay_messages_failed_total)', /label 'tenant'/],
    ['{__name__="outbox_relay_pending_messages"}', /without a metric name/],
  ])('rejects %s', (expr, problem) => {
    expect(() => checkPromql(expr)).toThrow(problem);
  });
});

// ---------------------------------------------------------------------------

/** The Dockerfile's stages: name and instructions (continuation lines joined). */
function dockerfileStages(): { name: string; from: string; lines: string[] }[] {
  const joined = read('Dockerfile')
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const stages: { name: string; from: string; lines: string[] }[] = [];
  for (const line of joined) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/i.exec(line);
    if (from) stages.push({ from: from[1] ?? '', name: from[2] ?? '', lines: [] });
    else stages.at(-1)?.lines.push(line);
  }
  return stages;
}

/** A stub relay HTTP endpoint whose /readyz answers `status`. */
async function stubEndpoint(status: () => number): Promise<{ server: Server; port: number }> {
  const server = createServer((request, response) => {
    response.writeHead(request.url === '/readyz' ? status() : 404).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** Runs a health check command (exec form) and returns its exit code. */
async function exitCode(command: string[], env: Record<string, string>): Promise<number> {
  const [file, ...args] = command;
  try {
    await execFileAsync(file === 'node' ? process.execPath : (file ?? ''), args, {
      env: { ...process.env, ...env },
      timeout: 10_000,
    });
    return 0;
  } catch (error) {
    return (error as { code?: number }).code ?? -1;
  }
}

describe('Dockerfile', () => {
  const stages = dockerfileStages();
  const runtime = stages.at(-1);

  it('builds the relay, the demo producer and, last (the default target), the runtime image', () => {
    expect(stages.map((stage) => stage.name)).toEqual(['build', 'demo', 'runtime']);
    for (const stage of stages) expect(stage.from).toBe('node:24-bookworm-slim');
  });

  it('has no build step but scripts/build-image.sh, the script CI runs', () => {
    for (const stage of stages.slice(0, 2)) {
      const runs = stage.lines.filter((line) => line.startsWith('RUN '));
      expect(runs).toHaveLength(1);
      expect(runs[0]).toMatch(/ bash \/context\/scripts\/build-image\.sh --from \/context /);
    }
    expect(runtime?.lines.filter((line) => line.startsWith('RUN '))).toEqual([]);
  });

  it('runs `outbox-relay run` as the unprivileged node user with the HTTP endpoint on 8080', () => {
    const lines = runtime?.lines ?? [];
    expect(lines).toContain('USER node');
    expect(lines).toContain('EXPOSE 8080');
    expect(lines.find((line) => line.startsWith('ENV '))).toMatch(/OUTBOX_HTTP_PORT=8080/);
    expect(lines).toContain('ENTRYPOINT ["node", "dist/cli/main.js"]');
    expect(lines).toContain('CMD ["run"]');
    for (const line of lines.filter((l) => l.startsWith('COPY '))) {
      expect(line).toMatch(/^COPY --from=build \/app\//);
    }
  });

  it('copies every folder of the package the relay reads at run time (all of package.json files but docs)', () => {
    const copied = (runtime?.lines ?? [])
      .filter((line) => line.startsWith('COPY '))
      .map((line) => /^COPY --from=build \/app\/(\S+) /.exec(line)?.[1]);
    const files = (JSON.parse(read('package.json')) as { files: string[] }).files;
    for (const folder of files.filter((f) => f !== 'docs')) expect(copied).toContain(folder);
  });

  describe('health check', () => {
    let ready = 200;
    let endpoint: { server: Server; port: number };
    beforeAll(async () => {
      endpoint = await stubEndpoint(() => ready);
    });
    afterAll(() => endpoint.server.close());

    const healthcheck = runtime?.lines.find((line) => line.startsWith('HEALTHCHECK '));
    const command = JSON.parse(/ CMD (\[.*\])$/.exec(healthcheck ?? '')?.[1] ?? 'null') as
      | string[]
      | null;
    const compose = parseYaml(read('docker-compose.yml'), { merge: true });
    const composeCommand = (compose.services.relay.healthcheck.test as string[]).slice(1);

    it('is an exec-form node command asking /readyz', () => {
      expect(command?.slice(0, 2)).toEqual(['node', '-e']);
      expect(command?.[2]).toContain('/readyz');
    });

    it.each([
      ['the image', () => command ?? []],
      ['docker-compose.yml', () => composeCommand],
    ])('of %s passes while /readyz answers 200 and fails on 503 or no answer', async (_, get) => {
      const run = async () => {
        // The compose file names the container's port; the stub listens elsewhere.
        const cmd = get().map((arg) => arg.replace(':8080/', `:${endpoint.port}/`));
        return exitCode(cmd, { OUTBOX_HTTP_PORT: String(endpoint.port) });
      };
      ready = 200;
      expect(await run()).toBe(0);
      ready = 503;
      expect(await run()).toBe(1);
      const closed = await stubEndpoint(() => 200);
      await new Promise((resolve) => closed.server.close(resolve));
      const cmd = get().map((arg) => arg.replace(':8080/', `:${closed.port}/`));
      expect(await exitCode(cmd, { OUTBOX_HTTP_PORT: String(closed.port) })).toBe(1);
    });
  });
});

describe('scripts/build-image.sh', () => {
  it('copies only inputs that exist: the relay sources, and the producer for the demo', async () => {
    const list = async (...args: string[]) =>
      (
        await execFileAsync('bash', ['scripts/build-image.sh', '--list-inputs', ...args], {
          cwd: ROOT,
        })
      ).stdout
        .trim()
        .split('\n');
    const relay = await list();
    expect(relay).toEqual(
      expect.arrayContaining(['package.json', 'package-lock.json', 'src', 'migrations', 'sql']),
    );
    expect(relay).not.toContain('test');
    expect(await list('--demo')).toEqual([...relay, 'scripts/producer.ts']);
    for (const input of await list('--demo')) expect(existsSync(`${ROOT}${input}`)).toBe(true);
  });

  it('refuses to build in the checkout, so it can never prune its node_modules', async () => {
    const result = await execFileAsync('bash', ['scripts/build-image.sh', '--from', '.', '.'], {
      cwd: ROOT,
    }).catch((error: { code: number; stderr: string }) => error);
    expect(result).toMatchObject({ code: 2, stderr: expect.stringMatching(/refusing to build/) });
  });
});

// ---------------------------------------------------------------------------

/** The parts of a compose service these tests read. */
interface ComposeService {
  image?: string;
  build?: { context: string; target: string };
  command?: string[];
  restart?: string;
  depends_on?: string[] | Record<string, { condition: string }>;
  deploy?: { replicas?: number };
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
  init?: boolean;
  stop_grace_period?: string;
  ports?: string[];
  volumes?: string[];
  profiles?: string[];
}

/** A service's dependencies, the short (list) form read as `service_started`. */
function dependsOn(service: ComposeService | undefined): Record<string, { condition: string }> {
  const deps = service?.depends_on ?? {};
  if (!Array.isArray(deps)) return deps;
  return Object.fromEntries(deps.map((name) => [name, { condition: 'service_started' }]));
}

describe('docker-compose.yml', () => {
  const compose = parseYaml(read('docker-compose.yml'), { merge: true });
  const services = compose.services as Record<string, ComposeService>;
  const stageNames = dockerfileStages().map((stage) => stage.name);

  it('runs postgres, rabbitmq with management, a one-shot migration, two relays and the producer', () => {
    expect(Object.keys(services)).toEqual(
      expect.arrayContaining(['postgres', 'rabbitmq', 'migrate', 'relay', 'producer']),
    );
    expect(services.rabbitmq?.image).toMatch(/^rabbitmq:.*management/);
    expect(services.migrate?.command).toEqual(['migrate', 'up']);
    expect(services.migrate?.restart).toBe('no');
    expect(services.relay?.deploy?.replicas).toBe(2);
    expect(services.relay?.command).toEqual(['run']);
  });

  it('starts the relays and the producer only after the migration succeeded', () => {
    for (const name of ['relay', 'producer']) {
      expect(dependsOn(services[name]).migrate).toEqual({
        condition: 'service_completed_successfully',
      });
      expect(dependsOn(services[name]).rabbitmq).toEqual({ condition: 'service_healthy' });
    }
    expect(dependsOn(services.migrate).postgres).toEqual({ condition: 'service_healthy' });
  });

  it('checks each relay on /readyz and gives shutdown more time than OUTBOX_SHUTDOWN_TIMEOUT', () => {
    const relay = services.relay ?? {};
    expect(relay.environment?.OUTBOX_HTTP_PORT).toBe('8080');
    expect(relay.healthcheck?.test.join(' ')).toContain('http://127.0.0.1:8080/readyz');
    expect(relay.init).toBe(true);
    expect(Number.parseInt(relay.stop_grace_period ?? '', 10)).toBeGreaterThan(10);
    expect(relay.ports).toBeUndefined(); // two replicas cannot share a host port
  });

  it('builds only Dockerfile stages, depends only on its own services, mounts only files that exist', () => {
    for (const [name, service] of Object.entries(services)) {
      if (service.build) expect(stageNames, name).toContain(service.build.target);
      for (const dependency of Object.keys(dependsOn(service))) {
        expect(Object.keys(services)).toContain(dependency);
      }
      for (const volume of service.volumes ?? []) {
        const host = volume.split(':')[0] ?? '';
        expect(existsSync(`${ROOT}${host.replace(/^\.\//, '')}`), volume).toBe(true);
      }
    }
    expect(services.producer?.build?.target).toBe('demo');
    expect(services.relay?.build?.target).toBe('runtime');
  });

  it('starts Prometheus and Grafana only under the monitoring profile', () => {
    expect(services.prometheus?.profiles).toEqual(['monitoring']);
    expect(services.grafana?.profiles).toEqual(['monitoring']);
    for (const name of ['postgres', 'rabbitmq', 'migrate', 'relay', 'producer']) {
      expect(services[name]?.profiles).toBeUndefined();
    }
  });

  it('gives the relays a flags file in the LaunchDarkly file format with both flags', () => {
    const flags = JSON.parse(read('deploy/compose/flags.json'));
    expect(Object.keys(flags.flags)).toEqual([
      'outbox-publish-enabled',
      'outbox-tenant-rate-limit',
    ]);
    expect(services.relay?.environment?.OUTBOX_FLAGS_FILE).toBe('/etc/outbox-relay/flags.json');
  });
});

// ---------------------------------------------------------------------------

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string }[];
}

describe('deploy/grafana/outbox-relay.json', () => {
  const dashboard = JSON.parse(read('deploy/grafana/outbox-relay.json'));
  const panels = dashboard.panels as Panel[];
  const queries = panels.flatMap((panel) => (panel.targets ?? []).map((t) => ({ panel, ...t })));
  /** Grafana's variables replaced by what Prometheus would receive. */
  const substitute = (expr: string) =>
    expr.replace(/\$\{?(\w+)\}?/g, (_, name: string) => (name.startsWith('__') ? '5m' : '.*'));

  it('takes its data source from a variable, so it imports into any Grafana', () => {
    const variables = dashboard.templating.list as { name: string; type: string; query: unknown }[];
    expect(variables.find((v) => v.name === 'datasource')).toMatchObject({
      type: 'datasource',
      query: 'prometheus',
    });
    for (const panel of panels.filter((p) => p.type !== 'row')) {
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
    }
    for (const variable of variables.filter((v) => v.type === 'query')) {
      const query = (variable.query as { query: string }).query;
      const metric = /label_values\((\w+)/.exec(query)?.[1] ?? '';
      expect(metricOf(metric), query).toBeDefined();
    }
  });

  it('has unique panel ids, and panels that fit the grid without overlapping', () => {
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    const cells = new Set<string>();
    for (const { title, gridPos } of panels) {
      expect(gridPos.x + gridPos.w, title).toBeLessThanOrEqual(24);
      for (let x = gridPos.x; x < gridPos.x + gridPos.w; x++) {
        for (let y = gridPos.y; y < gridPos.y + gridPos.h; y++) {
          expect(cells.has(`${x},${y}`), `${title} overlaps at ${x},${y}`).toBe(false);
          cells.add(`${x},${y}`);
        }
      }
    }
  });

  it('queries only metrics and labels the relay exports, in valid PromQL', () => {
    expect(queries.length).toBeGreaterThan(30);
    for (const query of queries) expect(() => checkPromql(substitute(query.expr))).not.toThrow();
  });

  it('shows every relay metric, and memory, CPU and event loop lag', () => {
    const used = new Set(queries.flatMap((query) => checkPromql(substitute(query.expr))));
    expect(relayMetricNames.filter((name) => !used.has(name))).toEqual([]);
    for (const name of [
      'process_resident_memory_bytes',
      'process_cpu_seconds_total',
      'nodejs_eventloop_lag_p99_seconds',
    ]) {
      expect(used).toContain(name);
    }
  });

  it('is provisioned by the compose Grafana from the compose Prometheus', () => {
    const datasources = parseYaml(read('deploy/grafana/provisioning/datasources/prometheus.yml'));
    expect(datasources.datasources[0]).toMatchObject({
      type: 'prometheus',
      url: 'http://prometheus:9090',
    });
    const providers = parseYaml(read('deploy/grafana/provisioning/dashboards/outbox-relay.yml'));
    const compose = parseYaml(read('docker-compose.yml'), { merge: true });
    const mount = (compose.services.grafana.volumes as string[]).find((v) =>
      v.startsWith('./deploy/grafana/outbox-relay.json:'),
    );
    expect(mount?.split(':')[1]).toBe(`${providers.providers[0].options.path}/outbox-relay.json`);
  });
});

// ---------------------------------------------------------------------------

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: { severity: string };
  annotations: { summary: string; description: string };
}

describe('deploy/prometheus/alerts.yml', () => {
  const rules = parseYaml(read('deploy/prometheus/alerts.yml')).groups.flatMap(
    (group: { name: string; rules: Rule[] }) => group.rules,
  ) as Rule[];

  it('alerts on backlog age, dead rows, failures, a blocked broker, no ready relay, stale stats and a flooding tenant', () => {
    expect(rules.map((rule) => rule.alert)).toEqual(
      expect.arrayContaining([
        'OutboxBacklogAgeHigh',
        'OutboxBacklogAgeCritical',
        'OutboxDeadRows',
        'OutboxDeadRowsGrowing',
        'OutboxPublishFailures',
        'OutboxBrokerBlocked',
        'OutboxNoRelayReady',
        'OutboxStatsStale',
        'OutboxTenantFlood',
      ]),
    );
    expect(new Set(rules.map((rule) => rule.alert)).size).toBe(rules.length);
  });

  it.each(rules.map((rule) => [rule.alert, rule]))(
    '%s has valid PromQL on known metrics, a severity, a summary and a description',
    (_, rule) => {
      expect(checkPromql(rule.expr).length).toBeGreaterThan(0);
      expect(['warning', 'critical']).toContain(rule.labels.severity);
      if (rule.for !== undefined) expect(rule.for).toMatch(/^\d+[smh]$/);
      expect(rule.annotations.summary).toBeTruthy();
      expect(rule.annotations.description).toBeTruthy();
    },
  );

  it('has a promtool unit test that makes every alert fire', () => {
    const tests = parseYaml(read('deploy/prometheus/alerts.test.yml'));
    expect(tests.rule_files).toEqual(['alerts.yml']);
    const fired = new Set<string>(
      tests.tests.flatMap((test: { alert_rule_test: { alertname: string; exp_alerts: [] }[] }) =>
        test.alert_rule_test.filter((t) => t.exp_alerts.length > 0).map((t) => t.alertname),
      ),
    );
    expect(rules.map((rule) => rule.alert).filter((name) => !fired.has(name))).toEqual([]);
  });

  it('is loaded by the compose Prometheus, which scrapes every relay replica', () => {
    const config = parseYaml(read('deploy/prometheus/prometheus.yml'));
    expect(config.rule_files).toEqual(['alerts.yml']);
    expect(config.scrape_configs[0].dns_sd_configs[0]).toMatchObject({
      names: ['relay'],
      port: 8080,
    });
  });
});

describe('docs/operations.md', () => {
  const docs = read('docs/operations.md');
  const section = docs.slice(
    docs.indexOf('\n## Metrics and alerts'),
    docs.indexOf('\n## Watching'),
  );

  it('lists every relay metric and every alert in its Metrics and alerts section', () => {
    expect(section.length).toBeGreaterThan(1000);
    expect(relayMetricNames.filter((name) => !section.includes(`${PREFIX}${name}`))).toEqual([]);
    const alerts = parseYaml(read('deploy/prometheus/alerts.yml')).groups.flatMap(
      (group: { rules: Rule[] }) => group.rules.map((rule) => rule.alert),
    ) as string[];
    expect(alerts.filter((alert) => !section.includes(`\`${alert}\``))).toEqual([]);
  });
});
