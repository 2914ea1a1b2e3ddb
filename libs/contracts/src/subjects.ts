/**
 * Every NATS subject of the mesh. Renaming one strands messages already in a stream:
 * it is a migration (CONTRACT.md, code and tests change together).
 */

/** The platform API (CONTRACT.md §2): request–reply, JSON in and out. */
export const API_SUBJECTS = {
  conversationsOpen: 'bc.v1.conversations.open',
  conversationsEnd: 'bc.v1.conversations.end',
  workItemsRegister: 'bc.v1.work-items.register',
  workItemsCancel: 'bc.v1.work-items.cancel',
  workItemsGet: 'bc.v1.work-items.get',
  toolsInvoke: 'bc.v1.tools.invoke',
  apiKeysCreate: 'bc.v1.api-keys.create',
  apiKeysRevoke: 'bc.v1.api-keys.revoke',
  messagesList: 'bc.v1.conversations.messages.list',
} as const;

export type ApiSubject = (typeof API_SUBJECTS)[keyof typeof API_SUBJECTS];

/** Live delivery to the platform (CONTRACT.md §4): one core NATS message per injected message. */
export function liveMessagesSubject(conversationId: string): string {
  return `bc.v1.conversations.${conversationId}.messages`;
}

/** Wildcard over every conversation's live subject. */
export const LIVE_MESSAGES_WILDCARD = 'bc.v1.conversations.*.messages';

/**
 * The work log (stream BC_WORK): everything the sequencer orders, under one
 * per-partition prefix so one consumer with one filter subject sees one order
 * (nats-server 2.9 gives a consumer a single filter subject).
 *
 * - `bc.work.{p}.{conversation}.conv`            conversation opened, work items registered, conversation ended
 * - `bc.work.{p}.{conversation}.end.{workItem}`  the single end of a work item (first write wins)
 * - `bc.work.{p}.{conversation}.progress.{workItem}`  progress updates
 */
export const WORK_SUBJECT_PREFIX = 'bc.work';

export function conversationLogSubject(partition: number, conversationId: string): string {
  return `${WORK_SUBJECT_PREFIX}.${partition}.${conversationId}.conv`;
}

export function workItemEndSubject(partition: number, conversationId: string, workItemId: string): string {
  return `${WORK_SUBJECT_PREFIX}.${partition}.${conversationId}.end.${workItemId}`;
}

export function workItemProgressSubject(partition: number, conversationId: string, workItemId: string): string {
  return `${WORK_SUBJECT_PREFIX}.${partition}.${conversationId}.progress.${workItemId}`;
}

export function workPartitionFilter(partition: number): string {
  return `${WORK_SUBJECT_PREFIX}.${partition}.>`;
}

/** Everything of one conversation in the work log (its log, its items' ends and progress). */
export function conversationWorkFilter(partition: number, conversationId: string): string {
  return `${WORK_SUBJECT_PREFIX}.${partition}.${conversationId}.>`;
}

/** The conversation a work log or release subject belongs to: `bc.work.{p}.{conv}.…`, `bc.release.{p}.{conv}`. */
export function conversationOfPartitionedSubject(subject: string): string | undefined {
  const token = subject.split('.', 4)[3];
  return token === undefined || token === '' ? undefined : token;
}

/** Every work item end of every partition: the dispatcher follows these for cancel notices. */
export const WORK_ITEM_END_WILDCARD = `${WORK_SUBJECT_PREFIX}.*.*.end.*`;

/** Releases in conversation order (stream BC_RELEASES), consumed by the injector per partition. */
export const RELEASE_SUBJECT_PREFIX = 'bc.release';

export function releaseSubject(partition: number, conversationId: string): string {
  return `${RELEASE_SUBJECT_PREFIX}.${partition}.${conversationId}`;
}

export function releasePartitionFilter(partition: number): string {
  return `${RELEASE_SUBJECT_PREFIX}.${partition}.>`;
}

/** The transcript (stream BC_TRANSCRIPT): one subject per conversation; position = count of appends. */
export const TRANSCRIPT_SUBJECT_PREFIX = 'bc.transcript';

export function transcriptSubject(conversationId: string): string {
  return `${TRANSCRIPT_SUBJECT_PREFIX}.${conversationId}`;
}

/**
 * The partition of a conversation: FNV-1a (32 bit) of its id, modulo the partition count.
 * Stable for the life of a deployment, so `SEQUENCER_PARTITIONS` must never change.
 */
export function partitionOf(conversationId: string, partitions: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < conversationId.length; i++) {
    hash ^= conversationId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % partitions;
}

/** The queue group every replica of a service joins on the `bc.v1.*` API, so each request is served once. */
export const API_QUEUE_GROUP = 'bc-api';
