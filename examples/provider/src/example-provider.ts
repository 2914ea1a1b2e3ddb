/**
 * An example Backchannel tool provider: plain node:http, no framework, one dependency
 * (`standardwebhooks`). Copy it and replace `work` with your tool.
 *
 * What it shows (docs/providers.md has the full story):
 * 1. verify the Standard Webhooks signature of every request (the library also refuses
 *    timestamps outside its 5-minute tolerance, which stops replays);
 * 2. read `x-call-control-id`;
 * 3. async invocation: answer 202 at once, do the work afterwards, then POST the result
 *    (or errors) to `callback.url` with the `x-callback-token` header, retrying on 5xx,
 *    429 and timeouts with the same token and the same body;
 * 4. sync invocation: answer 200 with `{"result": …}` or `{"errors": […]}`;
 * 5. `work_item.cancelled`: abort the work; nobody will hear its result.
 */
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

/** What the work function knows about the call it serves. */
export interface WorkContext {
  /** The work item (async mode only). */
  workItemId?: string;
  conversationId: string;
  callControlId: string;
  /** W3C trace context of the invocation: pass it on so your work joins the same trace. */
  traceparent?: string;
  /** Aborted when the platform cancels the work item, it times out, or its conversation ends. */
  signal: AbortSignal;
  /** Posts a progress update (async mode only; at most 10 per work item; best effort). */
  progress(message: string, percent?: number): Promise<void>;
}

/** Your tool: arguments in, a JSON result out. Throw a ToolError to report a failure. */
export type ToolWork = (args: Record<string, unknown>, context: WorkContext) => Promise<unknown>;

/** A failure your tool reports to the conversation (it follows its error path). */
export class ToolError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable?: boolean,
  ) {
    super(message);
    this.name = 'ToolError';
  }
}

export interface ExampleProviderOptions {
  /** 0 picks a free port. */
  port: number;
  host?: string;
  /** `whsec_…`: the secret the tool was registered with. Without it requests are not verified (development only). */
  signingSecret?: string;
  work: ToolWork;
  /** Where log lines go (JSON objects). Never given a token or a secret. */
  log?: (line: Record<string, unknown>) => void;
  /** Post-back schedule; the defaults suit production. */
  postBack?: Partial<PostBackPolicy>;
}

export interface PostBackPolicy {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  attemptTimeoutMs: number;
}

export interface ExampleProvider {
  url: string;
  port: number;
  /** Stops taking requests and aborts work in progress. */
  close(): Promise<void>;
}

interface CallbackTarget {
  url: string;
  method: string;
  headers: Record<string, string>;
}

interface Job {
  controller: AbortController;
  done: Promise<void>;
}

const MAX_BODY_BYTES = 1024 * 1024;
const SEEN_LIMIT = 10_000;
const DEFAULT_POST_BACK: PostBackPolicy = {
  attempts: 6,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  attemptTimeoutMs: 10_000,
};

