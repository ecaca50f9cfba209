/**
 * The migrator looks only at its own schema: other schemas created and
 * dropped at the same moment (another service's migration, a test tearing
 * down) never fail it.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { migrateUp, migrationStatus } from '../src/migrator/migrator.js';
import { uniqueName } from './helpers/database.js';

let pool: pg.Pool;
const created: string[] = [];

beforeAll(() => {
  pool = new pg.Pool({ connectionString: inject('databaseUrl'), max: 6 });
  pool.on('error', () => undefined);
});

afterAll(async () => {
  for (const schema of created) await pool.query(`drop schema if exists "${schema}" cascade`);
  await pool.end();
});

describe('migrate up', () => {
  it('succeeds while other schemas with tables are created and dropped around it', async () => {
    let churning = true;
    let churned = 0;
    // Two loops that keep creating and dropping schemas with serial columns:
    // the catalog rows a database-wide introspection would resolve by name.
    const churn = async () => {
      while (churning) {
        const other = uniqueName('t_churn');
        await pool.query(
          `create schema "${other}";
           create table "${other}".a (id serial primary key, note text);
           create table "${other}".b (id bigserial primary key)`,
        );
        await pool.query(`drop schema "${other}" cascade`);
        churned++;
      }
    };
    const churners = [churn(), churn()];
    try {
      for (let i = 0; i < 8; i++) {
        const schema = uniqueName('t_migrator');
        created.push(schema);
        const outcome = await migrateUp(pool, schema);
        expect(outcome.applied.length).toBeGreaterThan(0);
        const states = await migrationStatus(pool, schema);
        expect(states.every((state) => state.executedAt !== undefined)).toBe(true);
      }
    } finally {
      churning = false;
      await Promise.all(churners);
    }
    expect(churned).toBeGreaterThan(0);
  });
});
