import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ERROR_CODES, isErrorCode } from '@backchannel/contracts';
import { eventually, type NatsServerHandle } from '@backchannel/testing';
import { ORDERING_SEQUENCER } from '../../ordering-sequencer/src/ordering-sequencer.service-definition.js';
import { TOKEN_AUTHORITY } from '../../token-authority/src/token-authority.service-definition.js';
import { CALLBACK_INGRESS } from '../src/callback-ingress.service-definition.js';
import { startNatsServer, startTestService, type TestService } from '../../../test/support/mesh.js';
import { PlatformClient, postCallback } from '../../../test/support/platform.js';
import { ReleaseWatcher } from '../../../test/support/releases.js';

/**
 * Fuzzing the public edge (CONTRACT.md §3, §5): whatever arrives — junk JSON, wrong shapes,
 * huge or nested bodies, non-JSON bytes, odd content types, random or one-character-off
 * tokens and work item ids — the answer is a 4xx in the error envelope with a known code,
 * never a 500, never an injection, and the process stays up. Every generated request is
 * invalid by construction on at least one axis, so any 2xx is a bug.
 */

const MAX_BODY_BYTES = 65_536;
const CONVERSATION = 'fuzz';
const FINAL_FIELDS = ['result', 'message', 'errors'];
/** Per property: a bound on wall time, so the file stays under a minute on a slow machine. */
const TIME_LIMIT_MS = { bodies: 20_000, tokens: 14_000, ids: 14_000 } as const;

/** JSON text of `1` inside `depth` arrays and objects, alternating (built as text: no recursion). */
function nested(depth: number): string {
  const open = Array.from({ length: depth }, (_, i) => (i % 2 === 0 ? '[' : '{"k":'));
  const close = Array.from({ length: depth }, (_, i) => (i % 2 === 0 ? ']' : '}')).reverse();
  return `${open.join('')}1${close.join('')}`;
}

interface Item {
  work_item_id: string;
  token: string;
  kind: 'tool' | 'llm';
}

interface FuzzRequest {
  path: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
}

interface Answer {
  status: number;
  text: string;
}

