import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { FuzzClient, judge, Tally } from './fuzz-client.js';
import { controls, type Control } from './fuzz-controls.js';
import { FUZZ_SERVICES, FuzzMesh, sameSnapshot, writesBetween, type StateSnapshot } from './fuzz-mesh.js';
import type { FuzzCase, FuzzOptions } from './fuzz-values.js';
import { httpFamilies } from './http-requests.js';
import { natsFamilies } from './nats-requests.js';
import { rawFamily } from './raw-requests.js';

/**
 * Fuzzing of every endpoint (issue 10): the callback ingress, the token authority's and
 * the tool dispatcher's internal API, the injector's tenant API, raw malformed HTTP on every
 * port, and the `bc.v1.*` request–reply subjects. Every request is invalid by construction
 * (http-, nats- and raw-requests.ts); the invariants are those of CONTRACT.md §5 (fuzz-client.ts: a 4xx in
 * the envelope with a known code of that status, never a 5xx, no secret in it), plus:
 * the services stay up, well-formed requests sent in between are answered as the contract
 * says (fuzz-controls.ts), and nothing is written to any stream or bucket.
 *
 * FUZZ_PROFILE=ci (default, inside `npm test`) sends a few thousand requests; `npm run fuzz`
 * (test/fuzz/run-fuzz.mjs) sets FUZZ_PROFILE=long: at least 100,000. FUZZ_SEED repeats a run's
 * generation; FUZZ_RESULT_FILE receives the figures. FUZZ_KNOWN_DEFECTS=include|exclude decides
 * whether the inputs of KNOWN_DEFECTS (http-, nats- and raw-requests.ts) go out; by default only the long run
 * sends them.
 */

interface Profile {
  rounds: number;
  /** Cases per family per round. */
  runs: number;
  /** Concurrent loops of the raw family (its requests are the cheapest). */
  rawLanes: number;
  /** Per family and round; 0 for none. */
  timeLimitMs: number;
}

const PROFILES: Record<string, Profile> = {
  ci: { rounds: 1, runs: 110, rawLanes: 3, timeLimitMs: 25_000 },
  long: { rounds: 20, runs: 230, rawLanes: 3, timeLimitMs: 0 },
};
const PROFILE_NAME = process.env.FUZZ_PROFILE === 'long' ? 'long' : 'ci';
const PROFILE: Profile = {
  ...PROFILES[PROFILE_NAME],
  ...(process.env.FUZZ_ROUNDS ? { rounds: Number(process.env.FUZZ_ROUNDS) } : {}),
  ...(process.env.FUZZ_RUNS ? { runs: Number(process.env.FUZZ_RUNS) } : {}),
};
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Date.now() % 2 ** 31;
/** Whether to send the inputs of KNOWN_DEFECTS: by default in the long run only. */
const OPTIONS: FuzzOptions = {
  knownDefects: (process.env.FUZZ_KNOWN_DEFECTS ?? (PROFILE_NAME === 'long' ? 'include' : 'exclude')) === 'include',
};

