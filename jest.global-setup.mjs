// Tests that kill and restart services run the built services as real processes, so
// `npm test` on a fresh clone builds dist/ first (only when the sources are newer).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { buildReason } from './scripts/build-state.mjs';

export default function globalSetup() {
  const root = process.cwd();
  if (process.env.BACKCHANNEL_SKIP_BUILD === '1') return;
  const reason = buildReason(root);
  if (!reason) return;
  process.stdout.write(`\nbuilding dist/ for process-level tests (${reason})\n`);
  const nest = path.join(root, 'node_modules', '@nestjs', 'cli', 'bin', 'nest.js');
  const built = spawnSync(process.execPath, [nest, 'build', '--all'], { stdio: 'inherit' });
  // In-process tests need no build; the process-level ones fail on their own, clearly.
  if (built.status !== 0) process.stdout.write('\nnest build failed: process-level tests will fail (see above)\n');
}
