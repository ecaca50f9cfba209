/**
 * Random messages for `enqueue` (test/fuzz/enqueue-roundtrip.test.ts), and
 * what a consumer must receive for each.
 *
 * A run is described, not held: payloads and headers that are big, exotic or
 * circular are specs (`{ kind: 'sized', bytes: 1048577 }`), so a
 * counterexample prints in a few lines; {@link buildMessage} makes the
 * message and judges it by the oracle in fuzz-values.ts: valid (must be
 * accepted and delivered unchanged), invalid (must be rejected), or either.
 */
import fc from 'fast-check';
import {
  aroundLimit,
  bigHeaders,
  contractHeaderValue,
  exotic,
  exoticName,
  headerName,
  type Judgement,
  jsonView,
  judgeHeaders,
  judgeText,
  SHORT_STRING_BYTES,
  storable,
  stringOfBytes,
  text,
  typeTagValue,
  type Verdict,
} from './fuzz-values.js';

/** A property left out of the message. */
export const ABSENT = '<absent>';
type Field = unknown; // a value, or ABSENT for a property left out

type PayloadSpec =
  | { kind: 'value'; value: unknown }
  | { kind: 'exotic'; name: string; at: 'top' | 'in object' | 'in array' }
  | { kind: 'bytes'; bytes: Uint8Array; asBuffer: boolean }
  | { kind: 'sized'; bytes: number; form: SizedForm }
  | { kind: 'absent' };
type SizedForm = 'bytes' | 'json string' | 'json é string' | 'json array';

type HeadersSpec =
  | { kind: 'value'; value: Field }
  | { kind: 'exotic'; key: string; name: string }
  | { kind: 'big'; item: Parameters<typeof bigHeaders>[0]; jsonBytes: number }
  | { kind: 'deep'; depth: number; container: 'array' | 'object' };

export interface MessageSpec {
  /** 'object', or a value that is not a message (an array would be a batch, so none). */
  shape: 'object' | 'null' | 'string' | 'map';
  tenantId: Field;
  /** Index into the declared exchanges, 'default' ('' to the queue by name), or a bad value. */
  exchange: number | 'default' | { bad: unknown };
  routingKey: Field;
  type: Field;
  contentType: Field;
  orderingKey: Field;
  messageId: Field;
  headers: HeadersSpec;
  payload: PayloadSpec;
}

export interface Run {
  /** enqueue's maxPayloadBytes for the run; undefined is the default 1 MiB. */
  maxPayloadBytes: number | undefined;
  messages: MessageSpec[];
}

const SMALL_LIMITS = [64, 255, 1024, 4096];

const notAString = fc.oneof(
  fc.constant(null),
  fc.constant(ABSENT),
  fc.integer(),
  fc.constantFrom(true, 0n, Symbol.for('s')),
  fc.array(fc.string(), { maxLength: 2 }),
  fc.object({ maxDepth: 1, maxKeys: 2 }),
);
const blank = fc.constantFrom('', ' ', '\t\n', '\u3000', '\u00a0');

/** Text a column can store: no NUL, no lone surrogate; `nonBlank` also rules out what trim() empties. */
function storableText(maxBytes: number, nonBlank: boolean): fc.Arbitrary<string> {
  return fc
    .oneof(
      { arbitrary: text({ maxLength: 12 }), weight: 4 },
      { arbitrary: aroundLimit(), weight: 1 },
    )
    .filter(
      (s) => storable(s) && Buffer.byteLength(s) <= maxBytes && (!nonBlank || s.trim() !== ''),
    );
}

/** A required string field: `valid` and other storable text, or (dirty) also too long, unstorable, blank, not a string, missing. */
function required(
  valid: fc.Arbitrary<string>,
  allowEmpty: boolean,
  dirty: boolean,
): fc.Arbitrary<Field> {
  const clean = fc.oneof(
    { arbitrary: valid, weight: 3 },
    { arbitrary: storableText(SHORT_STRING_BYTES, !allowEmpty), weight: 2 },
  );
  if (!dirty) return clean;
  return fc.oneof(
    { arbitrary: clean, weight: 4 },
    { arbitrary: text({ maxLength: 12, unstorable: true }), weight: 2 },
    { arbitrary: aroundLimit(), weight: 2 },
    { arbitrary: allowEmpty ? notAString : fc.oneof(notAString, blank), weight: 1 },
  );
}

