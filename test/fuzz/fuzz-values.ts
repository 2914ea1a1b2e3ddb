import fc from 'fast-check';
import { EXTERNAL_ID_PATTERN, type ApiSubject } from '@backchannel/contracts';
import type { FuzzService } from './fuzz-mesh.js';

/**
 * What the generators of malformed requests share (issue 10): the cases, the values and the
 * "breakers"; the families themselves are in http-requests.ts, nats-requests.ts and
 * raw-requests.ts, one per endpoint. Each request starts from a template of its endpoint and
 * goes through one or two breakers, each of which makes it invalid on one axis (auth, id,
 * body, content type, method, state), so every request is invalid by construction and any
 * 2xx, or any write, is a defect.
 *
 * Two rules keep that true. A breaker only ever sets a value that is wrong on its own
 * (no `null` for optional fields: class-validator reads that as absent). And a template
 * that would be valid never goes out without a breaker; the dispatcher's template is
 * itself invalid (a private tool URL, refused while DISPATCHER_ALLOW_PRIVATE_NETWORKS is
 * false), so no fuzzed invocation can leave the machine. Templates fill free-form JSON
 * (`metadata`, `arguments`, a tool's `result`) with any keys, Object.prototype's member names
 * among them (`freeFormObject`): valid there, so they must never be what a request fails on.
 */

export interface HttpCase {
  kind: 'http';
  family: string;
  service: FuzzService;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** The axes made invalid, for the report. */
  broken: string[];
  /** The exact statuses the contract gives, when a single breaker makes them certain. */
  statuses?: readonly number[];
  /** Credentials this request presented: none may come back in the answer. */
  presented: string[];
  /** The path is a variant spelling of the route's (see PATH_VARIANTS). */
  variant?: boolean;
}

export interface RawCase {
  kind: 'raw';
  family: string;
  service: FuzzService;
  bytes: Buffer;
  broken: string[];
}

export interface NatsCase {
  kind: 'nats';
  family: string;
  subject: ApiSubject;
  data: Uint8Array;
  broken: string[];
  statuses?: readonly number[];
  presented: string[];
}

export type FuzzCase = HttpCase | RawCase | NatsCase;

/** A request being built: a JSON body stays a value until the end, so breakers can edit fields. */
export interface Draft {
  method: string;
  path: string;
  headers: Record<string, string | undefined>;
  /** A JSON value, or `{ raw }` for a body that is not JSON text of a value. */
  body?: unknown;
  broken: string[];
  statuses?: readonly number[];
  presented: string[];
}

interface RawBody {
  raw: string;
}

export type Breaker = (draft: Draft) => Draft;

const isRaw = (body: unknown): body is RawBody =>
  typeof body === 'object' && body !== null && Object.keys(body).length === 1 && 'raw' in body;

export function bodyText(body: unknown): string | undefined {
  if (body === undefined) return undefined;
  return isRaw(body) ? body.raw : JSON.stringify(body);
}

export function objectBody(draft: Draft): Record<string, unknown> {
  const body = draft.body;
  return body && typeof body === 'object' && !Array.isArray(body) && !isRaw(body)
    ? { ...(body as Record<string, unknown>) }
    : {};
}

/** A breaker that records its axis, and the statuses it alone would give. */
export function breaker(axis: string, edit: (draft: Draft) => Partial<Draft>, statuses?: readonly number[]): Breaker {
  return (draft) => ({ ...draft, ...edit(draft), broken: [...draft.broken, axis], statuses });
}

// ---- values -------------------------------------------------------------------------------

export const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
export const ofAlphabet = (alphabet: string, min: number, max = min) =>
  fc.string({ unit: fc.constantFrom(...alphabet.split('')), minLength: min, maxLength: max });
export const printable = (max = 60) =>
  fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: max });
export const anyText = (max = 40) => fc.string({ unit: 'grapheme', maxLength: max });

/** Strings that are not conversation or tenant ids (CONTRACT.md §1). */
export const badExternalId = fc
  .oneof(
    fc.constantFrom(
      '',
      ' ',
      '-x',
      '_x',
      ':x',
      'a b',
      'a.b',
      'a*',
      'a>',
      'a/b',
      'a\nb',
      'x\n',
      '..',
      '.',
      'é',
      'a\u0000',
    ),
    fc.constant('x'.repeat(129)),
    anyText(140),
    fc.string({ unit: 'binary-ascii', maxLength: 40 }),
  )
  .filter((id) => !EXTERNAL_ID_PATTERN.test(id));

