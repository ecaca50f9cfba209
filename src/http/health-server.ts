/**
 * The relay's HTTP endpoint for orchestrators and Prometheus:
 *
 *   GET /healthz  200 while the relay loop makes progress, 503 once it stalled
 *                 or died (liveness: restarting is the cure), with its JSON detail
 *   GET /readyz   200 or 503 with the JSON detail of each readiness check
 *   GET /metrics  the Prometheus text exposition
 *
 * Plain node:http: three read-only routes need no framework.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';

/** What /healthz answers: 200 while `alive`, else 503; the other fields are detail for a person. */
export interface LivenessReport {
  alive: boolean;
  status: string;
  detail: string;
}

/**
 * What /readyz answers: 200 when `ready`, else 503, with the whole report as
 * its JSON body. The runtime's ReadinessProbe fills it with one entry per
 * check; the endpoint needs only the verdict, so it knows nothing of the checks.
 */
export interface ReadinessAnswer {
  readonly ready: boolean;
}

/** Where to listen and what to serve. */
export interface HealthServerOptions {
  host: string;
  /** 0 picks a free port; `port` on the result tells which. */
  port: number;
  /** The relay loop's health (ProgressMonitor.check); without it /healthz only says the process serves. */
  liveness?: () => LivenessReport;
  readiness: () => Promise<ReadinessAnswer>;
  metrics: () => Promise<{ contentType: string; body: string }>;
  logger: Logger;
}

/** A listening endpoint; `close()` also ends keep-alive connections. */
export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Listens on `host:port`; rejects if the port cannot be bound. */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const server = http.createServer((request, response) => {
    void respond(options, request, response).catch((error: unknown) => {
      options.logger.warn('HTTP request failed', { error: describeError(error) });
      if (!response.headersSent) send(response, 500, 'text/plain', 'internal error\n');
      else response.destroy();
    });
  });
  // Keep-alive connections from a scraper must not hold up shutdown, and
  // slow or idle clients get little: three small routes need no more.
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.maxConnections = 64;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => options.logger.warn('HTTP server error', { error }));
  const { port } = server.address() as AddressInfo;
  options.logger.info('HTTP endpoint listening', { host: options.host, port });
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function respond(
  options: HealthServerOptions,
  request: http.IncomingMessage,
  response: http.ServerResponse,
): Promise<void> {
  let path: string;
  try {
    path = new URL(request.url ?? '/', 'http://localhost').pathname;
  } catch {
    send(response, 400, 'text/plain', 'bad request target\n');
    return;
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('allow', 'GET, HEAD');
    send(response, 405, 'text/plain', 'method not allowed\n');
    return;
  }
  switch (path) {
    case '/healthz': {
      const report = options.liveness?.() ?? { alive: true, status: 'ok', detail: 'serving' };
      send(response, report.alive ? 200 : 503, 'application/json', `${JSON.stringify(report)}\n`);
      return;
    }
    case '/readyz': {
      const report = await options.readiness();
      send(response, report.ready ? 200 : 503, 'application/json', `${JSON.stringify(report)}\n`);
      return;
    }
    case '/metrics': {
      const { contentType, body } = await options.metrics();
      send(response, 200, contentType, body);
      return;
    }
    default:
      send(response, 404, 'text/plain', 'not found: try /healthz, /readyz or /metrics\n');
  }
}

function send(response: http.ServerResponse, status: number, type: string, body: string): void {
  response.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  response.end(response.req.method === 'HEAD' ? undefined : body);
}
