import fc from 'fast-check';
import { INTERNAL_TOKEN } from '../support/mesh.js';
import type { Fixtures, FuzzService } from './fuzz-mesh.js';
import type { RawCase } from './fuzz-values.js';

/**
 * Raw HTTP over node:net (issue 10): what an HTTP client library would refuse to send, to
 * every service's port. A request the HTTP parser refuses gets the 400 envelope or a closed
 * connection; one it parses gets its 4xx in the envelope like any other.
 */

interface RawTarget {
  service: FuzzService;
  method: string;
  path: string;
  /** The headers the route wants, valid (the framing is what breaks). */
  headers: string[];
  body: string;
}

function rawTargets(f: Fixtures): RawTarget[] {
  const json = 'Content-Type: application/json';
  return [
    {
      service: 'token-authority',
      method: 'POST',
      path: '/internal/v1/conversations',
      headers: [`Authorization: Bearer ${INTERNAL_TOKEN}`, json],
      body: JSON.stringify({ conversation_id: 'fz-raw-new', tenant_id: f.tenantA }),
    },
    {
      service: 'token-authority',
      method: 'POST',
      path: '/internal/v1/work-items',
      headers: [`Authorization: Bearer ${INTERNAL_TOKEN}`, json],
      body: JSON.stringify({ conversation_id: f.conversations.active, kind: 'tool', timeout_ms: 3_600_000 }),
    },
    {
      service: 'callback-ingress',
      method: 'POST',
      path: `/api/v1/webhooks/${f.items.pendingTool.work_item_id}`,
      headers: [`x-callback-token: ${f.items.pendingTool.token}`, json],
      body: JSON.stringify({ result: { raw: true } }),
    },
    {
      service: 'conversation-injector',
      method: 'POST',
      path: `/api/v1/conversations/${encodeURIComponent(f.conversations.active)}/messages`,
      headers: [`Authorization: Bearer ${f.keys.a.api_key}`, json],
      body: JSON.stringify({ messages: [{ role: 'user', content: 'raw' }] }),
    },
    {
      service: 'tool-dispatcher',
      method: 'POST',
      path: '/internal/v1/tool-invocations',
      headers: [`Authorization: Bearer ${INTERNAL_TOKEN}`, json],
      body: JSON.stringify({
        conversation_id: f.conversations.active,
        call_control_id: 'v3:raw',
        tool: { url: 'http://10.0.0.1/tool', mode: 'sync' },
        arguments: {},
      }),
    },
  ];
}

type Framing = (target: RawTarget) => { head: string; body: string | Buffer; axis: string; keepsAuth: boolean };

const CRLF = '\r\n';
const line = (target: RawTarget, version = 'HTTP/1.1', method = target.method, path = target.path) =>
  `${method} ${path} ${version}`;
const headersOf = (target: RawTarget, extra: string[], contentLength: string | null = null, body = target.body) => [
  'Host: 127.0.0.1',
  'Connection: close',
  ...target.headers,
  ...(contentLength === null
    ? [`Content-Length: ${Buffer.byteLength(body)}`]
    : contentLength === ''
      ? []
      : [`Content-Length: ${contentLength}`]),
  ...extra,
];
const assemble = (first: string, headers: string[]) => `${first}${CRLF}${headers.join(CRLF)}${CRLF}${CRLF}`;

/**
 * Framings that RFC 9112 obliges a server to refuse (invalid Content-Length, unparsable
 * chunks, a request Transfer-Encoding not ending in chunked, a malformed request line,
 * whitespace before a header's colon): these keep the route's valid credentials, so a
 * parser that let one through to the handler would show as a write.
 */
