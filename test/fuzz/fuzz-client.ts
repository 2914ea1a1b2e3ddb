import { connect as tcpConnect } from 'node:net';
import { Pool } from 'undici';
import type { NatsConnection } from '@nats-io/nats-core';
import { API_SUBJECTS, ERROR_CODES, isErrorCode } from '@backchannel/contracts';
import type { FuzzCase, HttpCase, NatsCase } from './fuzz-values.js';

/** What came back: an HTTP status and body, a NATS reply, or nothing (the connection closed). */
export interface Answer {
  status?: number;
  contentType?: string;
  text: string;
  /** Why there is no answer: the connection closed (allowed for raw garbage) or nothing came in time. */
  missing?: 'closed' | 'timeout' | 'client';
  error?: string;
}

/** The request timeout on every transport; `bc.v1.tools.invoke` gets the contract's 15 s. */
const TIMEOUT_MS = 10_000;
const INVOKE_TIMEOUT_MS = 15_000;

/** Sends fuzz cases over HTTP (undici, keep-alive pools per service), raw TCP, or NATS. */
export class FuzzClient {
  private readonly pools = new Map<string, Pool>();

  constructor(
    private readonly origins: Record<string, string>,
    private readonly ports: Record<string, number>,
    private readonly nc: NatsConnection,
  ) {}

  send(fuzzCase: FuzzCase): Promise<Answer> {
    if (fuzzCase.kind === 'http') return this.http(fuzzCase);
    if (fuzzCase.kind === 'raw') return raw(this.ports[fuzzCase.service], fuzzCase.bytes);
    return this.nats(fuzzCase);
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((pool) => pool.destroy()));
  }

  private pool(service: string): Pool {
    let pool = this.pools.get(service);
    if (!pool) {
      pool = new Pool(this.origins[service], { connections: 16, pipelining: 1 });
      this.pools.set(service, pool);
    }
    return pool;
  }

  async http(request: Pick<HttpCase, 'service' | 'method' | 'path' | 'headers' | 'body'>): Promise<Answer> {
    let response;
    try {
      response = await this.pool(request.service).request({
        method: request.method,
        path: request.path,
        headers: request.headers,
        body: request.body,
        headersTimeout: TIMEOUT_MS,
        bodyTimeout: TIMEOUT_MS,
      });
    } catch (error) {
      const code = (error as { code?: string }).code ?? '';
      // Undici refuses to send some requests at all (invalid header characters, a body on a
      // bodiless method): nothing reached the server, so it is not the server's answer.
      const client = code === 'UND_ERR_INVALID_ARG' || code === 'ERR_INVALID_CHAR';
      return { text: '', missing: client ? 'client' : 'closed', error: `${code} ${(error as Error).message}` };
    }
    const contentType = String(response.headers['content-type'] ?? '');
    if (contentType.startsWith('text/event-stream')) {
      // A stream was opened: read what it has sent so far, then hang up.
      const first = await firstChunk(response.body);
      response.body.destroy();
      return { status: response.statusCode, contentType, text: first };
    }
    return { status: response.statusCode, contentType, text: await response.body.text() };
  }

  private async nats(request: NatsCase): Promise<Answer> {
    const timeout = request.subject === API_SUBJECTS.toolsInvoke ? INVOKE_TIMEOUT_MS : TIMEOUT_MS;
    try {
      const reply = await this.nc.request(request.subject, request.data, { timeout });
      return { text: reply.string() };
    } catch (error) {
      return { text: '', missing: 'timeout', error: (error as Error).message };
    }
  }
}

async function firstChunk(body: AsyncIterable<Buffer>): Promise<string> {
  for await (const chunk of body) return chunk.toString('utf8');
  return '';
}

/** Writes `bytes` on a fresh connection, half-closes, and reads the first answer (if any). */
export function raw(port: number, bytes: Buffer, timeoutMs = TIMEOUT_MS): Promise<Answer> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (missing?: Answer['missing'], error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const parsed = parseHttpAnswer(Buffer.concat(chunks));
      resolve(parsed ?? { text: '', missing: missing ?? 'closed', ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      // Connection: close is asked for, but an answer complete on its own is enough.
      if (parseHttpAnswer(Buffer.concat(chunks), true)) finish();
    });
    // A reset while the server refuses a huge request is a closed connection, answered or not.
    socket.on('error', (error) => finish('closed', error.message));
    socket.on('close', () => finish('closed'));
    socket.write(bytes, () => socket.end());
  });
}