/** An optional string field: absent, undefined or null, `valid` or other storable text; (dirty) also the bad values. */
function optional(valid: fc.Arbitrary<string>, dirty: boolean): fc.Arbitrary<Field> {
  const clean = fc.oneof(
    { arbitrary: fc.constant(ABSENT), weight: 6 },
    { arbitrary: fc.constantFrom(undefined, null), weight: 1 },
    { arbitrary: valid, weight: 3 },
    { arbitrary: storableText(SHORT_STRING_BYTES, true), weight: 2 },
  );
  if (!dirty) return clean;
  return fc.oneof(
    { arbitrary: clean, weight: 4 },
    { arbitrary: text({ minLength: 1, maxLength: 12, unstorable: true }), weight: 1 },
    { arbitrary: aroundLimit(), weight: 1 },
    { arbitrary: fc.oneof(notAString, blank), weight: 1 },
  );
}

const payloadSpec: fc.Arbitrary<PayloadSpec> = fc.oneof(
  {
    arbitrary: fc.jsonValue({ maxDepth: 3 }).map((value) => ({ kind: 'value' as const, value })),
    weight: 6,
  },
  {
    arbitrary: fc
      .anything({
        maxDepth: 3,
        maxKeys: 4,
        withBigInt: true,
        withBoxedValues: true,
        withDate: true,
        withMap: true,
        withNullPrototype: true,
        withSet: true,
        withSparseArray: true,
        withTypedArray: true,
        stringUnit: 'binary',
      })
      .map((value) => ({ kind: 'value' as const, value })),
    weight: 4,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('exotic' as const),
      name: exoticName,
      at: fc.constantFrom('top' as const, 'in object' as const, 'in array' as const),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('bytes' as const),
      bytes: fc.uint8Array({ maxLength: 64 }),
      asBuffer: fc.boolean(),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('sized' as const),
      bytes: fc.oneof(
        fc.constantFrom(...SMALL_LIMITS.flatMap((n) => [n - 1, n, n + 1])),
        fc.integer({ min: 0, max: 4200 }),
      ),
      form: fc.constantFrom<SizedForm>('bytes', 'json string', 'json é string', 'json array'),
    }),
    weight: 2,
  },
  { arbitrary: fc.constant({ kind: 'absent' as const }), weight: 1 },
);

/** Payloads that JSON or bytes carry exactly (fast-check's JSON values, bytes, sizes around the limits). */
const cleanPayloadSpec: fc.Arbitrary<PayloadSpec> = payloadSpec.filter(
  (p) =>
    p.kind === 'bytes' ||
    p.kind === 'sized' ||
    (p.kind === 'value' && jsonView(p.value).fidelity === 'exact'),
);

/** Rare: payloads around AMQP's frame size and the default 1 MiB limit. */
const bigPayloadSpec: fc.Arbitrary<PayloadSpec> = fc.record({
  kind: fc.constant('sized' as const),
  bytes: fc.constantFrom(131_063, 131_064, 131_073, 1_048_575, 1_048_576, 1_048_577),
  form: fc.constantFrom<SizedForm>('bytes', 'json string'),
});

const headersSpec: fc.Arbitrary<HeadersSpec> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'value' as const, value: ABSENT }), weight: 4 },
  {
    arbitrary: fc
      .dictionary(headerName, contractHeaderValue, { maxKeys: 5, noNullPrototype: false })
      .map((value) => ({ kind: 'value' as const, value })),
    weight: 10,
  },
  {
    arbitrary: fc
      .record({ key: headerName, tag: typeTagValue })
      .map(({ key, tag }) => ({ kind: 'value' as const, value: { [key]: tag } })),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('exotic' as const),
      key: headerName,
      name: exoticName,
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('big' as const),
      item: fc.constantFrom(
        'zero' as const,
        'half' as const,
        'null' as const,
        'empty array' as const,
        'text' as const,
      ),
      jsonBytes: fc.oneof(
        fc.integer({ min: 20_000, max: 61_500 }),
        fc.constantFrom(61_439, 61_440, 61_441),
      ),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('deep' as const),
      depth: fc.integer({ min: 14, max: 19 }),
      container: fc.constantFrom('array' as const, 'object' as const),
    }),
    weight: 1,
  },
  {
    arbitrary: fc
      .constantFrom(null, 'text', ['a'], new Map([['a', 1]]))
      .map((value) => ({ kind: 'value' as const, value })),
    weight: 1,
  },
);

