import { isExternalId, type ReleaseMessage } from '@backchannel/contracts';

const ROLES = new Set(['tool', 'assistant', 'system', 'user']);
const SOURCES = new Set(['callback', 'progress', 'timeout', 'dispatch', 'api']);

/**
 * Checks a release read off BC_RELEASES before it reaches a subject or the transcript.
 * Returns a reason when it is not one (a poison message: retrying cannot fix it).
 */
export function releaseProblem(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return 'not an object';
  const release = value as Partial<ReleaseMessage>;
  if (!isExternalId(release.conversation_id)) return 'conversation_id is not a valid id';
  if (!Number.isSafeInteger(release.release_index) || (release.release_index ?? 0) < 1)
    return 'release_index is not a positive integer';
  if (!ROLES.has(release.role as string)) return 'role is not a known role';
  if (!release.source || !SOURCES.has(release.source.type)) return 'source.type is not a known source';
  if (typeof release.delivery !== 'string') return 'delivery is missing';
  if (typeof release.trace_id !== 'string') return 'trace_id is missing';
  return undefined;
}
