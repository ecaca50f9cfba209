/**
 * What Kysely's Migrator learns of the database, limited to the outbox schema.
 *
 * The Migrator asks its dialect's introspector whether the schema and its
 * bookkeeping tables exist. Kysely's PostgreSQL introspector answers by
 * reading every column of every table in the database and resolving each
 * table by name (`pg_get_serial_sequence`), so a migration fails with 42P01
 * when any other schema is dropped at that moment (another service's
 * migration, a test tearing down), and it grows with the whole database.
 * This one reads only the catalog rows of `schema`, by oid, and leaves the
 * columns out: the Migrator compares names and nothing else.
 */
import {
  type DatabaseIntrospector,
  type DatabaseMetadata,
  type Kysely,
  PostgresDialect,
  type PostgresDialectConfig,
  type SchemaMetadata,
  sql,
  type TableMetadata,
} from 'kysely';

class SchemaIntrospector implements DatabaseIntrospector {
  constructor(
    private readonly db: Kysely<unknown>,
    private readonly schema: string,
  ) {}

  async getSchemas(): Promise<SchemaMetadata[]> {
    const { rows } = await sql<SchemaMetadata>`
      select nspname as name from pg_catalog.pg_namespace where nspname = ${this.schema}
    `.execute(this.db);
    return rows;
  }

  async getTables(): Promise<TableMetadata[]> {
    const { rows } = await sql<{ name: string; kind: string }>`
      select c.relname as name, c.relkind as kind
      from pg_catalog.pg_class c
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      where n.nspname = ${this.schema} and c.relkind in ('r', 'v', 'p')
      order by c.relname
    `.execute(this.db);
    return rows.map((row) => ({
      name: row.name,
      isView: row.kind === 'v',
      columns: [],
      schema: this.schema,
    }));
  }

  async getMetadata(): Promise<DatabaseMetadata> {
    return { tables: await this.getTables() };
  }
}

/** PostgreSQL for Kysely, with an introspector that sees only `schema`. */
export class SchemaScopedPostgresDialect extends PostgresDialect {
  constructor(
    config: PostgresDialectConfig,
    private readonly schema: string,
  ) {
    super(config);
  }

  override createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new SchemaIntrospector(db, this.schema);
  }
}
