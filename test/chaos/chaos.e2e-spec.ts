import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from '@jest/globals';
import { chaosLine, sumFigures } from './checker.js';
import { describeResult, runScenario, type ChaosScenario, type ScenarioResult } from './chaos-run.js';

/**
 * Issue 10. The short variant runs in CI (`npm test`); `npm run chaos` runs the long one
 * (CHAOS_PROFILE=long) through test/chaos/run-chaos.mjs, which prints the figures.
 *
 * CHAOS_SEED fixes the workload (kinds, bodies, posting order) and the fault choices;
 * CHAOS_INJECTED_FROM=transcript|releases|auto picks what the checker counts as injected;
 * CHAOS_CONVERSATIONS, CHAOS_ITEMS and CHAOS_CLUSTER_CONVERSATIONS size the long runs.
 */
const long = process.env.CHAOS_PROFILE === 'long';
const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);
const injectedFrom = (process.env.CHAOS_INJECTED_FROM ?? 'auto') as ChaosScenario['injectedFrom'];
const resultFile = process.env.CHAOS_RESULT_FILE;
const say = (line: string): void => void process.stdout.write(`${line}\n`);
const results: ScenarioResult[] = [];

async function run(scenario: Omit<ChaosScenario, 'seed' | 'injectedFrom'>): Promise<ScenarioResult> {
  const result = await runScenario({ ...scenario, seed, injectedFrom }, say);
  results.push(result);
  say(describeResult(result).join('\n'));
  return result;
}

function expectClean(result: ScenarioResult): void {
  expect(result.figures).toMatchObject({ lost: 0, duplicated: 0, unexpected: 0, out_of_order: 0 });
  expect(result.workload.replaysNot200).toBe(0);
}

describe('chaos: the mesh under faults keeps every accepted result, once, in order', () => {
  afterAll(() => {
    if (results.length === 0) return;
    const total = sumFigures(results.map((result) => result.figures));
    if (resultFile) writeFileSync(resultFile, JSON.stringify({ results, total }, null, 2));
    // With a result file the runner prints the one summary line, after jest's own output.
    else say(chaosLine(total));
  });

  (long ? it.skip : it)(
    'short: 2,000 callbacks over 40 conversations; broker kill -9 ×2, SIGSTOP, kill -9 of every service',
    async () => {
      expectClean(
        await run({
          name: 'chaos-ci',
          conversations: 40,
          itemsPerConversation: 50,
          faults: 'ci',
          settleTimeoutMs: 120_000,
        }),
      );
    },
    600_000,
  );

  (long ? it : it.skip)(
    'long: 20,000 callbacks over 200 conversations under every fault',
    async () => {
      const conversations = Number(process.env.CHAOS_CONVERSATIONS ?? 200);
      const itemsPerConversation = Number(process.env.CHAOS_ITEMS ?? 100);
      expectClean(
        await run({
          name: 'chaos-all',
          conversations,
          itemsPerConversation,
          faults: 'all',
          settleTimeoutMs: 600_000,
          // About 7 minutes of results: ~30 broker kills and ~100 faults in all.
          callbacksPerSecond: Number(process.env.CHAOS_CALLBACKS_PER_S ?? 50),
        }),
      );
    },
    4 * 3_600_000,
  );

  (long ? it : it.skip)(
    'long: 3-node cluster with R3 streams, one node killed -9 mid-run',
    async () => {
      const conversations = Number(process.env.CHAOS_CLUSTER_CONVERSATIONS ?? 100);
      expectClean(
        await run({
          name: 'chaos-cluster',
          conversations,
          itemsPerConversation: 50,
          faults: 'cluster',
          settleTimeoutMs: 600_000,
        }),
      );
    },
    4 * 3_600_000,
  );
});
