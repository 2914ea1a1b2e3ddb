/**
 * The chaos checker: pure. Given what the providers were told was accepted (202 or 200
 * duplicate) and what reached the conversations (releases or transcript entries), it
 * counts what the contract forbids (CONTRACT.md §3, §4):
 *
 * - lost: accepted, but its result (or an accepted progress update) never reached the conversation;
 * - duplicated: a work item's final, or one progress update, reached the conversation more
 *   than once (each extra copy counts);
 * - unexpected: a result or progress update reached the conversation that nobody was told
 *   was accepted (or another body than the accepted one); timeout errors are expected;
 * - out_of_order: in a conversation, a final of an ordered item that came after the final
 *   of a later ordered item, or a progress update after its item's final (first copies
 *   only, so a duplicate is not counted twice).
 */
import canonicalize from 'canonicalize';

/** A callback a provider got 202 or 200 (duplicate) for. */
export interface AcceptedCallback {
  conversationId: string;
  workItemId: string;
  sequence: number;
  /** The `result` (tool) or message content (llm) posted. */
  body: unknown;
}

/** A progress update a provider got 202 or 200 (duplicate) for; it was posted before the item's final. */
export interface AcceptedProgress {
  conversationId: string;
  workItemId: string;
  progressId: string;
}

/** A work item the workload registered (accepted or not), for ordering and attribution. */
export interface RegisteredItem {
  conversationId: string;
  workItemId: string;
  sequence: number;
  ordered: boolean;
}

/** One message that reached a conversation, as the checker sees it. */
export interface Delivered {
  conversationId: string;
  /** Its place in the conversation: `release_index` or transcript `position`. */
  place: number;
  sourceType: 'callback' | 'progress' | 'timeout' | 'dispatch' | 'api';
  workItemId?: string;
  sequence?: number;
  /** `result` of a tool item, `content` of an llm one. */
  body?: unknown;
  /** The `progress.id` of a progress update. */
  progressId?: string;
}

export interface CheckInput {
  /** Callbacks the workload tried to deliver (one per work item). */
  attempted: number;
  registered: readonly RegisteredItem[];
  accepted: readonly AcceptedCallback[];
  acceptedProgress?: readonly AcceptedProgress[];
  delivered: readonly Delivered[];
}

export interface ChaosFigures {
  attempted: number;
  accepted: number;
  /** Accepted results that reached their conversation (distinct work items; progress not counted). */
  injected: number;
  lost: number;
  duplicated: number;
  unexpected: number;
  out_of_order: number;
  /** Timeout errors injected (expected: items whose callback was never accepted). */
  timed_out: number;
}

export interface CheckReport {
  figures: ChaosFigures;
  /** A few examples of each problem, for the failure message. */
  examples: { lost: string[]; duplicated: string[]; unexpected: string[]; out_of_order: string[] };
}

const MAX_EXAMPLES = 5;