/** A well-formed id no fixture uses: unknown to the mesh. */
export const unknownExternalId = ofAlphabet('abcdefghijklmnopqrstuvwxyz0123456789', 6, 20).map(
  (s) => `fz-unknown-${s}`,
);
/**
 * A well-formed id for a conversation a template would open. Apart from the unknown ones, so
 * that one opened by a request that should have been refused never turns an "unknown" id
 * into a known one later in the run.
 */
export const freshExternalId = ofAlphabet('abcdefghijklmnopqrstuvwxyz0123456789', 6, 20).map((s) => `fz-new-${s}`);
export const unknownWorkItemId = ofAlphabet(CROCKFORD, 26).map((ulid) => `wi_${ulid}`);
export const unknownKeyId = ofAlphabet(CROCKFORD, 26).map((ulid) => `key_${ulid}`);

/** `original` one character off: replaced, removed, added, or its case flipped. */
export function oneOff(original: string): fc.Arbitrary<string> {
  const at = fc.nat({ max: original.length - 1 });
  const char = fc.constantFrom(...BASE64URL.split(''), '=', '+', '/', '.', '~', '%');
  return fc
    .oneof(
      fc.tuple(at, char).map(([i, c]) => original.slice(0, i) + c + original.slice(i + 1)),
      at.map((i) => original.slice(0, i) + original.slice(i + 1)),
      fc.tuple(fc.nat({ max: original.length }), char).map(([i, c]) => original.slice(0, i) + c + original.slice(i)),
      at.map((i) => {
        const c = original[i];
        return (
          original.slice(0, i) + (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()) + original.slice(i + 1)
        );
      }),
    )
    .filter((mutated) => mutated !== original);
}

/** Malformed ids of the `wi_`/`key_` kind: wrong length, alphabet, prefix or case. */
export function badPrefixedId(prefix: string, sample: string, pattern: RegExp): fc.Arbitrary<string> {
  return fc
    .oneof(
      anyText(40),
      ofAlphabet(CROCKFORD, 0, 40).map((s) => `${prefix}${s}`),
      ofAlphabet(CROCKFORD, 26).map((s) => `${prefix}${s.toLowerCase()}`),
      ofAlphabet('ILOU', 26).map((s) => `${prefix}${s}`),
      oneOff(sample),
      fc.constantFrom(
        `${prefix}`,
        `${prefix.toUpperCase()}${sample.slice(prefix.length)}`,
        `${sample}/x`,
        ` ${sample}`,
      ),
    )
    .filter((id) => !pattern.test(id));
}

/** JSON values of any type but `kind`, for a field that must be of that kind. */
export function wrongType(
  kind: 'string' | 'number' | 'boolean' | 'object' | 'array',
  allowNull: boolean,
): fc.Arbitrary<unknown> {
  const all: Record<string, fc.Arbitrary<unknown>> = {
    string: anyText(10),
    number: fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true })),
    boolean: fc.boolean(),
    object: fc.dictionary(fc.string({ maxLength: 4 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
    array: fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 }),
  };
  const choices = Object.entries(all)
    .filter(([name]) => name !== kind)
    .map(([, arbitrary]) => arbitrary);
  return allowNull ? fc.oneof(...choices, fc.constant(null)) : fc.oneof(...choices);
}

/**
 * The names of Object.prototype's members (constructor, toString, hasOwnProperty…), which a
 * plain object seems to have: as request fields they are unknown like any other, and in
 * free-form JSON they are keys like any other. `__proto__` is not among them: the JSON
 * parser refuses a body holding it, or `constructor.prototype`, as malformed (see
 * `poisonedFreeForm`).
 */
export const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype).filter((name) => name !== '__proto__');

/**
 * A field name no request DTO declares: refused like any other, whatever it is named,
 * those of Object.prototype's members included.
 */
export const strayField = fc
  .oneof(
    fc.constantFrom('extra', 'Conversation_id', 'kind ', 'admin', 'state', 'work_item_id', 'token'),
    fc.constantFrom(...PROTOTYPE_NAMES),
    fc.string({ minLength: 1, maxLength: 10 }),
  )
  .filter((name) => !KNOWN_FIELDS.has(name));
const KNOWN_FIELDS = new Set([
  'conversation_id',
  'tenant_id',
  'metadata',
  'reason',
  'kind',
  'name',
  'turn_id',
  'timeout_ms',
  'ordered',
  'delivery',
  'idempotency_key',
  'call_control_id',
  'tool',
  'arguments',
  'messages',
  'after',
  'limit',
  'work_item_id',
  'key_id',
  'result',
  'message',
  'errors',
  'progress',
]);

