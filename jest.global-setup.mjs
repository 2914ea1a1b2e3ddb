// Tests that kill and restart services run the built services as real processes, so
// `npm test` on a fresh clone builds dist/ first (only when the sources are newer).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { buildReason } from './scripts/build-state.mjs';

export default function globalSetup() {
  const root = process.cwd();
  const reason = buildReason(root);
  if (!reason) return;
  process.stdout.write(`\nbuilding dist/ for process-level tests (${reason})\n`);
  const nest = path.join(root, 'node_modules', '@nestjs', 'cli', 'bin', 'nest.js');
  const built = spawnSync(process.execPath, [nest, 'build', '--all'], { stdio: 'inherit' });
  if (built.status !== 0) throw new Error('nest build failed: see the errors above');
}