/** The figures of one run. Entries of conversations the workload did not open are ignored. */
export function checkRun(input: CheckInput): CheckReport {
  const conversations = new Set(input.registered.map((item) => item.conversationId));
  const ours = input.delivered.filter((entry) => conversations.has(entry.conversationId) && entry.sourceType !== 'api');
  const finals = ours.filter((entry) => entry.sourceType !== 'progress');
  const progress = ours.filter((entry) => entry.sourceType === 'progress');
  const examples: CheckReport['examples'] = { lost: [], duplicated: [], unexpected: [], out_of_order: [] };
  const note = (kind: keyof CheckReport['examples'], text: string): void => {
    if (examples[kind].length < MAX_EXAMPLES) examples[kind].push(text);
  };

  const finalsByItem = groupBy(finals, (entry) => entry.workItemId ?? `(none)@${entry.conversationId}`);
  const progressByKey = groupBy(progress, progressKey);
  let duplicated = 0;
  for (const [key, copies] of [...finalsByItem, ...progressByKey]) {
    if (copies.length < 2) continue;
    duplicated += copies.length - 1;
    note('duplicated', `${key} ×${copies.length} at ${copies.map((c) => c.place).join(',')}`);
  }

  const accepted = new Map(input.accepted.map((callback) => [callback.workItemId, callback]));
  let injected = 0;
  let lost = 0;
  for (const callback of accepted.values()) {
    const copies = finalsByItem.get(callback.workItemId) ?? [];
    if (copies.some((copy) => copy.sourceType === 'callback' && sameBody(copy.body, callback.body))) injected++;
    else {
      lost++;
      note('lost', `${callback.workItemId} (${callback.conversationId} #${callback.sequence})`);
    }
  }
  const acceptedProgress = new Set((input.acceptedProgress ?? []).map(progressKey));
  for (const key of acceptedProgress) {
    if (progressByKey.has(key)) continue;
    lost++;
    note('lost', `progress ${key}`);
  }

  let unexpected = 0;
  let timedOut = 0;
  for (const entry of finals) {
    if (entry.sourceType === 'timeout') {
      timedOut++;
      continue;
    }
    const callback = entry.workItemId !== undefined ? accepted.get(entry.workItemId) : undefined;
    if (callback && entry.sourceType === 'callback' && sameBody(entry.body, callback.body)) continue;
    unexpected++;
    note('unexpected', `${entry.sourceType} ${entry.workItemId ?? '?'} in ${entry.conversationId} at ${entry.place}`);
  }
  for (const entry of progress) {
    if (acceptedProgress.has(progressKey(entry))) continue;
    unexpected++;
    note('unexpected', `progress ${progressKey(entry)} at ${entry.place}`);
  }

  const orderedItems = new Set(input.registered.filter((item) => item.ordered).map((item) => item.workItemId));
  let outOfOrder = 0;
  for (const [conversationId, entries] of groupBy(ours, (entry) => entry.conversationId)) {
    const seen = new Set<string>();
    const finalled = new Set<string>();
    let highest = 0;
    for (const entry of [...entries].sort((a, b) => a.place - b.place)) {
      if (entry.workItemId === undefined) continue;
      if (entry.sourceType === 'progress') {
        if (!finalled.has(entry.workItemId)) continue;
        outOfOrder++;
        note('out_of_order', `${conversationId}: progress ${progressKey(entry)} after its final (at ${entry.place})`);
        continue;
      }
      finalled.add(entry.workItemId);
      if (!orderedItems.has(entry.workItemId) || seen.has(entry.workItemId)) continue;
      seen.add(entry.workItemId);
      const sequence = entry.sequence ?? 0;
      if (sequence < highest) {
        outOfOrder++;
        note('out_of_order', `${conversationId}: #${sequence} after #${highest} (at ${entry.place})`);
      }
      highest = Math.max(highest, sequence);
    }
  }

  return {
    figures: {
      attempted: input.attempted,
      accepted: accepted.size,
      injected,
      lost,
      duplicated,
      unexpected,
      out_of_order: outOfOrder,
      timed_out: timedOut,
    },
    examples,
  };
}

/** The one summary line `npm run chaos` ends with. */
export function chaosLine(figures: ChaosFigures): string {
  const { attempted, injected, lost, duplicated, unexpected, out_of_order } = figures;
  return `chaos: attempted=${attempted} injected=${injected} lost=${lost} duplicated=${duplicated} unexpected=${unexpected} out_of_order=${out_of_order}`;
}

/** Adds up the figures of several runs. */
export function sumFigures(all: readonly ChaosFigures[]): ChaosFigures {
  const total: ChaosFigures = {
    attempted: 0,
    accepted: 0,
    injected: 0,
    lost: 0,
    duplicated: 0,
    unexpected: 0,
    out_of_order: 0,
    timed_out: 0,
  };
  for (const figures of all) {
    for (const key of Object.keys(total) as (keyof ChaosFigures)[]) total[key] += figures[key];
  }
  return total;
}

/** Bodies compared as JSON values (RFC 8785), as the ingress compares them. */
function sameBody(a: unknown, b: unknown): boolean {
  return canonicalize(a ?? null) === canonicalize(b ?? null);
}

function progressKey(entry: { workItemId?: string; progressId?: string }): string {
  return `${entry.workItemId ?? '?'}/${entry.progressId ?? '?'}`;
}

function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}