const freeFormKey = fc.oneof(fc.constantFrom(...PROTOTYPE_NAMES), fc.string({ maxLength: 6 }));

/**
 * Free-form JSON objects, valid as they are (a conversation's `metadata`, an invocation's
 * `arguments`, a tool callback's `result`): any keys, names of Object.prototype's members
 * among them, at the top and one level down. The API keeps them exactly as parsed.
 */
export const freeFormObject: fc.Arbitrary<Record<string, unknown>> = fc
  .dictionary(
    freeFormKey,
    fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.dictionary(freeFormKey, fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 })),
    { minKeys: 1, maxKeys: 4 },
  )
  .filter((value) => !poisoned(value) && JSON.stringify(value).length <= 2_000);

/** Whether JSON `value` has a key the parser may refuse: `__proto__`, or `prototype` (refused under `constructor`). */
function poisoned(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  return Object.entries(value).some(([key, child]) => key === '__proto__' || key === 'prototype' || poisoned(child));
}

/** Texts that are not JSON, or JSON with a flaw a strict parser refuses. */
export const notJson = fc.oneof(
  fc.constantFrom(
    '{',
    '{"a":1,}',
    "{'a':1}",
    '{"a":1}}',
    '{"a":"\\q"}',
    '{"a":"\\u12"}',
    '{"a":NaN}',
    '{"a":Infinity}',
    '[1,2',
    'nul',
    'tru',
    '{"a":1} x',
    '\u0000',
    '{"a":"\ud800"',
    '{"__proto__":{"x":1}}',
    '{"constructor":{"prototype":{"x":1}}}',
  ),
  fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 60 }).filter((text) => !parses(text)),
);

export function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

export const nonObjectJson = fc.oneof(
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 4 }),
  anyText(20),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
);

// ---- breakers shared by endpoints ---------------------------------------------------------

/** Authorization headers that are not `Bearer <secret>` for `secret` (and are not it once trimmed). */
function badBearer(secret: string, others: string[]): fc.Arbitrary<string | undefined> {
  return fc
    .oneof(
      fc.constant(undefined),
      fc.constantFrom('', 'Bearer', 'Bearer ', 'Basic Zm9vOmJhcg==', secret, `Token ${secret}`, `Bearer ${secret}x`),
      fc.constantFrom(...others.map((other) => `Bearer ${other}`)),
      printable(80).map((text) => `Bearer ${text}`),
      oneOff(secret).map((mutated) => `Bearer ${mutated}`),
      ofAlphabet(BASE64URL, 43).map((rest) => `Bearer bck_${rest}`),
      fc.constant(`bearer ${oneOffSync(secret)}`),
    )
    .filter((value) => value === undefined || value.trim() !== `Bearer ${secret}`);
}

/** A fixed one-character mutation (for a lowercase scheme, which RFC 7235 allows, with a wrong secret). */
function oneOffSync(secret: string): string {
  const last = secret.at(-1) === 'A' ? 'B' : 'A';
  return secret.slice(0, -1) + last;
}

export const authBreaker = (secret: string, others: string[], statuses: readonly number[]) =>
  badBearer(secret, others).map((value) =>
    breaker(
      'auth',
      (d) => ({
        headers: { ...d.headers, authorization: value },
        presented: value ? [...d.presented, value.replace(/^\S+\s+/, '')] : d.presented,
      }),
      statuses,
    ),
  );

/**
 * Spellings of a path a router might take for the route's own: a percent-encoded letter,
 * another case, doubled or trailing slashes, dot segments, encoded separators. Whether a
 * variant reaches the route is the router's business; what matters is that no check keyed
 * on the path's spelling (auth, media type, rate limit) is skipped when it does.
 */
