// `npm run chaos`: the long chaos run (issue 10). Runs test/chaos/chaos.e2e-spec.ts with
// CHAOS_PROFILE=long under jest (which builds dist/ when stale), then prints the figures of
// each scenario and ends with exactly one line:
//   chaos: attempted=<n> injected=<n> lost=<n> duplicated=<n> unexpected=<n> out_of_order=<n>
// Extra arguments go to jest (e.g. `npm run chaos -- -t cluster` runs only the cluster scenario).
// CHAOS_SEED, CHAOS_INJECTED_FROM and CHAOS_CLUSTER_CONVERSATIONS pass through to the spec.
import { runSpecForResult } from '../support/run-spec.mjs';

const jest = runSpecForResult({
  spec: 'test/chaos/chaos.e2e-spec.ts',
  name: 'chaos',
  env: { ...process.env, CHAOS_PROFILE: 'long' },
  resultVariable: 'CHAOS_RESULT_FILE',
});
if (!jest.result) {
  process.stderr.write(`chaos: no result (jest exited ${jest.status}); see the output above\n`);
  process.exit(1);
}
const { results, total } = jest.result;

const columns = ['attempted', 'accepted', 'injected', 'lost', 'duplicated', 'unexpected', 'out_of_order', 'timed_out'];
process.stdout.write('\nchaos figures\n');
process.stdout.write(`${['scenario'.padEnd(16), 'source'.padEnd(10), ...columns, 'faults', 'seconds'].join(' ')}\n`);
for (const result of results) {
  const cells = columns.map((column) => String(result.figures[column]).padStart(column.length));
  const seconds = String(Math.round(result.totalMs / 1000)).padStart(7);
  process.stdout.write(
    `${[result.scenario.padEnd(16), result.source.padEnd(10), ...cells, String(result.faults.length).padStart(6), seconds].join(' ')}\n`,
  );
}
const clean = total.lost === 0 && total.duplicated === 0 && total.unexpected === 0 && total.out_of_order === 0;
process.stdout.write(
  `chaos: attempted=${total.attempted} injected=${total.injected} lost=${total.lost} duplicated=${total.duplicated} unexpected=${total.unexpected} out_of_order=${total.out_of_order}\n`,
);
process.exit(clean && jest.status === 0 ? 0 : 1);
