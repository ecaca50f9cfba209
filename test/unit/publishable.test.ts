/**
 * What AMQP, amqplib or RabbitMQ cannot take, found before a message is
 * written: each reason names the part of the message at fault, and whatever
 * can be sent passes.
 */
import { describe, expect, it } from 'vitest';
import { MAX_HEADER_DEPTH, unpublishableReason } from '../../src/broker/publishable.js';
import type { OutgoingMessage } from '../../src/relay/publisher.js';

const LIMIT = 1024;

function message(overrides: Partial<OutgoingMessage> = {}): OutgoingMessage {
  return {
    id: '1',
    messageId: 'm-1',
    tenantId: 'acme',
    orderingScope: 'orders',
    exchange: 'events',
    routingKey: 'orders.created',
    content: Buffer.from('{}'),
    contentType: 'application/json',
    type: undefined,
    timestamp: 0,
    headers: {},
    ...overrides,
  };
}

const reason = (headers: Record<string, unknown>) =>
  unpublishableReason(message({ headers }), LIMIT);

/** Headers with `levels` tables nested below the headers table. */
function nested(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: 1 };
  for (let i = 1; i < levels; i++) value = { h: value };
  return { h: value };
}

describe('the pre-send check', () => {
  it('passes what can be sent: ordinary values, buffers, arrays, CC/BCC arrays, a top-level ! key', () => {
    expect(
      reason({
        count: 3,
        ratio: -0.5,
        smallest: -(2 ** 63),
        text: 'x',
        flag: true,
        none: null,
        bytes: Buffer.from([1, 2]),
        list: [1, 'a', { inner: 2 }],
        CC: ['a.b'],
        BCC: [],
        '!': 'plain header',
      }),
    ).toBeUndefined();
    expect(unpublishableReason(message({ content: Buffer.alloc(LIMIT) }), LIMIT)).toBeUndefined();
  });

  it('refuses a body over the limit, naming its size and the setting', () => {
    expect(unpublishableReason(message({ content: Buffer.alloc(LIMIT + 1) }), LIMIT)).toBe(
      `the body is ${LIMIT + 1} bytes, over the ${LIMIT}-byte limit (OUTBOX_MAX_MESSAGE_BYTES, the broker's max_message_size)`,
    );
  });

  it.each([
    [
      'an infinite number',
      { n: Number.POSITIVE_INFINITY },
      "header 'n' is Infinity, which AMQP cannot carry",
    ],
    [
      'NaN, deep down',
      { a: { b: [1, Number.NaN] } },
      "header 'a.b[1]' is NaN, which AMQP cannot carry",
    ],
    [
      'an integer below -2^63',
      { low: -(2 ** 64) },
      /^header 'low' is .* below the smallest AMQP integer \(-2\^63\)$/,
    ],
    [
      "a nested '!' key",
      { t: { '!': 'timestamp', value: 5 } },
      "header 't' has a '!' key, which the AMQP client reads as a type tag",
    ],
    ['CC as a string', { CC: 'a.b' }, /^header 'CC' must be an array of routing keys/],
    ['BCC as a table', { BCC: { x: 1 } }, /^header 'BCC' must be an array of routing keys/],
    ['a 256-byte key', { ['k'.repeat(256)]: 1 }, /^header 'k{64}'… has a key over 255 bytes$/],
  ])('refuses %s, naming the header', (_what, headers, expected) => {
    const found = reason(headers);
    if (typeof expected === 'string') expect(found).toBe(expected);
    else expect(found).toMatch(expected);
  });

  it('counts a key in bytes, not characters', () => {
    expect(reason({ ['é'.repeat(127)]: 1 })).toBeUndefined();
    expect(reason({ ['é'.repeat(128)]: 1 })).toMatch(/has a key over 255 bytes$/);
  });

  it(`takes headers nested ${MAX_HEADER_DEPTH} levels deep, not one more`, () => {
    expect(reason(nested(MAX_HEADER_DEPTH))).toBeUndefined();
    expect(reason(nested(MAX_HEADER_DEPTH + 1))).toMatch(
      new RegExp(`nests deeper than ${MAX_HEADER_DEPTH} levels$`),
    );
  });
});