/**
 * One message: clean (every field valid or borderline: what must be accepted
 * and delivered) or dirty (any field may be wrong in any way), half and half.
 */
function messageSpecOf(dirty: boolean, exchanges: number): fc.Arbitrary<MessageSpec> {
  return fc.record({
    shape: dirty
      ? fc.oneof(
          { arbitrary: fc.constant('object' as const), weight: 30 },
          {
            arbitrary: fc.constantFrom('null' as const, 'string' as const, 'map' as const),
            weight: 1,
          },
        )
      : fc.constant('object' as const),
    tenantId: required(fc.constantFrom('acme', 'globex', 'initech'), false, dirty),
    exchange: fc.oneof(
      { arbitrary: fc.integer({ min: 0, max: exchanges - 1 }), weight: 12 },
      { arbitrary: fc.constant('default' as const), weight: 3 },
      {
        arbitrary: fc
          .oneof(
            notAString,
            aroundLimit().filter((s) => Buffer.byteLength(s) > SHORT_STRING_BYTES),
            fc.constant('ex\u0000'),
          )
          .map((bad) => ({ bad })),
        weight: dirty ? 2 : 0,
      },
    ),
    routingKey: required(fc.constantFrom('', 'orders.created', 'a.#.*', 'x'), true, dirty),
    type: optional(fc.constantFrom('order.created', 'e'), dirty),
    contentType: optional(
      fc.constantFrom('application/json', 'text/plain; charset=utf-8', 'application/x-protobuf'),
      dirty,
    ),
    orderingKey: optional(fc.constantFrom('order-1', 'order-2'), dirty),
    messageId: fc.oneof(
      { arbitrary: fc.constant(ABSENT), weight: 6 },
      { arbitrary: fc.uuid(), weight: 3 },
      { arbitrary: fc.uuid().map((id) => id.toUpperCase()), weight: 1 },
      {
        arbitrary: fc.oneof(
          notAString,
          fc.constantFrom('not-a-uuid', '', '{00000000-0000-0000-0000-000000000000}'),
        ),
        weight: dirty ? 2 : 0,
      },
    ),
    headers: dirty ? headersSpec : cleanHeadersSpec,
    payload: fc.oneof(
      { arbitrary: dirty ? payloadSpec : cleanPayloadSpec, weight: 60 },
      { arbitrary: bigPayloadSpec, weight: 1 },
    ),
  });
}

const cleanHeadersSpec: fc.Arbitrary<HeadersSpec> = headersSpec.filter(
  (h) =>
    h.kind !== 'exotic' &&
    (h.kind !== 'value' ||
      h.value === ABSENT ||
      (typeof h.value === 'object' && !Array.isArray(h.value) && !(h.value instanceof Map))),
);

/** Runs of one to six messages, half clean, half dirty; `exchanges` declared exchanges to pick from. */
export function runArbitrary(exchanges: number): fc.Arbitrary<Run> {
  const messageSpec = fc.oneof(messageSpecOf(false, exchanges), messageSpecOf(true, exchanges));
  return fc.record({
    maxPayloadBytes: fc.oneof(
      { arbitrary: fc.constant(undefined), weight: 3 },
      { arbitrary: fc.constantFrom(...SMALL_LIMITS), weight: 2 },
    ),
    messages: fc.uniqueArray(messageSpec, {
      minLength: 1,
      maxLength: 6,
      // Two messages with one explicit message id would be indistinguishable at the consumer.
      selector: (m) => (typeof m.messageId === 'string' ? m.messageId.toLowerCase() : Symbol()),
    }),
  });
}

