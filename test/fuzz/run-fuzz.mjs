// `npm run fuzz`: the long fuzzing run (issue 10). Runs test/fuzz/endpoints.fuzz.e2e-spec.ts
// with FUZZ_PROFILE=long under jest (at least 100,000 generated malformed requests), prints
// the figures by family and the violations found, and ends with exactly one line:
//   fuzz: requests=<n> status_5xx=<n> crashes=<n> changes=<n> envelope_violations=<n>
// FUZZ_SEED, FUZZ_ROUNDS and FUZZ_RUNS pass through to the spec.
import { runSpecForResult } from '../support/run-spec.mjs';

const jest = runSpecForResult({
  spec: 'test/fuzz/endpoints.fuzz.e2e-spec.ts',
  name: 'fuzz',
  // The mesh runs in the jest process from the sources: dist/ is not needed.
  env: { BACKCHANNEL_SKIP_BUILD: '1', ...process.env, FUZZ_PROFILE: 'long' },
  resultVariable: 'FUZZ_RESULT_FILE',
});
const result = jest.result;
if (!result) {
  process.stderr.write(`fuzz: no result (jest exited ${jest.status}); see the output above\n`);
  process.stdout.write('fuzz: requests=0 status_5xx=0 crashes=1 changes=0 envelope_violations=0\n');
  process.exit(1);
}

const figures = { ...result.figures };
// The spec writes its figures every round: a run that did not finish died with its mesh.
if (!result.finished) figures.crashes += 1;
const out = (line = '') => process.stdout.write(`${line}\n`);
out();
out(`fuzz run: profile ${result.profile}, seed ${result.seed}, ${result.seconds} s`);
out(`requests by family:`);
for (const [family, count] of Object.entries(result.by_family).sort()) out(`  ${family.padEnd(42)} ${count}`);
out(`answers by family and status (NATS: code):`);
for (const [outcome, count] of Object.entries(result.outcomes).sort()) out(`  ${outcome.padEnd(52)} ${count}`);
out(`controls: ${result.controls} sent, ${result.control_failures.length} failed`);
if (Object.keys(result.by_violation).length > 0) {
  out(`violations by kind: ${JSON.stringify(result.by_violation)}`);
  out(`violating cases by family: ${JSON.stringify(result.violations_by_family)}`);
  out(`violating cases described (the first ones, at most 10 of a kind per family): ${result.examples.length}`);
}
for (const example of result.examples) out(example);
for (const failure of result.control_failures) out(`[control] ${failure}`);
for (const write of result.writes) out(`[write] ${write}`);
for (const note of result.crash_notes) out(`[crash] ${note}`);
if (result.secrets_in_logs > 0) out(`secrets in service logs: ${result.secrets_in_logs} lines`);
out(
  `fuzz: requests=${figures.requests} status_5xx=${figures.status_5xx} crashes=${figures.crashes} changes=${figures.changes} envelope_violations=${figures.envelope_violations}`,
);
const clean =
  figures.status_5xx === 0 && figures.crashes === 0 && figures.changes === 0 && figures.envelope_violations === 0;
process.exit(clean && jest.status === 0 ? 0 : 1);
