import type { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { ConcurrencyLimit } from './concurrency-limit.js';
import { guardedConnector, isBlockedAddressError, type GuardOptions } from './guarded-connector.js';

/** The largest provider answer the dispatcher reads (sync results, error bodies). */
export const MAX_RESPONSE_BYTES = 1024 * 1024;
/** What is drained of an acknowledgement's body before the connection is given back. */
const MAX_DRAINED_ACK_BYTES = 64 * 1024;
const DRAIN_TIMEOUT_MS = 5_000;

export interface ToolPost {
  url: string;
  headers: Record<string, string>;
  body: string;
  /** The whole exchange (connect, headers and, when read, body) must fit in this. */
  timeoutMs: number;
  /** Read the answer's body (sync mode); otherwise only the status counts (acks, notices). */
  readBody: boolean;
}

export interface ToolAnswer {
  status: number;
  body?: string;
}

export type ToolPostFailureKind = 'timeout' | 'blocked' | 'too_large' | 'network';

/** Why a POST to a tool got no answer. The message never carries the URL (it may hold secrets). */
export class ToolPostFailure extends Error {
  constructor(
    readonly kind: ToolPostFailureKind,
    message: string,
  ) {
    super(message);
    this.name = 'ToolPostFailure';
  }
}

/** The outbound HTTP port: tests of the logic swap in a fake. */
export abstract class ToolHttpClient {
  abstract post(request: ToolPost): Promise<ToolAnswer>;
  abstract close(): Promise<void>;
}

/**
 * Outbound POSTs over undici, through the guarded connector, at most
 * `DISPATCHER_MAX_CONCURRENCY` at once. Redirects are not followed (undici's `request`
 * never follows them: a 3xx is just a status); answers are capped in size and time.
 */
export class UndiciToolHttpClient extends ToolHttpClient {
  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly limit: ConcurrencyLimit,
  ) {
    super();
  }

  static create(guard: GuardOptions, limit: ConcurrencyLimit): UndiciToolHttpClient {
    const agent = new Agent({
      connect: guardedConnector(guard),
      maxResponseSize: MAX_RESPONSE_BYTES,
      keepAliveTimeout: 4_000,
    });
    return new UndiciToolHttpClient(agent, limit);
  }

  post(toolPost: ToolPost): Promise<ToolAnswer> {
    return this.limit.run(() => this.send(toolPost));
  }

  async close(): Promise<void> {
    await this.dispatcher.destroy().catch(() => undefined);
  }

  private async send(toolPost: ToolPost): Promise<ToolAnswer> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, toolPost.timeoutMs);
    try {
      const response = await request(toolPost.url, {
        method: 'POST',
        headers: toolPost.headers,
        body: toolPost.body,
        dispatcher: this.dispatcher,
        signal: controller.signal,
        headersTimeout: toolPost.timeoutMs + 1_000,
        bodyTimeout: toolPost.timeoutMs + 1_000,
      });
      if (!toolPost.readBody) {
        drain(response.body);
        return { status: response.statusCode };
      }
      return { status: response.statusCode, body: await readCapped(response.body, MAX_RESPONSE_BYTES) };
    } catch (error) {
      throw toFailure(error, timedOut);
    } finally {
      clearTimeout(timer);
    }
  }
}

function drain(body: Dispatcher.ResponseData['body']): void {
  body.dump({ limit: MAX_DRAINED_ACK_BYTES, signal: AbortSignal.timeout(DRAIN_TIMEOUT_MS) }).catch(() => undefined);
}

async function readCapped(body: Readable, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    size += buffer.length;
    if (size > maxBytes) {
      body.destroy();
      throw new ToolPostFailure('too_large', `the tool's answer exceeds ${maxBytes} bytes`);
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

function toFailure(error: unknown, timedOut: boolean): ToolPostFailure {
  if (error instanceof ToolPostFailure) return error;
  if (timedOut) return new ToolPostFailure('timeout', 'the tool did not answer in time');
  if (isBlockedAddressError(error))
    return new ToolPostFailure('blocked', 'the tool host resolved to a refused address');
  const code = (error as { code?: string }).code ?? '';
  if (code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE')
    return new ToolPostFailure('too_large', "the tool's answer is too large");
  if (TIMEOUT_CODES.has(code)) return new ToolPostFailure('timeout', 'the tool did not answer in time');
  return new ToolPostFailure('network', `the tool could not be reached (${code || (error as Error)?.name || 'error'})`);
}
