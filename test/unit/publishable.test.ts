import { describe, expect, it } from 'vitest';
import { MAX_HEADER_DEPTH, unpublishableReason } from '../../src/broker/publishable.js';
import type { OutgoingMessage } from '../../src/relay/publisher.js';

function message(headers: Record<string, unknown>, content = Buffer.from('{}')): OutgoingMessage {
  return {
    id: '1',
    messageId: '0f3c9a52-8d3e-4c1a-9b7e-2f6d5c4b3a21',
    tenantId: 'tenant-1',
    orderingScope: 'tenant-1',
    exchange: 'x',
    routingKey: 'k',
    content,
    contentType: 'application/json',
    type: undefined,
    timestamp: 0,
    headers,
  };
}

const reason = (headers: Record<string, unknown>) => unpublishableReason(message(headers), 1024);

describe('what the publisher refuses before sending', () => {
  it('passes ordinary headers: strings, booleans, null, finite numbers, arrays and tables', () => {
    expect(
      reason({
        'x-tenant-id': 't',
        a: true,
        b: null,
        n: -5,
        f: 1.5,
        CC: ['k'],
        t: { u: [1, 'v'] },
      }),
    ).toBeUndefined();
  });

  it('counts a key in UTF-8 bytes: 255 are fine, 256 are not, at any depth', () => {
    expect(reason({ ['€'.repeat(85)]: 'v' })).toBeUndefined(); // 255 bytes, 85 characters
    expect(reason({ ['€'.repeat(86)]: 'v' })).toMatch(/has a key over 255 bytes/);
    expect(reason({ ['a'.repeat(256)]: 'v' })).toMatch(/has a key over 255 bytes/);
    expect(reason({ t: { ['a'.repeat(255)]: 1, ['b'.repeat(256)]: 1 } })).toMatch(
      /^header 't\.b+'… has a key over 255 bytes$/,
    );
  });

  it('names the path of a number AMQP cannot carry, in tables and arrays', () => {
    expect(reason({ n: Number.POSITIVE_INFINITY })).toBe(
      "header 'n' is Infinity, which AMQP cannot carry",
    );
    expect(reason({ t: { list: [1, Number.NaN] } })).toBe(
      "header 't.list[1]' is NaN, which AMQP cannot carry",
    );
    expect(reason({ n: -(2 ** 64) })).toMatch(/^header 'n' is .* below the smallest AMQP integer/);
  });

  it("refuses a nested table with a '!' key, but not a top-level header named '!'", () => {
    expect(reason({ '!': 'fine' })).toBeUndefined();
    expect(reason({ t: { '!': 'timestamp', value: 5 } })).toMatch(/^header 't' has a '!' key/);
  });

  it('refuses CC or BCC that is not an array, and headers nested too deep', () => {
    expect(reason({ CC: 'k' })).toMatch(/^header 'CC' must be an array of routing keys/);
    expect(reason({ BCC: 'k' })).toMatch(/^header 'BCC' must be an array of routing keys/);
    let deep: unknown = 'v';
    for (let i = 0; i <= MAX_HEADER_DEPTH; i++) deep = { d: deep };
    expect(reason({ deep })).toMatch(/nests deeper than 64 levels/);
  });

  it('refuses a body over the limit', () => {
    expect(unpublishableReason(message({}, Buffer.alloc(1025)), 1024)).toMatch(
      /^the body is 1025 bytes, over the 1024-byte limit/,
    );
  });
});