// ---------------------------------------------------------------------------
// Building a message and judging it

export interface Built {
  message: unknown;
  judgement: Judgement;
  /** Fields (roots of InvalidMessageError.field) whose own verdict is not 'valid'. */
  suspects: Set<string>;
  expected?: Expected;
}

/** What the consumer must see for an accepted message. */
export interface Expected {
  tenantId: string;
  routingKey: string;
  type: string | undefined;
  contentType: string;
  messageId: string | undefined;
  orderingScope: string;
  headers: unknown;
  body: { bytes: Buffer } | { json: unknown };
}

function sizedPayload(bytes: number, form: SizedForm): unknown {
  switch (form) {
    case 'bytes':
      return Buffer.alloc(bytes, 0x61);
    case 'json string':
      return 'a'.repeat(Math.max(0, bytes - 2));
    case 'json é string':
      return stringOfBytes(Math.max(0, bytes - 2), 'é');
    case 'json array':
      return Array.from({ length: Math.max(0, Math.floor((bytes - 1) / 2)) }, () => 0);
  }
}

function buildPayload(spec: PayloadSpec): unknown {
  switch (spec.kind) {
    case 'value':
      return spec.value;
    case 'exotic': {
      const value = exotic(spec.name);
      return spec.at === 'top' ? value : spec.at === 'in object' ? { a: value } : [value];
    }
    case 'bytes':
      return spec.asBuffer ? Buffer.from(spec.bytes) : new Uint8Array(spec.bytes);
    case 'sized':
      return sizedPayload(spec.bytes, spec.form);
    case 'absent':
      return undefined;
  }
}

function buildHeaders(spec: HeadersSpec): Field {
  switch (spec.kind) {
    case 'value':
      return spec.value;
    case 'exotic':
      return { [spec.key]: exotic(spec.name) };
    case 'big':
      return bigHeaders(spec.item, spec.jsonBytes);
    case 'deep': {
      let value: unknown = 1;
      for (let i = 1; i < spec.depth; i++)
        value = spec.container === 'array' ? [value] : { d: value };
      return { deep: value };
    }
  }
}

function judgeShortString(value: unknown, field: string, allowEmpty: boolean): Judgement {
  if (typeof value !== 'string') return { verdict: 'invalid', reason: `${field} is not a string` };
  if (!allowEmpty && value.trim() === '')
    return { verdict: 'invalid', reason: `${field} is blank` };
  if (Buffer.byteLength(value) > SHORT_STRING_BYTES)
    return { verdict: 'invalid', reason: `${field} is over 255 bytes` };
  return judgeText(value, field);
}

function judgeOptional(value: unknown, field: string): Judgement {
  return value === undefined || value === null
    ? { verdict: 'valid' }
    : judgeShortString(value, field, false);
}

/** A UUID in any case, as enqueue takes a message id. */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Where messages go: the declared exchanges (each bound to `queue`), and the queue for the default exchange. */
export interface Routes {
  exchanges: readonly string[];
  queue: string;
}

