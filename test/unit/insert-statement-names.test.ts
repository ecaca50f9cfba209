import { describe, expect, it } from 'vitest';
import { insertStatements, INSERT_SHAPES as SHAPES } from '../../src/outbox/insert-statements.js';

describe('the names of the prepared insert statements (preparedStatements: true)', () => {
  it('differ for every shape and schema, even where shape and schema names would run together or be cut at 63 bytes', () => {
    const long = 'x'.repeat(62);
    const schemas = ['rvq', 'ids_rvq', 'notify_ids_rvq', 'notify_rvq', `${long}a`, `${long}b`];
    const names = schemas.flatMap((schema) =>
      SHAPES.map((shape) => insertStatements(schema).name(shape)),
    );
    // PostgreSQL keeps the first 63 bytes of a name: those must differ.
    const kept = names.map((name) => Buffer.from(name).subarray(0, 63).toString());
    expect(new Set(kept).size).toBe(schemas.length * SHAPES.length);
    for (const name of names) expect(Buffer.byteLength(name)).toBeLessThanOrEqual(63);
  });

  it('stay the same for a schema and shape, so a connection prepares each once', () => {
    const shape = { many: false, notify: false, returnIds: false };
    expect(insertStatements('outbox').name(shape)).toBe(insertStatements('outbox').name(shape));
    expect(insertStatements('outbox').name(shape)).toMatch(/^outbox_insert_one:[0-9a-f]{16}$/);
  });
});
