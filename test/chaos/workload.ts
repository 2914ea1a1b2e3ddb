/**
 * The chaos workload: many conversations, many work items, results posted in random
 * order by providers that retry the way CONTRACT.md §3 lets them (same token and body
 * after a timeout, a 5xx, a 429 or a dropped connection, until 202/200 or another 4xx).
 * What it records (registered items, accepted callbacks) is what the checker compares
 * with what reached the conversations.
 */
import { INTERNAL_TOKEN } from '../support/mesh.js';
import { mapConcurrent } from '../support/pool.js';
import type { AcceptedCallback, AcceptedProgress, RegisteredItem } from './checker.js';

/** A small seeded PRNG (mulberry32): the plan (kinds, bodies, posting order) follows from the seed. */
export type Rng = () => number;

export function createRng(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function between(rng: Rng, min: number, max: number): number {
  return Math.floor(min + rng() * (max - min + 1));
}

export function shuffle<T>(items: readonly T[], rng: Rng): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy;
}

export interface WorkloadPlan {
  /** Conversation ids are `<prefix>-<n>`: unique per run. */
  prefix: string;
  conversations: number;
  itemsPerConversation: number;
  /** Share of `llm` items (posting `message.content`); the rest are `tool` items posting `result`. */
  llmShare: number;
  /** Share of items registered `ordered: false` (released as soon as they end). */
  unorderedShare: number;
  /** Share of items whose provider posts 1–2 progress updates (with ids) before the final. */
  progressShare: number;
  /** `timeout_ms` of every work item: longer than the run, so only an unaccepted item can time out. */
  timeoutMs: number;
  seed: number;
}

export interface WorkloadOptions {
  /** Where the platform API is (a function: a restarted service may move). */
  tokenAuthorityUrl: () => string;
  /** Where callbacks go; default the `callback.url` the registration handed out. */
  ingressUrl?: () => string;
  registerConcurrency: number;
  callbackConcurrency: number;
  /**
   * At most this many results start per second (unset: as fast as the concurrency allows):
   * stretches a long run so its faults land all through it, not on a run already over.
   */
  callbacksPerSecond?: number;
  /** A provider's own timeout per request. */
  requestTimeoutMs: number;
  /** A provider gives a callback up after retrying this long (it is then "abandoned"). */
  giveUpAfterMs: number;
  /** Share of first attempts the provider cuts after 0–20 ms (a dropped connection mid-request). */
  dropShare: number;
  /** Share of accepted callbacks the provider posts again (its own retry after a lost answer). */
  replayShare: number;
  /** Called after each registration and each settled callback: fault schedules follow progress. */
  onProgress?: (progress: WorkloadProgress) => void;
}

export interface WorkloadProgress {
  registered: number;
  callbacksSettled: number;
  total: number;
}

/** What the workload saw, for the checker and the report. */
export interface WorkloadResult {
  registered: RegisteredItem[];
  accepted: AcceptedCallback[];
  acceptedProgress: AcceptedProgress[];
  attempted: number;
  /** Final answers by status (`202`, `200`, `410`, …, `abandoned`). */
  finalStatuses: Record<string, number>;
  /** Retries after a timeout, 5xx, 429 or dropped connection (registrations and callbacks). */
  retries: number;
  /** Replays of accepted callbacks, and those not answered 200 duplicate (a contract breach). */
  replays: number;
  replaysNot200: number;
  registerMs: number;
  callbacksMs: number;
}

interface PlannedItem extends RegisteredItem {
  kind: 'tool' | 'llm';
  progressUpdates: number;
  token: string;
  url: string;
  body: unknown;
}