/** The first HTTP answer in `data`: status, content type, body (by Content-Length or chunked). */
export function parseHttpAnswer(data: Buffer, requireComplete = false): Answer | undefined {
  const text = data.toString('latin1');
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const [statusLine, ...headerLines] = text.slice(0, headEnd).split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!status) return undefined;
  const headers = new Map(
    headerLines.map((header) => {
      const colon = header.indexOf(':');
      return [header.slice(0, colon).trim().toLowerCase(), header.slice(colon + 1).trim()] as const;
    }),
  );
  const rest = data.subarray(Buffer.byteLength(text.slice(0, headEnd + 4), 'latin1'));
  let body: Buffer | undefined;
  const length = headers.get('content-length');
  if (length !== undefined) {
    body = rest.length >= Number(length) ? rest.subarray(0, Number(length)) : undefined;
  } else if (headers.get('transfer-encoding')?.includes('chunked')) {
    body = dechunk(rest);
  } else {
    body = requireComplete ? undefined : rest;
  }
  if (body === undefined)
    return requireComplete ? undefined : { status: Number(status[1]), text: rest.toString('utf8') };
  return { status: Number(status[1]), contentType: headers.get('content-type'), text: body.toString('utf8') };
}

function dechunk(data: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at);
    if (lineEnd < 0) return undefined;
    const size = parseInt(data.subarray(at, lineEnd).toString('latin1'), 16);
    if (Number.isNaN(size)) return undefined;
    if (size === 0) return Buffer.concat(parts);
    if (data.length < lineEnd + 2 + size) return undefined;
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

// ---- the invariants ---------------------------------------------------------------------------

export type ViolationKind =
  | 'status_5xx'
  | 'not_4xx'
  | 'unexpected_status'
  | 'not_envelope'
  | 'unknown_code'
  | 'status_mismatch'
  | 'secret_echoed'
  | 'no_answer';

export interface Verdict {
  kinds: ViolationKind[];
  /** A NATS reply's code, or the HTTP status, for the histogram. */
  outcome: string;
}

/**
 * The invariants of every answer to a malformed request (CONTRACT.md §5): a 4xx (a NATS
 * reply's code maps to one), in the envelope, every code known with its own status and
 * title, no secret in it; raw garbage may instead be answered by a closed connection.
 */
export function judge(fuzzCase: FuzzCase, answer: Answer, secrets: readonly string[]): Verdict {
  if (answer.missing) {
    const allowed = fuzzCase.kind === 'raw' && answer.missing === 'closed';
    return { kinds: allowed || answer.missing === 'client' ? [] : ['no_answer'], outcome: answer.missing };
  }
  const kinds: ViolationKind[] = [];
  const presented = fuzzCase.kind === 'raw' ? [] : fuzzCase.presented;
  if ([...secrets, ...presented].some((secret) => answer.text.includes(secret))) kinds.push('secret_echoed');
  if (fuzzCase.kind === 'nats') return natsVerdict(fuzzCase, answer, kinds);

  const status = answer.status!;
  if (status >= 500) kinds.push('status_5xx');
  else if (status < 400) kinds.push('not_4xx');
  else if (fuzzCase.kind === 'http' && fuzzCase.statuses && !fuzzCase.statuses.includes(status)) {
    kinds.push('unexpected_status');
  }
  const isHead = fuzzCase.kind === 'http' && fuzzCase.method === 'HEAD';
  if (status >= 400 && !isHead) kinds.push(...envelopeProblems(answer.text, status, answer.contentType));
  return { kinds: [...new Set(kinds)], outcome: String(status) };
}

function natsVerdict(fuzzCase: NatsCase, answer: Answer, kinds: ViolationKind[]): Verdict {
  const code = firstCode(answer.text);
  if (code === undefined) return { kinds: [...kinds, 'not_envelope'], outcome: 'result' };
  const status = isErrorCode(code) ? ERROR_CODES[code].status : 0;
  if (status >= 500) kinds.push('status_5xx');
  else if (fuzzCase.statuses && !fuzzCase.statuses.includes(status)) kinds.push('unexpected_status');
  kinds.push(...envelopeProblems(answer.text, status, 'application/json'));
  return { kinds: [...new Set(kinds)], outcome: code };
}

