/**
 * A Kysely MigrationProvider that reads numbered SQL files from `migrations/`:
 * `0001_create_outbox.up.sql` with its `0001_create_outbox.down.sql`. Each
 * file runs with search_path set to the outbox schema, so the SQL names no
 * schema and the schema stays configurable.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Kysely, type Migration, type MigrationProvider, sql } from 'kysely';

/** The migrations shipped with the package (`<package>/migrations`). */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

const FILE = /^(\d{4}_[a-z0-9_]+)\.(up|down)\.sql$/;

async function runSqlFile(db: Kysely<unknown>, schema: string, path: string): Promise<void> {
  const text = await readFile(path, 'utf8');
  // Kysely runs migrations in one transaction on PostgreSQL, so `set local`
  // lasts exactly as long as the migration run.
  await sql.raw(`set local search_path to "${schema}"`).execute(db);
  await sql.raw(text).execute(db);
}

/** Provides the SQL migrations in `dir`, applied to `schema`. */
export class SqlMigrationProvider implements MigrationProvider {
  constructor(
    private readonly schema: string,
    private readonly dir: string = MIGRATIONS_DIR,
  ) {}

  async getMigrations(): Promise<Record<string, Migration>> {
    const files = (await readdir(this.dir)).filter((file) => FILE.test(file)).sort();
    const migrations: Record<string, Migration> = {};
    for (const file of files) {
      const match = FILE.exec(file);
      if (match?.[2] !== 'up') continue;
      const name = match[1] as string;
      const upPath = join(this.dir, file);
      const downFile = `${name}.down.sql`;
      const downPath = files.includes(downFile) ? join(this.dir, downFile) : undefined;
      migrations[name] = {
        up: (db) => runSqlFile(db, this.schema, upPath),
        ...(downPath
          ? { down: (db: Kysely<unknown>) => runSqlFile(db, this.schema, downPath) }
          : {}),
      };
    }
    return migrations;
  }
}
