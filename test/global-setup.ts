/**
 * Finds PostgreSQL and RabbitMQ once for the whole run and hands their URLs to
 * every test file: TEST_DATABASE_URL / TEST_AMQP_URL if set; otherwise the
 * local services; otherwise containers started with testcontainers where a
 * Docker engine answers; otherwise a failure that says what to start.
 */
import { execFileSync } from 'node:child_process';
import amqp from 'amqplib';
import pg from 'pg';
import type { TestProject } from 'vitest/node';

const LOCAL_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';
const LOCAL_AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    amqpUrl: string;
  }
}

async function databaseReachable(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('select 1');
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function brokerReachable(url: string): Promise<string | undefined> {
  try {
    const connection = await amqp.connect(url, { timeout: 3000 });
    connection.on('error', () => undefined);
    await connection.close();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

function dockerAvailable(): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

const stops: (() => Promise<unknown>)[] = [];

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let databaseUrl = process.env.TEST_DATABASE_URL || LOCAL_DATABASE_URL;
  let amqpUrl = process.env.TEST_AMQP_URL || LOCAL_AMQP_URL;
  const dbProblem = await databaseReachable(databaseUrl);
  const brokerProblem = await brokerReachable(amqpUrl);
  if ((dbProblem || brokerProblem) && dockerAvailable()) {
    const { GenericContainer, Wait } = await import('testcontainers');
    if (dbProblem && !process.env.TEST_DATABASE_URL) {
      const container = await new GenericContainer('postgres:16')
        .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust', POSTGRES_DB: 'test' })
        .withExposedPorts(5432)
        .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
        .start();
      stops.push(() => container.stop());
      databaseUrl = `postgres://postgres@${container.getHost()}:${container.getMappedPort(5432)}/test`;
    }
    if (brokerProblem && !process.env.TEST_AMQP_URL) {
      const container = await new GenericContainer('rabbitmq:3-management')
        .withExposedPorts(5672, 15672)
        .withWaitStrategy(Wait.forLogMessage(/Server startup complete/))
        .start();
      stops.push(() => container.stop());
      amqpUrl = `amqp://guest:guest@${container.getHost()}:${container.getMappedPort(5672)}`;
    }
  } else if (dbProblem || brokerProblem) {
    const lines = ['The tests need PostgreSQL and RabbitMQ.'];
    if (dbProblem) lines.push(`  PostgreSQL at ${databaseUrl}: ${dbProblem}`);
    if (brokerProblem) lines.push(`  RabbitMQ at ${amqpUrl}: ${brokerProblem}`);
    lines.push(
      'Start them locally (PostgreSQL on 127.0.0.1:5432 with trust auth and a database "test"; RabbitMQ on',
      '127.0.0.1:5672 guest/guest), point TEST_DATABASE_URL / TEST_AMQP_URL at running ones, or start a',
      'Docker engine so the tests can run them with testcontainers.',
    );
    throw new Error(lines.join('\n'));
  }
  project.provide('databaseUrl', databaseUrl);
  project.provide('amqpUrl', amqpUrl);
  return async () => {
    for (const stop of stops) await stop();
  };
}
