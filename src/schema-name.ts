/**
 * The rule for an outbox schema name, in one place at the bottom of the import
 * graph: the settings parser checks OUTBOX_SCHEMA against it and `enqueue`
 * checks its `schema` option, before either reaches SQL, where the name is
 * spliced into statements unquoted.
 */

/** What an outbox schema name may be: a lower-case SQL identifier, never quoted by users. */
export const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