const strictFramings: fc.Arbitrary<Framing> = fc.oneof(
  fc.constantFrom('abc', '-12', '12abc', '0x10', '1 2', '+5', '1e2', '').map((value): Framing => (t) => ({
    head: assemble(line(t), headersOf(t, value === '' ? ['Content-Length: '] : [], value)),
    body: t.body,
    axis: `content-length ${JSON.stringify(value)}`,
    keepsAuth: true,
  })),
  fc.constant<Framing>((t) => ({
    head: assemble(line(t), headersOf(t, [`Content-Length: ${Buffer.byteLength(t.body) + 1}`])),
    body: t.body,
    axis: 'two different content-lengths',
    keepsAuth: true,
  })),
  fc.constantFrom('zz', '-1', 'fffffffffffffffff', ' ', 'g1').map((size): Framing => (t) => ({
    head: assemble(line(t), headersOf(t, ['Transfer-Encoding: chunked'], '')),
    body: `${size}\r\n${t.body}\r\n0\r\n\r\n`,
    axis: `chunk size ${JSON.stringify(size)}`,
    keepsAuth: true,
  })),
  fc.constantFrom('gzip', 'chunked, gzip', 'identity', 'deflate').map((te): Framing => (t) => ({
    head: assemble(line(t), headersOf(t, [`Transfer-Encoding: ${te}`], '')),
    body: t.body,
    axis: `transfer-encoding ${JSON.stringify(te)}`,
    keepsAuth: true,
  })),
  fc
    .constantFrom('http/1.1', 'HTTP/1.1x', 'HTTP/1', 'HTTP/', 'HTTP/1.1 extra', 'HTTP/11', 'HTTP/a.b')
    .map((version): Framing => (t) => ({
      head: assemble(line(t, version), headersOf(t, [])),
      body: t.body,
      axis: `version ${JSON.stringify(version)}`,
      keepsAuth: true,
    })),
  fc.constantFrom('X-Bad : 1', 'Content-Type : application/json').map((header): Framing => (t) => ({
    head: assemble(line(t), headersOf(t, [header])),
    body: t.body,
    axis: `header ${JSON.stringify(header)}`,
    keepsAuth: true,
  })),
  fc.constantFrom('/api/v1 /x', '/a\u0000b', '/a\u007fb', 'api/v1/x', '/a\rb').map((path): Framing => (t) => ({
    head: assemble(line(t, 'HTTP/1.1', t.method, path), headersOf(t, [])),
    body: t.body,
    axis: `target ${JSON.stringify(path)}`,
    keepsAuth: true,
  })),
);

/**
 * Framings a server may refuse or tolerate (limits, obs-fold, control bytes it may replace,
 * Content-Length beside chunked, newer minor versions): sent without the route's
 * credentials, so that even one tolerated stays an invalid request.
 */