export async function startExampleProvider(options: ExampleProviderOptions): Promise<ExampleProvider> {
  const provider = new Provider(options);
  const server = createServer((request, response) => {
    provider.handle(request, response).catch((error: unknown) => {
      provider.log({ msg: 'request failed', error: String(error) });
      if (!response.headersSent)
        answer(response, 500, { errors: [{ code: 'internal_error', title: 'Internal error' }] });
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port, options.host ?? '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    port,
    close: () => provider.close(server),
  };
}

class Provider {
  private readonly webhook?: Webhook;
  private readonly jobs = new Map<string, Job>();
  /** Work items already started: a repeated delivery (same work item) must not start it twice. */
  private readonly seen = new Set<string>();
  private readonly policy: PostBackPolicy;

  constructor(private readonly options: ExampleProviderOptions) {
    if (options.signingSecret) this.webhook = new Webhook(options.signingSecret);
    this.policy = { ...DEFAULT_POST_BACK, ...options.postBack };
  }

  log(line: Record<string, unknown>): void {
    (this.options.log ?? ((entry) => console.log(JSON.stringify(entry))))(line);
  }

  async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (request.method !== 'POST')
      return answer(response, 405, { errors: [{ code: 'method_not_allowed', title: 'POST only' }] });
    const raw = await readBody(request);
    if (raw === undefined)
      return answer(response, 413, { errors: [{ code: 'payload_too_large', title: 'Body too large' }] });
    if (!this.verified(raw, request.headers)) {
      return answer(response, 401, { errors: [{ code: 'invalid_signature', title: 'Invalid signature' }] });
    }
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      return answer(response, 400, { errors: [{ code: 'invalid_request', title: 'Body is not JSON' }] });
    }
    const callControlId = header(request.headers, 'x-call-control-id') ?? '';
    const traceparent = header(request.headers, 'traceparent');
    switch (message.type) {
      case 'tool.invocation':
        if (typeof message.work_item_id === 'string')
          return this.startAsync(message, callControlId, traceparent, response);
        return this.runSync(message, callControlId, traceparent, response);
      case 'work_item.cancelled':
        this.cancel(String(message.work_item_id), String(message.reason));
        return answer(response, 200, { status: 'cancelled' });
      default:
        return answer(response, 400, { errors: [{ code: 'invalid_request', title: 'Unknown message type' }] });
    }
  }

  async close(server: Server): Promise<void> {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    for (const job of this.jobs.values()) job.controller.abort();
    await Promise.allSettled([...this.jobs.values()].map((job) => job.done));
    await closed;
  }

  /** Standard Webhooks: signature over id, timestamp and the exact bytes received. */
  private verified(raw: string, headers: IncomingHttpHeaders): boolean {
    if (!this.webhook) return true;
    try {
      this.webhook.verify(raw, {
        'webhook-id': header(headers, 'webhook-id') ?? '',
        'webhook-timestamp': header(headers, 'webhook-timestamp') ?? '',
        'webhook-signature': header(headers, 'webhook-signature') ?? '',
      });
      return true;
    } catch {
      return false;
    }
  }

  /** Answer 202 at once; the work and the post-back happen afterwards. */
  private startAsync(
    message: Record<string, unknown>,
    callControlId: string,
    traceparent: string | undefined,
    response: ServerResponse,
  ): void {
    const workItemId = message.work_item_id as string;
    const callback = message.callback as CallbackTarget | undefined;
    if (!callback || typeof callback.url !== 'string') {
      return answer(response, 400, { errors: [{ code: 'invalid_request', title: 'Missing callback' }] });
    }
    answer(response, 202, { status: 'accepted' });
    if (this.seen.has(workItemId)) return;
    this.remember(workItemId);
    const controller = new AbortController();
    const context = this.contextOf(message, callControlId, traceparent, controller.signal, callback);
    const done = this.work(message, context, callback).finally(() => this.jobs.delete(workItemId));
    this.jobs.set(workItemId, { controller, done });
  }

  private async work(message: Record<string, unknown>, context: WorkContext, callback: CallbackTarget): Promise<void> {
    const outcome = await this.outcomeOf(message, context);
    if (context.signal.aborted) {
      this.log({ msg: 'work cancelled; nothing posted', work_item_id: context.workItemId });
      return;
    }
    await this.postBack(callback, outcome, context);
  }

  private async runSync(
    message: Record<string, unknown>,
    callControlId: string,
    traceparent: string | undefined,
    response: ServerResponse,
  ): Promise<void> {
    const controller = new AbortController();
    response.once('close', () => controller.abort());
    const context = this.contextOf(message, callControlId, traceparent, controller.signal);
    const outcome = await this.outcomeOf(message, context);
    if (!response.destroyed) answer(response, 200, outcome);
  }

  private async outcomeOf(message: Record<string, unknown>, context: WorkContext): Promise<Record<string, unknown>> {
    try {
      return {
        result: (await this.options.work((message.arguments ?? {}) as Record<string, unknown>, context)) ?? null,
      };
    } catch (error) {
      const toolError = error instanceof ToolError ? error : new ToolError('tool_error', 'the tool failed');
      return {
        errors: [
          {
            code: toolError.code,
            title: 'Tool error',
            detail: toolError.message,
            ...(toolError.retryable !== undefined ? { meta: { retryable: toolError.retryable } } : {}),
          },
        ],
      };
    }
  }

  private cancel(workItemId: string, reason: string): void {
    this.remember(workItemId);
    const job = this.jobs.get(workItemId);
    this.log({ msg: 'cancel notice', work_item_id: workItemId, reason, running: Boolean(job) });
    job?.controller.abort(new Error(`work item ${reason}`));
  }

  /**
   * POST the outcome to `callback.url` with its token. Retries keep the same token and the
   * very same body, so a retry after a timeout can never inject twice: the ingress answers
   * 202 the first time and 200 `duplicate` afterwards. 4xx other than 429 is final.
   */
  private async postBack(
    callback: CallbackTarget,
    outcome: Record<string, unknown>,
    context: WorkContext,
  ): Promise<void> {
    const body = JSON.stringify(outcome);
    const headers = { ...callback.headers, 'content-type': 'application/json', ...traceHeaders(context.traceparent) };
    for (let attempt = 1; attempt <= this.policy.attempts; attempt++) {
      const status = await post(callback.url, headers, body, this.policy.attemptTimeoutMs);
      if (status !== undefined && status >= 200 && status < 300) {
        this.log({ msg: 'result delivered', work_item_id: context.workItemId, status });
        return;
      }
      if (status !== undefined && status < 500 && status !== 429) {
        // 410: the item was cancelled or timed out; 409: a different body was sent before; 401: wrong token.
        this.log({ msg: 'result refused; not retrying', work_item_id: context.workItemId, status });
        return;
      }
      if (context.signal.aborted) return;
      await delay(fullJitter(this.policy, attempt));
    }
    this.log({ msg: 'result not delivered; giving up', work_item_id: context.workItemId });
  }

  private contextOf(
    message: Record<string, unknown>,
    callControlId: string,
    traceparent: string | undefined,
    signal: AbortSignal,
    callback?: CallbackTarget,
  ): WorkContext {
    let progressCount = 0;
    return {
      ...(typeof message.work_item_id === 'string' ? { workItemId: message.work_item_id } : {}),
      conversationId: String(message.conversation_id),
      callControlId,
      ...(traceparent !== undefined ? { traceparent } : {}),
      signal,
      progress: async (text, percent) => {
        if (!callback) return;
        // A stable id per update: a retried update is recognised (200 duplicate), not counted twice.
        const progress = { id: `p${++progressCount}`, message: text, ...(percent !== undefined ? { percent } : {}) };
        const headers = { ...callback.headers, 'content-type': 'application/json', ...traceHeaders(traceparent) };
        const body = JSON.stringify({ progress });
        for (let attempt = 1; attempt <= 2; attempt++) {
          const status = await post(`${callback.url}/progress`, headers, body, this.policy.attemptTimeoutMs);
          if (status !== undefined && status < 500 && status !== 429) return;
        }
      },
    };
  }

  private remember(workItemId: string): void {
    this.seen.add(workItemId);
    if (this.seen.size > SEEN_LIMIT) this.seen.delete(this.seen.values().next().value as string);
  }
}

/** One POST; the status, or undefined when no answer came (network error, timeout). */
async function post(
  url: string,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
): Promise<number | undefined> {
  try {
    const response = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(timeoutMs) });
    await response.arrayBuffer().catch(() => undefined);
    return response.status;
  } catch {
    return undefined;
  }
}

function traceHeaders(traceparent: string | undefined): Record<string, string> {
  return traceparent ? { traceparent } : {};
}

/** Exponential backoff with full jitter: uniform in [0, min(cap, base · 2^(attempt-1))]. */
function fullJitter(policy: PostBackPolicy, attempt: number): number {
  return Math.random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function answer(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

/** The raw body as received (the signature covers these exact bytes), or undefined if too large. */
async function readBody(request: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
