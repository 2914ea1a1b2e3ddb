import { writeSync } from 'node:fs';

/**
 * Named places where a fault-injection test can have a service killed with SIGKILL (no
 * shutdown hook runs, nothing is flushed), to prove that a crash at exactly that point
 * loses nothing and duplicates nothing. Chosen with `BACKCHANNEL_CRASH_POINT`; see
 * docs/operations.md. Adding a point means adding its name here and one call where it is.
 */
export const CRASH_POINTS = [
  /** The callback's token and body were checked; its end is not written yet. */
  'ingress.after_token_check',
  /** The callback's end is durably written; the provider has no answer yet. */
  'ingress.after_durable_write',
  /** A registration is appended to the conversation's log; its record and reply are not written yet. */
  'token_authority.after_registration_append',
] as const;

export type CrashPointName = (typeof CRASH_POINTS)[number];

/**
 * Kills this process at once when `name` is the configured crash point; otherwise does
 * nothing. `kill` is replaceable for unit tests only.
 */
export function crashPoint(
  name: CrashPointName,
  configured: CrashPointName | undefined,
  kill: (name: CrashPointName) => void = killSelf,
): void {
  if (configured === name) kill(name);
}

function killSelf(name: CrashPointName): void {
  // Synchronous, so the line is out before the signal: tests assert where the process died.
  writeSync(2, `${JSON.stringify({ level: 'error', crash_point: name, msg: 'crash point reached: SIGKILL' })}\n`);
  process.kill(process.pid, 'SIGKILL');
}