/** Runs the plan to its end: open, register (in order per conversation), post in random order. */
export async function runWorkload(plan: WorkloadPlan, options: WorkloadOptions): Promise<WorkloadResult> {
  const rng = createRng(plan.seed);
  const client = new RetryingClient(options, rng);
  const total = plan.conversations * plan.itemsPerConversation;
  const progress: WorkloadProgress = { registered: 0, callbacksSettled: 0, total };
  const conversations = Array.from({ length: plan.conversations }, (_, i) => `${plan.prefix}-${i}`);

  const registerStarted = Date.now();
  const planned = (
    await mapConcurrent(conversations, options.registerConcurrency, async (conversationId) => {
      await client.openConversation(conversationId);
      const items: PlannedItem[] = [];
      for (let n = 0; n < plan.itemsPerConversation; n++) {
        items.push(await client.register(conversationId, n, plan, rng));
        progress.registered++;
        options.onProgress?.(progress);
      }
      return items;
    })
  ).flat();
  const registerMs = Date.now() - registerStarted;

  const callbacksStarted = Date.now();
  const finalStatuses: Record<string, number> = {};
  const accepted: AcceptedCallback[] = [];
  const acceptedProgress: AcceptedProgress[] = [];
  let replays = 0;
  let replaysNot200 = 0;
  let started = 0;
  await mapConcurrent(shuffle(planned, rng), options.callbackConcurrency, async (item) => {
    if (options.callbacksPerSecond) {
      const due = callbacksStarted + (started++ * 1_000) / options.callbacksPerSecond;
      if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
    }
    for (let n = 1; n <= item.progressUpdates; n++) {
      const progressId = `p${n}`;
      const answer = await client.postProgress(item, progressId);
      if (answer === '202' || answer === '200') {
        acceptedProgress.push({ conversationId: item.conversationId, workItemId: item.workItemId, progressId });
      }
      finalStatuses[`progress ${answer}`] = (finalStatuses[`progress ${answer}`] ?? 0) + 1;
    }
    const status = await client.postCallback(item, true);
    finalStatuses[status] = (finalStatuses[status] ?? 0) + 1;
    if (status === '202' || status === '200') {
      const { conversationId, workItemId, sequence, body } = item;
      accepted.push({ conversationId, workItemId, sequence, body });
      if (rng() < options.replayShare) {
        replays++;
        if ((await client.postCallback(item, false)) !== '200') replaysNot200++;
      }
    }
    progress.callbacksSettled++;
    options.onProgress?.(progress);
  });

  return {
    registered: planned.map(({ conversationId, workItemId, sequence, ordered }) => ({
      conversationId,
      workItemId,
      sequence,
      ordered,
    })),
    accepted,
    acceptedProgress,
    attempted: planned.length,
    finalStatuses,
    retries: client.retries,
    replays,
    replaysNot200,
    registerMs,
    callbacksMs: Date.now() - callbacksStarted,
  };
}

interface Answer {
  status: number;
  retryAfterS?: number;
  body?: any;
}
type Attempt = Answer | { failure: string };

/** The platform and the providers, over HTTP, retrying what may be retried. */
class RetryingClient {
  retries = 0;

  constructor(
    private readonly options: WorkloadOptions,
    private readonly rng: Rng,
  ) {}

  async openConversation(conversationId: string): Promise<void> {
    const answer = await this.untilSettled(() =>
      this.send('POST', `${this.options.tokenAuthorityUrl()}/internal/v1/conversations`, {
        conversation_id: conversationId,
        tenant_id: 'chaos-tenant',
      }),
    );
    if (!succeeded(answer)) throw new Error(`open ${conversationId}: ${describe(answer)}`);
  }

  /** Registers item `n` with an idempotency key, so a retry after a crash never makes a second item. */
  async register(conversationId: string, n: number, plan: WorkloadPlan, rng: Rng): Promise<PlannedItem> {
    const kind = rng() < plan.llmShare ? 'llm' : 'tool';
    const ordered = rng() >= plan.unorderedShare;
    const progressUpdates = rng() < plan.progressShare ? between(rng, 1, 2) : 0;
    const answer = await this.untilSettled(() =>
      this.send('POST', `${this.options.tokenAuthorityUrl()}/internal/v1/work-items`, {
        conversation_id: conversationId,
        kind,
        ordered,
        timeout_ms: plan.timeoutMs,
        idempotency_key: `chaos-${n}`,
      }),
    );
    if (!succeeded(answer)) throw new Error(`register ${conversationId}: ${describe(answer)}`);
    const body = answer.body;
    const payload = { conversation: conversationId, n, nonce: Math.floor(rng() * 1e9) };
    return {
      conversationId,
      workItemId: body.work_item_id,
      sequence: body.sequence,
      ordered,
      kind,
      progressUpdates,
      token: body.callback.headers['x-callback-token'],
      url: body.callback.url,
      body: kind === 'tool' ? payload : JSON.stringify(payload),
    };
  }

