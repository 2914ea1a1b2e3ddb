import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { API_SUBJECTS, CONTRACT_HEADERS } from '@backchannel/contracts';
import { eventually } from '@backchannel/testing';
import { INTERNAL_TOKEN } from '../support/mesh.js';
import { FuzzClient, judge, Tally, type Answer } from './fuzz-client.js';
import { controls, type Control } from './fuzz-controls.js';
import { FUZZ_SERVICES, FuzzMesh, sameSnapshot, writesBetween, type StateSnapshot } from './fuzz-mesh.js';
import { freeFormObject, type FuzzCase } from './fuzz-values.js';
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
 * says (fuzz-controls.ts), and nothing is written to any stream or bucket. Then, once that
 * is judged, valid requests whose free-form JSON (`metadata`, a callback's `result`, an
 * invocation's `arguments`) has keys named like Object.prototype's members must be accepted,
 * and what is stored and injected must be what was sent.
 *
 * FUZZ_PROFILE=ci (default, inside `npm test`) sends a few thousand requests; `npm run fuzz`
 * (test/fuzz/run-fuzz.mjs) sets FUZZ_PROFILE=long: at least 100,000. Both send every kind of
 * input. FUZZ_SEED repeats a run's generation; FUZZ_RESULT_FILE receives the figures.
 */

interface Profile {
  rounds: number;
  /** Cases per family per round. */
  runs: number;
  /** Concurrent loops of the raw family (its requests are the cheapest). */
  rawLanes: number;
  /** Per family and round; 0 for none. */
  timeLimitMs: number;
  /** Valid requests with free-form JSON, after the fuzzing. */
  freeFormRuns: number;
}

const PROFILES: Record<string, Profile> = {
  ci: { rounds: 1, runs: 110, rawLanes: 3, timeLimitMs: 25_000, freeFormRuns: 15 },
  long: { rounds: 20, runs: 230, rawLanes: 3, timeLimitMs: 0, freeFormRuns: 100 },
};
const PROFILE_NAME = process.env.FUZZ_PROFILE === 'long' ? 'long' : 'ci';
const PROFILE: Profile = {
  ...PROFILES[PROFILE_NAME],
  ...(process.env.FUZZ_ROUNDS ? { rounds: Number(process.env.FUZZ_ROUNDS) } : {}),
  ...(process.env.FUZZ_RUNS ? { runs: Number(process.env.FUZZ_RUNS) } : {}),
};
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Date.now() % 2 ** 31;

describe(`fuzzing every endpoint (${PROFILE_NAME} profile, seed ${SEED})`, () => {
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
      ...Object.entries(httpFamilies(f)),
      ...Object.entries(natsFamilies(f)),
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
      ...tally.examples,
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
    // Without a time limit every family sends all its cases (the long run: 115,000 requests),
    // so FUZZ_ROUNDS and FUZZ_RUNS size the expectation too.
    const sent = PROFILE.timeLimitMs > 0 ? 1_500 : PROFILE.rounds * PROFILE.runs * families.length;
    expect(tally.requests).toBeGreaterThanOrEqual(sent);
    expect(tally.controls).toBeGreaterThan(0);
  }, 3_600_000);

  it('free-form JSON keyed with the names of Object.prototype members is accepted and kept as sent', async () => {
    const f = mesh.fixtures;
    const ledger = mesh.ledger();
    const internal = { authorization: `Bearer ${INTERNAL_TOKEN}`, 'content-type': 'application/json' };
    const post = (service: 'token-authority' | 'tool-dispatcher', path: string, body: unknown) =>
      client.http({ service, method: 'POST', path, headers: internal, body: JSON.stringify(body) });
    const json = (answer: Answer): any => JSON.parse(answer.text);
    // JSON text, so that a key dropped, added or moved shows.
    const text = (value: unknown) => JSON.stringify(value);
    const storedMetadata = async (conversationId: string) => {
      const opening = (await ledger.firstConversationEvent(conversationId))?.event;
      return opening?.type === 'conversation.opened' ? opening.metadata : undefined;
    };
    let n = 0;

    await fc.assert(
      fc.asyncProperty(
        freeFormObject,
        freeFormObject,
        freeFormObject,
        freeFormObject,
        async (metadata, natsMetadata, result, args) => {
          const id = `fz-free-form-${++n}`;
          const opened = await post('token-authority', '/internal/v1/conversations', {
            conversation_id: id,
            tenant_id: f.tenantA,
            metadata,
          });
          expect(opened.status).toBe(201);
          expect(text(await storedMetadata(id))).toBe(text(metadata));

          const natsOpened = await mesh.nc.request(
            API_SUBJECTS.conversationsOpen,
            text({ conversation_id: `${id}-nats`, tenant_id: f.tenantA, metadata: natsMetadata }),
            { timeout: 10_000 },
          );
          expect(natsOpened.json<{ state?: string }>().state).toBe('active');
          expect(text(await storedMetadata(`${id}-nats`))).toBe(text(natsMetadata));

          const registered = json(
            await post('token-authority', '/internal/v1/work-items', {
              conversation_id: id,
              kind: 'tool',
              ordered: false,
              timeout_ms: 3_600_000,
            }),
          );
          const item: string = registered.work_item_id;
          const called = await client.http({
            service: 'callback-ingress',
            method: 'POST',
            path: `/api/v1/webhooks/${item}`,
            headers: {
              'content-type': 'application/json',
              [CONTRACT_HEADERS.callbackToken]: registered.callback.headers[CONTRACT_HEADERS.callbackToken],
            },
            body: text({ result }),
          });
          expect(called.status).toBe(202);
          const end = (await ledger.readEnd(id, item))?.event.outcome;
          expect(end?.state).toBe('completed');
          expect(text(end && 'result' in end ? end.result : undefined)).toBe(text(result));
          const injected = await eventually(
            async () => {
              const listed = await client.http({
                service: 'conversation-injector',
                method: 'GET',
                path: `/api/v1/conversations/${id}/messages`,
                headers: { authorization: `Bearer ${f.keys.a.api_key}` },
              });
              const message = json(listed).messages?.find(
                (m: { source?: { work_item_id?: string } }) => m.source?.work_item_id === item,
              );
              if (!message) throw new Error(`not injected yet: ${listed.status} ${listed.text.slice(0, 200)}`);
              return message;
            },
            { timeoutMs: 10_000, intervalMs: 50, message: `the result of ${item} injected` },
          );
          expect(text(injected.result)).toBe(text(result));

          // A tool on a private network is refused, and only for that: the arguments were accepted.
          const invoked = await post('tool-dispatcher', '/internal/v1/tool-invocations', {
            conversation_id: id,
            call_control_id: 'v3:free-form',
            tool: { url: 'http://10.1.2.3/tool', mode: 'sync' },
            arguments: args,
          });
          expect({ status: invoked.status, pointer: json(invoked).errors?.[0]?.source?.pointer }).toEqual({
            status: 400,
            pointer: '/tool/url',
          });
        },
      ),
      { numRuns: PROFILE.freeFormRuns, seed: SEED },
    );
  }, 600_000);

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
        finished: final !== undefined,
        seconds: Math.round((Date.now() - startedAt) / 1_000),
        figures: tally.figures(),
        controls: tally.controls,
        control_failures: tally.controlFailures,
        by_family: tally.byFamily,
        by_violation: tally.byKind,
        violations_by_family: tally.violationsByFamily,
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
