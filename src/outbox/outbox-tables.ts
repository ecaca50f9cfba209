/**
 * The quoted names of one outbox schema's objects, as statements use them.
 * The schema is a validated identifier (src/schema-name.ts); quoting still
 * doubles any quote, so a name can never end the identifier early.
 */

/** `name` as a quoted SQL identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `value` as an SQL string literal. */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** The longest name PostgreSQL keeps whole, in bytes (a NOTIFY channel longer than this fails). */
export const MAX_NAME_BYTES = 63;

/** One schema's objects, quoted. */
export interface OutboxTables {
  readonly schema: string;
  /** `"<schema>".messages` */
  readonly messages: string;
  /** `"<schema>".tenant_leases` */
  readonly leases: string;
  /** `"<schema>".messages_id_seq` */
  readonly idSequence: string;
  /** The NOTIFY channel relays of this schema LISTEN on (unquoted). */
  readonly notifyChannel: string;
}

/** The quoted names of the outbox in `schema`. */
export function outboxTables(schema: string): OutboxTables {
  const quoted = quoteIdent(schema);
  return {
    schema,
    messages: `${quoted}.messages`,
    leases: `${quoted}.tenant_leases`,
    idSequence: `${quoted}.messages_id_seq`,
    notifyChannel: `outbox_relay_${schema}`,
  };
}

/**
 * `build` made once per schema: each job's statements are built on first use
 * and shared by every store (and `enqueue`) of that schema.
 */
export function perSchema<T>(build: (tables: OutboxTables) => T): (schema: string) => T {
  const built = new Map<string, T>();
  return (schema) => {
    let value = built.get(schema);
    if (value === undefined) {
      value = build(outboxTables(schema));
      built.set(schema, value);
    }
    return value;
  };
}