describe('callback ingress under fuzzing', () => {
  let nats: NatsServerHandle;
  let services: TestService[] = [];
  let ingressUrl: string;
  let platform: PlatformClient;
  let watcher: ReleaseWatcher;
  let tool: Item[];
  let llm: Item[];
  let items: Item[];
  const runs: Record<string, number> = {};

  beforeAll(async () => {
    nats = await startNatsServer();
    const env = { INGRESS_RATE_LIMIT_PER_SOURCE: '1000000', LOG_LEVEL: 'warn' };
    const ta = await startTestService(TOKEN_AUTHORITY, nats, env);
    const ingress = await startTestService(CALLBACK_INGRESS, nats, {
      ...env,
      CALLBACK_MAX_BODY_BYTES: String(MAX_BODY_BYTES),
    });
    services = [ta, ingress, await startTestService(ORDERING_SEQUENCER, nats, env)];
    ingressUrl = ingress.service.url;
    platform = new PlatformClient(ta.service.url);
    watcher = await ReleaseWatcher.start(nats.url);
    await platform.openConversation(CONVERSATION);
    // Unordered, so a wrongly accepted callback would be released at once; the longest
    // timeout, so no deadline releases anything while the fuzzing runs.
    const register = async (kind: 'tool' | 'llm'): Promise<Item> => ({
      ...(await platform.register(CONVERSATION, { kind, ordered: false, timeout_ms: 3_600_000 })),
      kind,
    });
    tool = [await register('tool'), await register('tool')];
    llm = [await register('llm'), await register('llm')];
    items = [...tool, ...llm];
  });

  afterAll(async () => {
    await watcher?.close();
    for (const service of services) await service.service.stop();
    await nats?.cleanup();
  });

  async function send(request: FuzzRequest): Promise<Answer> {
    const response = await fetch(`${ingressUrl}${request.path}`, {
      method: 'POST',
      headers: request.headers,
      body: request.body,
    });
    return { status: response.status, text: await response.text() };
  }

  /** The invariant of every fuzzed answer; returns the error code. */
  function expectRefusal(answer: Answer, allowed: number[]): string {
    if (!allowed.includes(answer.status)) {
      throw new Error(`answered ${answer.status}, expected one of ${allowed.join(', ')}: ${answer.text.slice(0, 300)}`);
    }
    const body = JSON.parse(answer.text) as { errors?: { code?: unknown; title?: unknown }[] };
    expect(Array.isArray(body.errors) && body.errors.length === 1).toBe(true);
    const [error] = body.errors!;
    expect(typeof error.code === 'string' && isErrorCode(error.code)).toBe(true);
    const code = error.code as keyof typeof ERROR_CODES;
    expect(ERROR_CODES[code].status).toBe(answer.status);
    expect(error.title).toBe(ERROR_CODES[code].title);
    for (const item of items) expect(answer.text).not.toContain(item.token);
    return code;
  }

  function fuzz<T>(
    name: keyof typeof TIME_LIMIT_MS,
    arbitrary: fc.Arbitrary<T>,
    check: (value: T) => Promise<void>,
    numRuns: number,
  ) {
    runs[name] = 0;
    return fc.assert(
      fc.asyncProperty(arbitrary, async (value) => {
        runs[name]++;
        await check(value);
      }),
      { numRuns, plugins: [fc.interruptAfterTimeLimit(TIME_LIMIT_MS[name])] },
    );
  }

  const pathOf = (id: string, progress: boolean) =>
    `/api/v1/webhooks/${encodeURIComponent(id)}${progress ? '/progress' : ''}`;

  // ---- bodies ---------------------------------------------------------------------------

  /** True for anything that could pass the shape check: such bodies are not junk. */
  function couldBeValid(value: unknown, progress: boolean): boolean {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
    const keys = Object.keys(value);
    return keys.length === 1 && (progress ? keys[0] === 'progress' : FINAL_FIELDS.includes(keys[0]));
  }

  const json = fc.jsonValue({ maxDepth: 4 });
  /** Without the keys the JSON parser refuses as prototype poisoning (400 before 401). */
  const cleanJson = json.filter((value) => !/"(?:__proto__|constructor)":/.test(JSON.stringify(value)));
  const text = (min = 0, max = 40) => fc.string({ unit: 'grapheme', minLength: min, maxLength: max });
  const strayKey = fc.string({ minLength: 1, maxLength: 12 });
  const deep = fc.integer({ min: 128, max: 20_000 }).map(nested);
  const hugeNumber = fc.constantFrom('1e400', '-1e400', '9'.repeat(400), '1.5e99999', '-0.1e1000');
  const validError = fc.record({ code: text(1, 20), title: text(0, 40) });
  const invalidError = fc.oneof(
    fc.oneof(fc.integer(), text(), fc.constant(null), fc.boolean()),
    fc.record({ code: text(1, 20) }),
    fc.record({ code: fc.oneof(fc.integer(), fc.constant(null), fc.constant('')), title: text() }),
    fc.record({ code: fc.constant('x'.repeat(65)), title: text() }),
    fc.record({ code: text(1, 20), title: fc.oneof(fc.integer(), fc.constant('t'.repeat(257))) }),
    fc.record({ code: text(1, 20), title: text(), detail: fc.oneof(fc.integer(), fc.constant('d'.repeat(4_097))) }),
    fc.record({ code: text(1, 20), title: text(), meta: fc.oneof(fc.integer(), text(), fc.array(json)) }),
    fc.record({ code: text(1, 20), title: text(), meta: fc.record({ retryable: fc.oneof(fc.integer(), text()) }) }),
    fc
      .tuple(
        validError,
        strayKey.filter((key) => !['code', 'title', 'detail', 'meta'].includes(key)),
        json,
      )
      .map(([error, key, value]) => ({ ...error, [key]: value })),
  );
  const invalidErrors = fc.oneof(
    json.filter((value) => !Array.isArray(value)),
    fc.constant([]),
    fc.array(validError, { minLength: 21, maxLength: 25 }),
    fc
      .tuple(fc.array(validError, { maxLength: 3 }), invalidError, fc.array(validError, { maxLength: 3 }))
      .map(([before, bad, after]) => [...before, bad, ...after]),
  );
  const invalidMessage = fc.oneof(
    json.filter((value) => value === null || typeof value !== 'object' || Array.isArray(value)),
    fc.constant({}),
    fc.record({ content: fc.oneof(fc.integer(), fc.constant(null), fc.constant(''), fc.array(text())) }),
    fc
      .tuple(
        text(1, 20),
        strayKey.filter((key) => key !== 'content'),
        json,
      )
      .map(([content, key, value]) => ({ content, [key]: value })),
  );
  const invalidProgress = fc.oneof(
    json.filter((value) => value === null || typeof value !== 'object' || Array.isArray(value)),
    fc.constant({}),
    fc.record({ message: fc.oneof(fc.constant(''), fc.integer(), fc.constant('m'.repeat(1_001))) }),
    fc.record({ message: text(1, 20), percent: fc.oneof(fc.integer({ max: -1 }), fc.integer({ min: 101 }), text()) }),
    fc.record({ message: text(1, 20), id: fc.oneof(fc.constant(''), fc.integer(), fc.constant('i'.repeat(65))) }),
    fc
      .tuple(
        text(1, 20),
        strayKey.filter((key) => !['message', 'percent', 'id'].includes(key)),
        json,
      )
      .map(([message, key, value]) => ({ message, [key]: value })),
  );

  /** A JSON body text invalid for the item's kind and the endpoint, by construction. */
  const invalidJsonBody = (item: Item, progress: boolean): fc.Arbitrary<string> => {
    const junk = json.filter((value) => !couldBeValid(value, progress)).map((value) => JSON.stringify(value));
    const shared = [
      junk,
      deep.map((value) => (progress ? `{"progress":${value}}` : `{"result":${value}}`)),
      hugeNumber.map((number) =>
        progress ? `{"progress":{"message":"m","percent":${number}}}` : `{"result":{"n":[1,${number}]}}`,
      ),
      fc.constantFrom(
        '{"result":{"__proto__":{"polluted":true}}}',
        '{"progress":{"__proto__":{"message":"m"}}}',
        '{"result":{"constructor":{"prototype":{"polluted":true}}}}',
        '{"errors":[[{"code":"c","title":"t"}]]}',
        '',
        ' ',
        'null',
        '[]',
        '"result"',
      ),
    ];
    if (progress)
      return fc.oneof(
        ...shared,
        invalidProgress.map((value) => JSON.stringify({ progress: value })),
      );
    return fc.oneof(
      ...shared,
      json.map((value) => JSON.stringify(item.kind === 'tool' ? { message: value } : { result: value })),
      invalidErrors.map((errors) => JSON.stringify({ errors })),
      ...(item.kind === 'llm' ? [invalidMessage.map((message) => JSON.stringify({ message }))] : []),
      fc
        .tuple(fc.subarray(FINAL_FIELDS, { minLength: 2 }), json)
        .map(([fields, value]) => JSON.stringify(Object.fromEntries(fields.map((field) => [field, value])))),
      fc
        .tuple(
          fc.constantFrom(...FINAL_FIELDS),
          strayKey.filter((key) => !FINAL_FIELDS.includes(key)),
          json,
        )
        .map(([field, key, value]) => JSON.stringify({ [field]: value, [key]: value })),
    );
  };

  /** A body that is valid for the item, to pair with something else that is wrong. */
  const validBody = (item: Item, progress: boolean): fc.Arbitrary<string> => {
    if (progress) {
      return fc
        .record(
          { message: text(1, 50), percent: fc.integer({ min: 0, max: 100 }), id: text(1, 20) },
          { requiredKeys: ['message'] },
        )
        .map((value) => JSON.stringify({ progress: value }));
    }
    return item.kind === 'tool'
      ? cleanJson.map((result) => JSON.stringify({ result }))
      : text(1, 50).map((content) => JSON.stringify({ message: { content } }));
  };

  const jsonContentType = fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'Application/JSON',
    'application/json;charset=UTF-8',
  );
  const otherContentType = fc.constantFrom(
    'text/plain',
    'text/json',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/xml',
    'application/octet-stream',
    'application/json-patch+json',
    'application/vnd.api+json',
    'application/jsonx',
  );

  it('junk, wrong shapes, huge and nested bodies with the right token: 400, 413 or 415, never accepted', async () => {
    const request = fc.tuple(fc.constantFrom(...items), fc.boolean()).chain(([item, progress]) =>
      fc
        .oneof(
          { weight: 6, arbitrary: invalidJsonBody(item, progress).map((body) => ({ body, type: 'json' as const })) },
          {
            weight: 1,
            arbitrary: fc
              .uint8Array({ maxLength: 200 })
              .filter((bytes) => !parsesAsPossiblyValid(bytes, progress))
              .map((body) => ({ body, type: 'json' as const })),
          },
          {
            weight: 1,
            arbitrary: fc
              .integer({ min: MAX_BODY_BYTES, max: 4 * MAX_BODY_BYTES })
              .map((size) => ({ body: JSON.stringify({ result: 'x'.repeat(size) }), type: 'json' as const })),
          },
          {
            weight: 1,
            arbitrary: fc
              .tuple(otherContentType, fc.oneof(validBody(item, progress), fc.constant('result=1')))
              .map(([type, body]) => ({ body, type })),
          },
        )
        .map(({ body, type }): FuzzRequest & { item: Item } => ({
          item,
          path: pathOf(item.work_item_id, progress),
          body,
          headers: {
            'x-callback-token': item.token,
            'content-type': type === 'json' ? 'application/json' : type,
          },
        })),
    );
    await fuzz(
      'bodies',
      request,
      async (input) => {
        const code = expectRefusal(await send(input), [400, 413, 415]);
        expect(['invalid_request', 'payload_too_large', 'unsupported_media_type']).toContain(code);
      },
      1_500,
    );
  });

  // ---- tokens ---------------------------------------------------------------------------

  const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

  /** `original` changed in exactly one place: a character replaced, removed, added, or its case flipped. */
  function oneOff(original: string, alphabet: string): fc.Arbitrary<string> {
    const at = fc.nat({ max: original.length - 1 });
    const char = fc.constantFrom(...alphabet.split(''), '=', '+', '/', '.', '~', ' ', '%');
    return fc
      .oneof(
        fc.tuple(at, char).map(([i, c]) => original.slice(0, i) + c + original.slice(i + 1)),
        at.map((i) => original.slice(0, i) + original.slice(i + 1)),
        fc.tuple(fc.nat({ max: original.length }), char).map(([i, c]) => original.slice(0, i) + c + original.slice(i)),
        at.map((i) => {
          const c = original[i];
          const flipped = c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase();
          return original.slice(0, i) + flipped + original.slice(i + 1);
        }),
      )
      .filter((mutated) => mutated.trim() !== original);
  }

  const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) });
  const ofAlphabet = (alphabet: string, length: number) =>
    fc.string({ unit: fc.constantFrom(...alphabet.split('')), minLength: length, maxLength: length });

  it('random, near-valid, foreign and one-character-off tokens: 401 invalid_token, never accepted', async () => {
    const request = fc
      .tuple(fc.constantFrom(...items), fc.boolean())
      .chain(([item, progress]) =>
        fc.record({
          item: fc.constant(item),
          progress: fc.constant(progress),
          body: validBody(item, progress),
          type: jsonContentType,
          token: fc.oneof(
            fc.constant(undefined),
            printable.filter((token) => token.length <= 2_000),
            ofAlphabet(BASE64URL, 43).map((rest) => `cbt_${rest}`),
            fc
              .tuple(fc.constantFrom('cbt', 'CBT', 'cbt-', 'bck_', 'cb_', 'whsec_'), ofAlphabet(BASE64URL, 43))
              .map(([prefix, rest]) => `${prefix}${rest}`),
            fc.integer({ min: 0, max: 120 }).chain((n) => ofAlphabet(BASE64URL, n).map((rest) => `cbt_${rest}`)),
            fc.constantFrom(...items.filter((other) => other !== item).map((other) => other.token)),
            { weight: 4, arbitrary: oneOff(item.token, BASE64URL) },
          ),
        }),
      )
      .filter(({ item, token }) => token === undefined || token.trim() !== item.token);
    await fuzz(
      'tokens',
      request,
      async ({ item, progress, body, type, token }) => {
        const answer = await send({
          path: pathOf(item.work_item_id, progress),
          headers: { 'content-type': type, ...(token !== undefined ? { 'x-callback-token': token } : {}) },
          body,
        });
        expect(expectRefusal(answer, [401])).toBe('invalid_token');
      },
      1_000,
    );
  });

  // ---- work item ids --------------------------------------------------------------------

  it('random, near-valid, foreign and one-character-off work item ids: 401 invalid_token, never accepted', async () => {
    const request = fc
      .tuple(fc.constantFrom(...items), fc.boolean())
      .chain(([item, progress]) =>
        fc.record({
          item: fc.constant(item),
          progress: fc.constant(progress),
          body: validBody(item, progress),
          id: fc.oneof(
            text(0, 60),
            fc.string({ unit: 'binary-ascii', maxLength: 60 }),
            ofAlphabet(CROCKFORD, 26).map((ulid) => `wi_${ulid}`),
            ofAlphabet(CROCKFORD, 26).map((ulid) => `wi_${ulid.toLowerCase()}`),
            fc.integer({ min: 90, max: 3_000 }).map((n) => `wi_${'A'.repeat(n)}`),
            fc.constantFrom(...items.filter((other) => other !== item).map((other) => other.work_item_id)),
            fc.constant(`${item.work_item_id}/extra`),
            { weight: 4, arbitrary: oneOff(item.work_item_id, CROCKFORD) },
          ),
        }),
      )
      // "." and ".." are path segments a URL resolves away, not ids.
      .filter(({ item, id }) => id !== item.work_item_id && !/^\.{1,2}$/.test(id));
    await fuzz(
      'ids',
      request,
      async ({ item, progress, body, id }) => {
        const answer = await send({
          path: pathOf(id, progress),
          headers: { 'content-type': 'application/json', 'x-callback-token': item.token },
          body,
        });
        // `/api/v1/webhooks//progress` names no route at all: 404 there is fine.
        const empty = id === '' && progress;
        expect(expectRefusal(answer, empty ? [401, 404] : [401])).toBe(empty ? answerCode(answer) : 'invalid_token');
      },
      800,
    );
  });

  // ---- raw HTTP -------------------------------------------------------------------------

  /** Writes `request` as raw bytes (then half-closes), returns the status line's code and the body. */
  function rawRequest(request: string): Promise<{ status: number; body: string }> {
    const url = new URL(ingressUrl);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(url.port), url.hostname);
      const chunks: Buffer[] = [];
      socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', reject);
      socket.on('close', () => {
        const answer = Buffer.concat(chunks).toString('utf8');
        const status = /^HTTP\/1\.1 (\d{3})/.exec(answer);
        if (!status) return reject(new Error(`no HTTP answer: ${JSON.stringify(answer.slice(0, 200))}`));
        resolve({ status: Number(status[1]), body: answer.slice(answer.indexOf('\r\n\r\n') + 4) });
      });
      socket.end(request);
    });
  }

  it('malformed HTTP over a raw socket: bad lengths, truncated bodies, broken framing and escapes are 4xx', async () => {
    const item = tool[0];
    const head = (extra: string, path = `/api/v1/webhooks/${item.work_item_id}`) =>
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-callback-token: ${item.token}\r\n` +
      `Content-Type: application/json\r\nConnection: close\r\n${extra}\r\n`;
    const body = '{"result":1}';
    const framing = [
      head('Content-Length: abc\r\n') + body,
      head('Content-Length: -12\r\n') + body,
      head('Content-Length: 12\r\nContent-Length: 13\r\n') + body,
      head(`Content-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n`) + body,
      head('Transfer-Encoding: chunked\r\n') + `zz\r\n${body}\r\n0\r\n\r\n`,
      head('Content-Length: 100\r\n') + body, // truncated: the client stops after 12 of 100 bytes
      head(`Content-Length: ${body.length}\r\n`, `/api/v1/webhooks/%zz`) + body,
      'POST /api/v1/webhooks HTTP/1.1 extra\r\n\r\n',
      'GARBAGE\r\n\r\n',
    ];
    for (const request of framing) {
      const answer = await rawRequest(request);
      expect(answer.status).toBeGreaterThanOrEqual(400);
      expect(answer.status).toBeLessThan(500);
      // Even a request the HTTP parser refuses gets the envelope (CONTRACT.md §5).
      expect(JSON.parse(answer.body).errors[0].code).toMatch(/^(invalid_request|payload_too_large|invalid_token)$/);
    }
    const escapes = [
      '{"result":"\\q"}',
      '{"result":"\\u12"}',
      '{"result":"\\uZZZZ"}',
      '{"result":"line\nbreak"}',
      '{"result":"\u0000"}',
      '{"result":1,}',
      "{'result':1}",
      '{"result":1}}',
    ];
    for (const json of escapes) {
      const answer = await rawRequest(head(`Content-Length: ${Buffer.byteLength(json)}\r\n`) + json);
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.body).errors[0].code).toBe('invalid_request');
    }
  });

  // ---- what the fuzzing found, pinned -----------------------------------------------------

  it('inputs that once got through are refused exactly, and do not use up the token', async () => {
    await platform.openConversation('fuzz-found');
    const item = { ...(await platform.register('fuzz-found', { ordered: false })), kind: 'tool' as const };
    const post = (body: string, type = 'application/json', path = pathOf(item.work_item_id, false)) =>
      send({ path, headers: { 'content-type': type, 'x-callback-token': item.token }, body });
    const refused = async (answer: Promise<Answer>, status: number, pointer?: string) => {
      const { status: got, text } = await answer;
      expect(`${got} ${text}`).toMatch(new RegExp(`^${status} `));
      if (pointer !== undefined) expect(JSON.parse(text).errors[0].source.pointer).toBe(pointer);
    };
    // Were 500: canonical hashing throws on Infinity and overflows the stack on deep nesting.
    await refused(post('{"result":1e400}'), 400, '/result');
    await refused(post('{"result":{"a":[1,-1e400]}}'), 400, '/result/a/1');
    await refused(post(`{"result":${nested(128)}}`), 400);
    await refused(post(`{"progress":${nested(5_000)}}`, 'application/json', pathOf(item.work_item_id, true)), 400);
    await refused(
      post('{"progress":{"message":"m","percent":1e999}}', 'application/json', pathOf(item.work_item_id, true)),
      400,
      '/progress/percent',
    );
    // Was 202, an error list of lists injected with no code or title.
    await refused(post('{"errors":[[{"code":"c","title":"t"}]]}'), 400, '/errors');
    // Was 202: Nest's form parser made `result=1` a result.
    await refused(post('result=1', 'application/x-www-form-urlencoded'), 415);
    // Were 414 and 404 outside the envelope: malformed ids are 401.
    await refused(post('{"result":1}', 'application/json', pathOf(`wi_${'A'.repeat(200)}`, false)), 401);
    await refused(post('{"result":1}', 'application/json', '/api/v1/webhooks/'), 401);
    expect((await platform.workItem(item.work_item_id)).state).toBe('pending');
    // 128 levels is the limit, not beyond it: the body itself is the first.
    expect((await post(`{"result":${nested(127)}}`)).status).toBe(202);
  });

  // ---- afterwards -----------------------------------------------------------------------

  it('afterwards: the process is up, every item is still pending, nothing was released', async () => {
    expect(runs.bodies).toBeGreaterThan(300);
    expect(runs.tokens).toBeGreaterThan(300);
    expect(runs.ids).toBeGreaterThan(300);
    expect((await fetch(`${ingressUrl}/healthz`)).status).toBe(200);
    for (const item of items) expect((await platform.workItem(item.work_item_id)).state).toBe('pending');
    // A fence: the sequencer applies the conversation's work log in order, so once a
    // callback posted now is released, anything wrongly recorded before it was too.
    const fence = await platform.register(CONVERSATION, { ordered: false });
    expect((await postCallback(ingressUrl, fence.work_item_id, fence.token, { result: 'fence' })).status).toBe(202);
    await eventually(() => expect(watcher.of(CONVERSATION)).toHaveLength(1), { timeoutMs: 15_000 });
    expect(watcher.of(CONVERSATION)[0].source.work_item_id).toBe(fence.work_item_id);
  });

  function answerCode(answer: Answer): string {
    return (JSON.parse(answer.text) as { errors: { code: string }[] }).errors[0].code;
  }

  /** Random bytes that happen to be JSON of a shape that might pass are not junk. */
  function parsesAsPossiblyValid(bytes: Uint8Array, progress: boolean): boolean {
    try {
      return couldBeValid(JSON.parse(Buffer.from(bytes).toString('utf8')), progress);
    } catch {
      return false;
    }
  }
});