/** Makes the message `spec` describes and judges it; `expected` is set unless it must be rejected. */
export function buildMessage(spec: MessageSpec, run: Run, routes: Routes): Built {
  const { exchanges, queue } = routes;
  const fields: Record<string, unknown> = {};
  const put = (key: string, value: unknown) => {
    if (value !== ABSENT) fields[key] = value;
  };
  put('tenantId', spec.tenantId);
  if (spec.exchange === 'default') {
    put('exchange', '');
    put('routingKey', queue);
  } else {
    put(
      'exchange',
      typeof spec.exchange === 'number' ? exchanges[spec.exchange] : spec.exchange.bad,
    );
    put('routingKey', spec.routingKey);
  }
  put('type', spec.type);
  put('contentType', spec.contentType);
  put('orderingKey', spec.orderingKey);
  put('messageId', spec.messageId);
  put('headers', buildHeaders(spec.headers));
  if (spec.payload.kind !== 'absent') fields.payload = buildPayload(spec.payload);

  const limit = run.maxPayloadBytes ?? 1024 * 1024;
  const verdicts: Record<string, Judgement> = {};
  let message: unknown = fields;
  if (spec.shape !== 'object') {
    message = {
      null: null,
      string: 'message',
      map: new Map(Object.entries(fields)),
    }[spec.shape];
    verdicts.message = { verdict: 'invalid', reason: `the message is a ${spec.shape}` };
    if (spec.shape === 'map') verdicts.tenantId = { verdict: 'invalid', reason: 'no tenantId' };
    return finish(message, verdicts);
  }
  verdicts.tenantId = judgeShortString(fields.tenantId, 'tenantId', false);
  verdicts.exchange = judgeShortString(fields.exchange, 'exchange', true);
  verdicts.routingKey = judgeShortString(fields.routingKey, 'routingKey', true);
  verdicts.type = judgeOptional(fields.type, 'type');
  verdicts.contentType = judgeOptional(fields.contentType, 'contentType');
  verdicts.orderingKey = judgeOptional(fields.orderingKey, 'orderingKey');
  const id = fields.messageId;
  verdicts.messageId =
    id === undefined || id === null || (typeof id === 'string' && UUID.test(id))
      ? { verdict: 'valid' }
      : { verdict: 'invalid', reason: 'messageId is not a UUID' };
  verdicts.headers = judgeHeaders(
    fields.headers,
    typeof fields.tenantId === 'string' ? fields.tenantId : '',
  );

  let body: Expected['body'] | undefined;
  let defaultType = 'application/json';
  if (!('payload' in fields)) {
    verdicts.payload = { verdict: 'invalid', reason: 'payload is missing' };
  } else if (fields.payload instanceof Uint8Array) {
    const p = fields.payload;
    const bytes = Buffer.from(p.buffer, p.byteOffset, p.byteLength);
    body = { bytes: Buffer.from(bytes) };
    defaultType = 'application/octet-stream';
    verdicts.payload =
      bytes.byteLength > limit
        ? { verdict: 'invalid', reason: `payload is ${bytes.byteLength} bytes` }
        : { verdict: 'valid' };
  } else {
    const view = jsonView(fields.payload);
    if (view.fidelity === 'lossy') {
      verdicts.payload = { verdict: 'invalid', reason: view.reason ?? 'lossy' };
    } else {
      const size = Buffer.byteLength(JSON.stringify(fields.payload) ?? '');
      verdicts.payload =
        size > limit
          ? { verdict: 'invalid', reason: `payload is ${size} bytes of JSON` }
          : view.fidelity === 'lenient'
            ? { verdict: 'either', reason: view.reason ?? 'lenient' }
            : { verdict: 'valid' };
      body = { json: view.model };
    }
  }
  const built = finish(message, verdicts);
  if (built.judgement.verdict !== 'invalid' && body) {
    const tenantId = fields.tenantId as string;
    const headersModel = JSON.parse(JSON.stringify(fields.headers ?? {})) as Record<
      string,
      unknown
    >;
    built.expected = {
      tenantId,
      routingKey: fields.routingKey as string,
      type: (fields.type ?? undefined) as string | undefined,
      contentType: (fields.contentType ?? defaultType) as string,
      messageId: typeof id === 'string' ? id.toLowerCase() : undefined,
      orderingScope: (fields.orderingKey ?? tenantId) as string,
      headers: { ...headersModel, 'x-tenant-id': tenantId },
      body,
    };
  }
  return built;
}

function finish(message: unknown, verdicts: Record<string, Judgement>): Built {
  const rank: Record<Verdict, number> = { valid: 0, either: 1, invalid: 2 };
  let judgement: Judgement = { verdict: 'valid' };
  const suspects = new Set<string>();
  for (const [field, j] of Object.entries(verdicts)) {
    if (j.verdict !== 'valid') suspects.add(field);
    if (rank[j.verdict] > rank[judgement.verdict])
      judgement = { verdict: j.verdict, reason: j.reason ?? field };
  }
  return { message, judgement, suspects };
}
