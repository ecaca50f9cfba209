/**
 * Reads a relay's HTTP endpoint as Prometheus and an orchestrator would:
 * `/metrics` parsed by a Prometheus text-format parser, `/readyz` as JSON.
 */
import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format';
import { expect } from 'vitest';
import { type CliProcess, loggedEntry } from './cli.js';
import { waitFor } from './wait.js';

/** One scrape, by metric family name. */
export type Scrape = Map<string, PrometheusFamily>;

export async function scrapeMetrics(port: number): Promise<Scrape> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  const families = parsePrometheusTextFormat(await response.text());
  return new Map(families.map((family) => [family.name, family]));
}

/** The value of a counter or gauge sample whose labels include `labels`; undefined if absent. */
export function sampleValue(
  scrape: Scrape,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const sample = scrape
    .get(name)
    ?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return sample?.value === undefined ? undefined : Number(sample.value);
}

/** A histogram's observation count. */
export function histogramCount(scrape: Scrape, name: string): number {
  return Number(scrape.get(name)?.metrics[0]?.count ?? 0);
}

interface ReadinessBody {
  ready: boolean;
  checks: Record<string, { ok: boolean; detail: string }>;
}

export async function readiness(port: number): Promise<{ status: number; body: ReadinessBody }> {
  const response = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: response.status, body: (await response.json()) as ReadinessBody };
}

/** The port the relay logged in its 'HTTP endpoint listening' line, once it has. */
export function loggedHttpPort(output: string): number | undefined {
  const port = loggedEntry(output, 'HTTP endpoint listening')?.port;
  return typeof port === 'number' ? port : undefined;
}

/** Waits until `relay` (an `outbox-relay run` with OUTBOX_HTTP_PORT) serves HTTP; its port. */
export async function relayPort(relay: CliProcess): Promise<number> {
  await waitFor(
    () => loggedHttpPort(relay.output()) !== undefined || relay.child.exitCode !== null,
    'the relay to open its HTTP endpoint',
  );
  const port = loggedHttpPort(relay.output());
  if (port === undefined) throw new Error(`the relay exited:\n${relay.output()}`);
  return port;
}

/** SIGTERM (unless it already exited), and expect a clean exit. */
export async function stopRelay(relay: CliProcess): Promise<void> {
  if (relay.child.exitCode === null) relay.child.kill('SIGTERM');
  const code = await relay.exited;
  expect(code, relay.output()).toBe(0);
}