const looseFramings: fc.Arbitrary<Framing> = fc.oneof(
  fc.integer({ min: 17_000, max: 120_000 }).map((size): Framing => (t) => ({
    head: assemble(line(t), headersOf(t, [`X-Huge: ${'h'.repeat(size)}`])),
    body: t.body,
    axis: `huge header ${size}`,
    keepsAuth: false,
  })),
  fc.integer({ min: 200, max: 3_000 }).map((count): Framing => (t) => ({
    head: assemble(
      line(t),
      headersOf(
        t,
        Array.from({ length: count }, (_, n) => `X-Many-${n}: ${n}`),
      ),
    ),
    body: t.body,
    axis: `${count} headers`,
    keepsAuth: false,
  })),
  fc.integer({ min: 9_000, max: 70_000 }).map((size): Framing => (t) => ({
    head: assemble(line(t, 'HTTP/1.1', t.method, `${t.path}?q=${'q'.repeat(size)}`), headersOf(t, [])),
    body: t.body,
    axis: `long target ${size}`,
    keepsAuth: false,
  })),
  fc.integer({ min: 1, max: 200 }).map((extra): Framing => (t) => ({
    head: assemble(line(t), headersOf(t, [], String(Buffer.byteLength(t.body) + extra))),
    body: t.body,
    axis: `content-length ${extra} past the body, then EOF`,
    keepsAuth: false,
  })),
  fc.integer({ min: 1, max: 8 }).map((cut): Framing => (t) => ({
    head: assemble(line(t), headersOf(t, [], String(Math.max(1, Buffer.byteLength(t.body) - cut)))),
    body: t.body,
    axis: `content-length ${cut} short of the body`,
    keepsAuth: false,
  })),
  fc.constant<Framing>((t) => ({
    head: assemble(line(t), headersOf(t, ['Transfer-Encoding: chunked'])),
    body: `${Buffer.byteLength(t.body).toString(16)}\r\n${t.body}\r\n0\r\n\r\n`,
    axis: 'content-length beside transfer-encoding chunked',
    keepsAuth: false,
  })),
  fc.constantFrom('HTTP/1.2', 'HTTP/2.0', 'HTTP/9.9', 'HTTP/1.0', '').map((version): Framing => (t) => ({
    head: assemble(line(t, version).trimEnd(), headersOf(t, [])),
    body: t.body,
    axis: `version ${JSON.stringify(version)}`,
    keepsAuth: false,
  })),
  fc
    .constantFrom(
      'X Bad: 1',
      'X-Bad',
      ': x',
      'X(Bad): 1',
      'X-Bad: a\u0000b',
      'X-Bad: a\rb',
      ' X-Folded: 1',
      'X-Bad: \u007f',
      'X-Bad: \u00ff\u00fe',
    )
    .map((header): Framing => (t) => ({
      head: assemble(line(t), headersOf(t, [header])),
      body: t.body,
      axis: `header ${JSON.stringify(header)}`,
      keepsAuth: false,
    })),
  fc
    .constantFrom('TRACE', 'CONNECT', 'PROPFIND', 'FOO', 'post', 'PO ST', 'GET\u0000', 'M-SEARCH', 'OPTIONS')
    .map((method): Framing => (t) => ({
      head: assemble(line(t, 'HTTP/1.1', method), headersOf(t, [])),
      body: t.body,
      axis: `method ${JSON.stringify(method)}`,
      keepsAuth: false,
    })),
  fc.constantFrom('/a\tb', '/é', `http://evil.example/api/v1/x`, '*').map((path): Framing => (t) => ({
    head: assemble(line(t, 'HTTP/1.1', t.method, path), headersOf(t, [])),
    body: t.body,
    axis: `target ${JSON.stringify(path)}`,
    keepsAuth: false,
  })),
  fc.uint8Array({ minLength: 1, maxLength: 300 }).map((bytes): Framing => () => ({
    head: '',
    body: Buffer.from(bytes),
    axis: 'random bytes',
    keepsAuth: false,
  })),
  fc
    .constantFrom('\xff\xfe\xfd', '{"result":"\xc3\x28"}', '{"messages":"\xed\xa0\x80"}')
    .map((junk): Framing => (t) => ({
      head: assemble(line(t), headersOf(t, [], String(Buffer.from(junk, 'latin1').length), junk)),
      body: Buffer.from(junk, 'latin1'),
      axis: 'body not UTF-8',
      keepsAuth: false,
    })),
);

/** Raw requests, to the five ports: broken request lines, header bytes, sizes, framing. */
export function rawFamily(f: Fixtures): fc.Arbitrary<RawCase> {
  return fc
    .tuple(fc.constantFrom(...rawTargets(f)), fc.oneof(strictFramings, looseFramings))
    .map(([target, framing]) => {
      const probe = framing(target);
      const bytes = Buffer.concat([
        Buffer.from(probe.head, 'latin1'),
        typeof probe.body === 'string' ? Buffer.from(probe.body, 'latin1') : probe.body,
      ]);
      // Without the route's credentials, the framing is not the only thing wrong.
      const stripped = probe.keepsAuth ? bytes : Buffer.from(stripCredentials(bytes.toString('latin1')), 'latin1');
      return {
        kind: 'raw' as const,
        family: 'raw',
        service: target.service,
        bytes: stripped,
        broken: [probe.axis, ...(probe.keepsAuth ? [] : ['no credentials'])],
      };
    });
}

function stripCredentials(text: string): string {
  return text.replace(/\r\n(?:Authorization|x-callback-token): [^\r\n]*/gi, '');
}
