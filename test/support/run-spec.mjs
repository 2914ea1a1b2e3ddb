// What `npm run chaos` and `npm run fuzz` share: run one e2e spec under jest (ESM mode,
// in band) with a temporary file for the figures the spec writes, and read them back.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

/**
 * Runs `spec` with `env` (plus `resultVariable` naming the result file) and the command
 * line's extra arguments; returns jest's exit status and the parsed result (undefined when
 * the spec wrote none).
 */
export function runSpecForResult({ spec, name, env, resultVariable }) {
  const dir = mkdtempSync(path.join(tmpdir(), `backchannel-${name}-`));
  const resultFile = path.join(dir, 'result.json');
  const jest = spawnSync(
    process.execPath,
    [
      '--experimental-vm-modules',
      path.join(root, 'node_modules', 'jest', 'bin', 'jest.js'),
      '--selectProjects',
      'e2e',
      '--runInBand',
      spec,
      ...process.argv.slice(2),
    ],
    { cwd: root, stdio: 'inherit', env: { ...env, [resultVariable]: resultFile } },
  );
  const result = existsSync(resultFile) ? JSON.parse(readFileSync(resultFile, 'utf8')) : undefined;
  rmSync(dir, { recursive: true, force: true });
  return { status: jest.status ?? jest.signal, result };
}