describe(`fuzzing every endpoint (${PROFILE_NAME} profile, seed ${SEED}${OPTIONS.knownDefects ? ', known defects included' : ''})`, () => {
  let mesh: FuzzMesh;
  let client: FuzzClient;
  let baseline: StateSnapshot;
  const tally = new Tally();
  const startedAt = Date.now();

  beforeAll(async () => {
    mesh = await FuzzMesh.start();
    const origins = Object.fromEntries(FUZZ_SERVICES.map((name) => [name, mesh.url(name)]));
    const ports = Object.fromEntries(FUZZ_SERVICES.map((name) => [name, mesh.port(name)]));
    client = new FuzzClient(origins, ports, mesh.nc);
    baseline = await mesh.settle();
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await mesh?.stop();
  });

  /** Runs one family for `runs` cases (or until the time limit), judging every answer. */
  async function runFamily(name: string, arbitrary: fc.Arbitrary<FuzzCase>, seed: number): Promise<void> {
    await fc
      .assert(
        fc.asyncProperty(arbitrary, async (fuzzCase) => {
          const answer = await client.send(fuzzCase);
          tally.record(fuzzCase, answer, judge(fuzzCase, answer, mesh.fixtures.secrets));
        }),
        {
          numRuns: PROFILE.runs,
          seed,
          ...(PROFILE.timeLimitMs > 0 ? { interruptAfterTimeLimit: PROFILE.timeLimitMs } : {}),
        },
      )
      .catch((error: unknown) => {
        throw new Error(`family ${name}: ${(error as Error).message}`);
      });
  }

  /** Well-formed requests, round-robin, until `done` says the fuzzing of the round is over. */
  async function runControls(list: Control[], done: () => boolean): Promise<void> {
    for (let n = 0; !done() || n < list.length; n++) {
      const failure = await list[n % list.length](client);
      tally.controls++;
      if (failure && tally.controlFailures.length < 30) tally.controlFailures.push(failure);
    }
  }

  /** Every service answers its health check (in this process, a crash would end the run). */
  async function checkHealth(round: number): Promise<void> {
    for (const [name, service] of Object.entries(mesh.services)) {
      const answer = await fetch(`${service.service.url}/healthz`).catch((error: Error) => error);
      if (answer instanceof Error || answer.status !== 200) {
        tally.crashes++;
        tally.crashNotes.push(
          `round ${round}: ${name} health ${answer instanceof Error ? answer.message : answer.status}`,
        );
      }
    }
  }

  it('every malformed request gets a 4xx envelope; no 5xx, no crash, nothing written; controls answer', async () => {
    const f = mesh.fixtures;
    const families: [string, fc.Arbitrary<FuzzCase>][] = [
      ...Object.entries(httpFamilies(f, OPTIONS)),
      ...Object.entries(natsFamilies(f, OPTIONS)),
      ...Array.from(
        { length: PROFILE.rawLanes },
        (_, lane) => [`raw#${lane}`, rawFamily(f)] as [string, fc.Arbitrary<FuzzCase>],
      ),
    ];
    const nats = async (subject: string, body: unknown) =>
      JSON.parse((await mesh.nc.request(subject, JSON.stringify(body), { timeout: 10_000 })).string());
    const controlList = controls(f, nats);

    for (let round = 1; round <= PROFILE.rounds; round++) {
      const before = await mesh.snapshot();
      let fuzzing = true;
      await Promise.all([
        Promise.all(
          families.map(([name, arbitrary], index) => runFamily(name, arbitrary, SEED + round * 1_000 + index)),
        ).finally(() => (fuzzing = false)),
        runControls(controlList, () => !fuzzing),
      ]);
      await checkHealth(round);
      const after = await mesh.snapshot();
      if (!sameSnapshot(before, after))
        tally.writes.push(`round ${round}:`, ...(await mesh.writesSince(before)).slice(0, 20));
      progress(round);
    }

    // Writes a wrongly accepted request set off land a little later (releases, transcript).
    const final = await mesh.settle();
    tally.changes = writesBetween(baseline, final);
    if (tally.changes > 0 && tally.writes.length === 0)
      tally.writes.push(...(await mesh.writesSince(baseline)).slice(0, 20));
    await checkHealth(PROFILE.rounds + 1);
    const leaked = mesh.leakedInLogs();
    saveResult(final, leaked);

    const report = [
      ...tally.unexplained,
      ...tally.examples.filter((example) => !tally.unexplained.includes(example)),
      ...tally.controlFailures.map((failure) => `[control] ${failure}`),
      ...tally.writes.map((write) => `[write] ${write}`),
      ...tally.crashNotes.map((note) => `[crash] ${note}`),
      ...leaked.slice(0, 5).map((line) => `[secret in a log] ${line.slice(0, 300)}`),
      ...mesh
        .unexpectedErrorsInLogs()
        .slice(0, 5)
        .map((line) => `[unexpected error logged] ${line}`),
    ].join('\n');
    expect({
      ...tally.figures(),
      control_failures: tally.controlFailures.length,
      secrets_in_logs: leaked.length,
      report,
    }).toEqual({
      requests: tally.requests,
      status_5xx: 0,
      crashes: 0,
      changes: 0,
      envelope_violations: 0,
      control_failures: 0,
      secrets_in_logs: 0,
      report: '',
    });
    expect(tally.requests).toBeGreaterThanOrEqual(PROFILE_NAME === 'long' ? 100_000 : 1_500);
    expect(tally.controls).toBeGreaterThan(0);
  }, 3_600_000);

  function progress(round: number): void {
    const seconds = Math.round((Date.now() - startedAt) / 1_000);
    const figures = tally.figures();
    process.stdout.write(
      `fuzz round ${round}/${PROFILE.rounds}: requests=${figures.requests} controls=${tally.controls} ` +
        `5xx=${figures.status_5xx} violations=${figures.envelope_violations} crashes=${figures.crashes} ${seconds} s\n`,
    );
    saveResult();
  }

  /** The figures for `npm run fuzz` (written every round, so a crash still leaves them). */
  function saveResult(final?: StateSnapshot, leaked: string[] = []): void {
    const file = process.env.FUZZ_RESULT_FILE;
    if (!file) return;
    writeFileSync(
      file,
      JSON.stringify({
        profile: PROFILE_NAME,
        seed: SEED,
        known_defects: OPTIONS.knownDefects,
        finished: final !== undefined,
        seconds: Math.round((Date.now() - startedAt) / 1_000),
        figures: tally.figures(),
        controls: tally.controls,
        control_failures: tally.controlFailures,
        by_family: tally.byFamily,
        by_violation: tally.byKind,
        by_known_defect: tally.byKnownDefect,
        unexplained: tally.unexplained,
        outcomes: tally.outcomes,
        examples: tally.examples,
        client_refused: tally.clientRefused,
        writes: tally.writes,
        crash_notes: tally.crashNotes,
        secrets_in_logs: leaked.length,
      }),
    );
  }
});