  /** Posts the item's callback until it settles; the final status, or `abandoned`. */
  async postCallback(item: PlannedItem, mayDrop: boolean): Promise<string> {
    const url = this.options.ingressUrl ? `${this.options.ingressUrl()}/api/v1/webhooks/${item.workItemId}` : item.url;
    const body = item.kind === 'tool' ? { result: item.body } : { message: { content: item.body } };
    let first = mayDrop;
    const answer = await this.untilSettled(() => {
      const drop = first && this.rng() < this.options.dropShare;
      first = false;
      return this.send(
        'POST',
        url,
        body,
        { 'x-callback-token': item.token },
        drop ? between(this.rng, 0, 20) : undefined,
      );
    });
    return 'status' in answer ? String(answer.status) : 'abandoned';
  }

  /** Posts one progress update (same id on every retry) until it settles. */
  async postProgress(item: PlannedItem, progressId: string): Promise<string> {
    const base = this.options.ingressUrl ? `${this.options.ingressUrl()}/api/v1/webhooks/${item.workItemId}` : item.url;
    const body = { progress: { id: progressId, message: `working on ${progressId}`, percent: 50 } };
    const answer = await this.untilSettled(() =>
      this.send('POST', `${base}/progress`, body, { 'x-callback-token': item.token }),
    );
    return 'status' in answer ? String(answer.status) : 'abandoned';
  }

  /** Retries after a timeout, a dropped connection, a 5xx or a 429, with full-jitter backoff. */
  private async untilSettled(attempt: () => Promise<Attempt>): Promise<Attempt> {
    const deadline = Date.now() + this.options.giveUpAfterMs;
    for (let n = 0; ; n++) {
      const answer = await attempt();
      if ('status' in answer && answer.status < 500 && answer.status !== 429) return answer;
      if (Date.now() > deadline) return answer;
      this.retries++;
      const backoffMs = this.rng() * Math.min(2_000, 50 * 2 ** n);
      const retryAfterMs = 'status' in answer && answer.retryAfterS ? Math.min(answer.retryAfterS * 1_000, 2_000) : 0;
      await new Promise((resolve) => setTimeout(resolve, Math.max(backoffMs, retryAfterMs)));
    }
  }

  private async send(
    method: string,
    url: string,
    body: unknown,
    headers: Record<string, string> = {},
    cutAfterMs?: number,
  ): Promise<Attempt> {
    const internal: Record<string, string> = url.includes('/internal/')
      ? { authorization: `Bearer ${INTERNAL_TOKEN}` }
      : {};
    try {
      const response = await fetch(url, {
        method,
        headers: { 'content-type': 'application/json', ...internal, ...headers },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(cutAfterMs ?? this.options.requestTimeoutMs),
      });
      const text = await response.text();
      const retryAfter = Number(response.headers.get('retry-after'));
      return {
        status: response.status,
        body: parseJson(text),
        ...(retryAfter > 0 ? { retryAfterS: retryAfter } : {}),
      };
    } catch (error) {
      return { failure: (error as Error).name };
    }
  }
}

function succeeded(answer: Attempt): answer is Answer {
  return 'status' in answer && (answer.status === 201 || answer.status === 200);
}

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return text;
  }
}

function describe(answer: Attempt): string {
  return 'status' in answer ? `${answer.status} ${JSON.stringify(answer.body)}` : answer.failure;
}