function firstCode(text: string): string | undefined {
  try {
    const code = (JSON.parse(text) as { errors?: { code?: unknown }[] }).errors?.[0]?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

/** What is wrong with `text` as the error envelope of an answer with `status`. */
export function envelopeProblems(text: string, status: number, contentType?: string): ViolationKind[] {
  if (!contentType?.toLowerCase().startsWith('application/json')) return ['not_envelope'];
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return ['not_envelope'];
  }
  const errors = (body as { errors?: unknown })?.errors;
  if (!Array.isArray(errors) || errors.length === 0 || Object.keys(body as object).length !== 1)
    return ['not_envelope'];
  const problems: ViolationKind[] = [];
  for (const error of errors as { code?: unknown; title?: unknown }[]) {
    if (typeof error !== 'object' || error === null || typeof error.code !== 'string') return ['not_envelope'];
    if (!isErrorCode(error.code)) problems.push('unknown_code');
    else if (ERROR_CODES[error.code].status !== status || error.title !== ERROR_CODES[error.code].title) {
      problems.push('status_mismatch');
    }
  }
  return problems;
}

// ---- the figures --------------------------------------------------------------------------------

export interface FuzzFigures {
  requests: number;
  status_5xx: number;
  crashes: number;
  changes: number;
  envelope_violations: number;
}

/** Most violating cases described in the report, and most of one kind in one family. */
const MAX_EXAMPLES = 100;
const MAX_EXAMPLES_PER_KIND_AND_FAMILY = 10;

/**
 * Counts of one run, and its violating cases for the report: every one is counted, by kind
 * and by family, and the first ones are described as a reader reproduces them (within the
 * bounds above, so that a flood of one kind cannot crowd out the rest).
 */
export class Tally {
  requests = 0;
  status5xx = 0;
  crashes = 0;
  changes = 0;
  envelopeViolations = 0;
  controls = 0;
  readonly controlFailures: string[] = [];
  readonly byKind: Partial<Record<ViolationKind, number>> = {};
  /** Violating cases by family. */
  readonly violationsByFamily: Record<string, number> = {};
  readonly byFamily: Record<string, number> = {};
  /** Answers by family and status (or NATS code). */
  readonly outcomes: Record<string, number> = {};
  /** Cases the HTTP client itself refused to send (not counted against the server). */
  readonly clientRefused: string[] = [];
  readonly examples: string[] = [];
  private readonly examplesByKindAndFamily = new Map<string, number>();
  readonly writes: string[] = [];
  readonly crashNotes: string[] = [];

  record(fuzzCase: FuzzCase, answer: Answer, verdict: Verdict): void {
    this.requests++;
    this.byFamily[fuzzCase.family] = (this.byFamily[fuzzCase.family] ?? 0) + 1;
    const outcome = `${fuzzCase.family.replace(/#\d+$/, '')} ${verdict.outcome}`;
    this.outcomes[outcome] = (this.outcomes[outcome] ?? 0) + 1;
    if (verdict.outcome === 'client' && this.clientRefused.length < 5)
      this.clientRefused.push(describeCase(fuzzCase, answer, verdict));
    if (verdict.kinds.length === 0) return;
    for (const kind of verdict.kinds) this.byKind[kind] = (this.byKind[kind] ?? 0) + 1;
    this.violationsByFamily[fuzzCase.family] = (this.violationsByFamily[fuzzCase.family] ?? 0) + 1;
    if (verdict.kinds.includes('status_5xx')) this.status5xx++;
    if (verdict.kinds.some((kind) => kind !== 'status_5xx')) this.envelopeViolations++;
    const kindAndFamily = `${verdict.kinds.join(',')} ${fuzzCase.family}`;
    const described = this.examplesByKindAndFamily.get(kindAndFamily) ?? 0;
    if (this.examples.length < MAX_EXAMPLES && described < MAX_EXAMPLES_PER_KIND_AND_FAMILY) {
      this.examplesByKindAndFamily.set(kindAndFamily, described + 1);
      this.examples.push(describeCase(fuzzCase, answer, verdict));
    }
  }

  figures(): FuzzFigures {
    return {
      requests: this.requests,
      status_5xx: this.status5xx,
      crashes: this.crashes,
      changes: this.changes,
      envelope_violations: this.envelopeViolations,
    };
  }
}

/** One case and its answer, as a reader reproduces it. */
export function describeCase(fuzzCase: FuzzCase, answer: Answer, verdict: Verdict): string {
  const head = `[${verdict.kinds.join(',')}] ${fuzzCase.family} (${fuzzCase.broken.join('; ')})`;
  const got = answer.missing
    ? `no answer (${answer.missing}${answer.error ? `: ${answer.error}` : ''})`
    : `${answer.status ?? 'reply'} ${answer.text.slice(0, 400)}`;
  if (fuzzCase.kind === 'http') {
    const body = fuzzCase.body === undefined ? '' : ` body=${JSON.stringify(fuzzCase.body.slice(0, 300))}`;
    return `${head}\n    ${fuzzCase.method} ${fuzzCase.path} headers=${JSON.stringify(fuzzCase.headers)}${body}\n    -> ${got}`;
  }
  if (fuzzCase.kind === 'raw') {
    return `${head}\n    raw to ${fuzzCase.service}: ${JSON.stringify(fuzzCase.bytes.toString('latin1').slice(0, 400))}\n    -> ${got}`;
  }
  const data = JSON.stringify(Buffer.from(fuzzCase.data).toString('utf8').slice(0, 300));
  return `${head}\n    ${fuzzCase.subject} ${data}\n    -> ${got}`;
}