const PATH_VARIANTS: ((path: string) => string)[] = [
  (p) => p.replace(/^\/(.)/, (_, c: string) => `/%${c.charCodeAt(0).toString(16)}`),
  (p) => p.replace('/v1/', '/%76%31/'),
  (p) => p.replace(/^\/([a-z]+)/, (_, first: string) => `/${first.toUpperCase()}`),
  (p) => `/${p}`,
  (p) => p.replace(/^(\/[^/]+)\//, '$1//'),
  (p) => `${p}/`,
  (p) => p.replace(/^(\/[^/]+)\//, '$1/./'),
  (p) => p.replace(/^(\/[^/]+)\//, '$1%2F'),
  (p) => `${p};x=1`,
  (p) => `${p}%00`,
  (p) => `${p}%20`,
];

/** A path variant without the credentials: whatever routes it, the answer is 401 or 404 (or 400). */
export const pathVariantBreaker = fc.constantFrom(...PATH_VARIANTS).map((spell) =>
  breaker(
    'path variant without credentials',
    (d) => ({
      path: spell(d.path),
      headers: { ...d.headers, authorization: undefined, 'x-callback-token': undefined },
    }),
    [400, 401, 404],
  ),
);

/** A path variant that keeps everything else: never an axis on its own, only applied beside a breaker. */
export const pathVariantModifier = fc
  .constantFrom(...PATH_VARIANTS)
  .map((spell): Breaker => (d) => ({ ...d, path: spell(d.path), statuses: undefined }));

/** A method the path has no route for (`routed`: the methods it has, HEAD with GET). */
export const wrongMethod = (routed: string[]) =>
  fc
    .constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS')
    .filter((method) => !routed.includes(method))
    .map((method) => breaker('method', () => ({ method }), [401, 404]));

/** Content types other than JSON, with a body to match (a form body holds the template's fields). */
export const contentTypeBreaker = fc
  .constantFrom(
    'application/x-www-form-urlencoded',
    'text/plain',
    'text/json',
    'application/xml',
    'multipart/form-data; boundary=x',
    'application/octet-stream',
    'application/json-patch+json',
    'application/jsonx',
    'none',
  )
  .map((type) =>
    breaker(`content-type ${type}`, (d) => {
      const fields = objectBody(d);
      const body =
        type === 'application/x-www-form-urlencoded'
          ? new URLSearchParams(
              Object.entries(fields).map(([k, v]): [string, string] => [
                k,
                typeof v === 'string' ? v : JSON.stringify(v),
              ]),
            ).toString()
          : (bodyText(d.body) ?? '{}');
      return { headers: { ...d.headers, 'content-type': type === 'none' ? undefined : type }, body: { raw: body } };
    }),
  );

export const malformedBody = fc.oneof(
  notJson.map((raw) => breaker('body not JSON', () => ({ body: { raw } }))),
  nonObjectJson.map((value) => breaker('body not an object', () => ({ body: value }))),
);

export const strayFieldBreaker = fc
  .tuple(strayField, fc.jsonValue({ maxDepth: 1 }))
  .map(([name, value]) => breaker(`stray field ${name}`, (d) => ({ body: { ...objectBody(d), [name]: value } })));

/**
 * A free-form field holding what the JSON parser refuses as prototype poisoning: a
 * `__proto__` key, or `constructor.prototype`, at any depth. 400 (docs/architecture.md).
 */
export function poisonedFreeForm(field: string): fc.Arbitrary<Breaker> {
  const mark = '\u0000poison';
  return fc
    .constantFrom(
      '{"__proto__":{"x":1}}',
      '{"a":1,"__proto__":null}',
      '{"a":[{"__proto__":{}}]}',
      '{"constructor":{"prototype":{"x":1}}}',
      '{"a":{"constructor":{"prototype":null}}}',
    )
    .map((poison) =>
      breaker(
        `${field} ${poison}`,
        (d) => ({
          body: { raw: JSON.stringify({ ...objectBody(d), [field]: mark }).replace(JSON.stringify(mark), poison) },
        }),
        [400],
      ),
    );
}

export function missingField(fields: string[]): fc.Arbitrary<Breaker> {
  return fc.constantFrom(...fields).map((field) =>
    breaker(`missing ${field}`, (d) => {
      const body = objectBody(d);
      delete body[field];
      return { body };
    }),
  );
}

export function fieldBreaker(field: string, values: fc.Arbitrary<unknown>): fc.Arbitrary<Breaker> {
  return values.map((value) => breaker(`${field}`, (d) => ({ body: { ...objectBody(d), [field]: value } })));
}

/** Integers outside [min, max], fractions, and numbers as strings. */
export const outOfRange = (min: number, max: number) =>
  fc.oneof(
    fc.integer({ max: min - 1 }),
    fc.integer({ min: max + 1 }),
    fc.double({ min, max, noNaN: true }).filter((n) => !Number.isInteger(n)),
    fc.integer({ min, max }).map(String),
    fc.constantFrom(-0.5, 2 ** 53 + 2),
  );

const PRIVATE_TOOL_URLS = [
  'http://127.0.0.1:9/tool',
  'http://localhost/tool',
  'http://10.0.0.1/tool',
  'http://172.16.5.4/tool',
  'http://192.168.1.1/tool',
  'http://169.254.169.254/latest/meta-data',
  'http://100.100.100.200/',
  'http://100.64.0.1/',
  'http://0.0.0.0/',
  'http://[::1]/tool',
  'http://[::ffff:127.0.0.1]/tool',
  'http://[::ffff:7f00:1]/tool',
  'http://[fc00::1]/tool',
  'http://[fe80::1]/tool',
  'http://[fd00:ec2::254]/',
  'http://[::127.0.0.1]/tool',
  'http://2130706433/tool',
  'http://0x7f000001/tool',
  'http://0177.0.0.1/tool',
  'http://127.1/tool',
  'http://224.0.0.1/tool',
  'http://255.255.255.255/tool',
  'https://198.51.100.7/tool',
];

const BAD_TOOL_URLS = [
  '',
  'not a url',
  '/relative',
  'ftp://10.0.0.1/x',
  'file:///etc/passwd',
  'javascript:alert(1)',
  'gopher://127.0.0.1:25/',
  'http://user:pass@10.0.0.1/',
  'http://user@10.0.0.1/',
  'http://',
  `http://10.0.0.1/${'p'.repeat(2_100)}`,
];

export function invocationBody(conversationId: string): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .record({
      url: fc.constantFrom(...PRIVATE_TOOL_URLS),
      mode: fc.constantFrom('async', 'sync'),
      timeout_ms: fc.option(fc.integer({ min: 3_000, max: 60_000 }), { nil: undefined }),
      args: freeFormObject,
    })
    .map(({ url, mode, timeout_ms, args }) => ({
      conversation_id: conversationId,
      call_control_id: 'v3:fuzz-call',
      tool: { url, mode, ...(timeout_ms !== undefined ? { timeout_ms } : {}) },
      arguments: args,
    }));
}

function toolField(field: string, values: fc.Arbitrary<unknown>): fc.Arbitrary<Breaker> {
  return values.map((value) =>
    breaker(`tool.${field}`, (d) => {
      const body = objectBody(d);
      const tool = body.tool && typeof body.tool === 'object' && !Array.isArray(body.tool) ? body.tool : {};
      return { body: { ...body, tool: { ...tool, [field]: value } } };
    }),
  );
}

export function invocationBreakers(): fc.Arbitrary<Breaker>[] {
  return [
    missingField(['conversation_id', 'call_control_id', 'tool', 'arguments']),
    fieldBreaker('conversation_id', fc.oneof(badExternalId, wrongType('string', true))),
    fieldBreaker(
      'call_control_id',
      fc.oneof(fc.constantFrom('', ' x', 'x ', 'a\r\nb', 'a\u0000', 'é', 'c'.repeat(257)), wrongType('string', true)),
    ),
    fieldBreaker('tool', wrongType('object', true)),
    fieldBreaker('arguments', wrongType('object', true)),
    fieldBreaker('name', fc.oneof(wrongType('string', false), fc.constant('n'.repeat(129)))),
    fieldBreaker('ordered', wrongType('boolean', false)),
    fieldBreaker('delivery', fc.oneof(fc.constantFrom('later', ''), wrongType('string', false))),
    toolField('url', fc.oneof(fc.constantFrom(...BAD_TOOL_URLS), wrongType('string', true))),
    toolField('mode', fc.oneof(fc.constantFrom('ASYNC', 'both', ''), wrongType('string', true))),
    toolField('timeout_ms', outOfRange(1_000, 3_600_000)),
    toolField('ack_timeout_ms', fc.oneof(outOfRange(100, 10_000), fc.constant(9_999))),
    toolField(
      'signing_secret',
      fc.oneof(
        fc.constantFrom('whsec_', 'whsec_!!!!', 'secret', 'whsec_' + 'A'.repeat(300)),
        ofAlphabet(BASE64URL, 8, 40).map((s) => `whsec_${s}*`),
      ),
    ),
    fc.tuple(strayField, fc.jsonValue({ maxDepth: 1 })).map(([name, value]) =>
      breaker(`tool stray field ${name}`, (d) => {
        const body = objectBody(d);
        return { body: { ...body, tool: { ...(body.tool as object), [name]: value } } };
      }),
    ),
  ];
}
