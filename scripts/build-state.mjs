// Whether dist/ is older than the sources: shared by `npm start` and the test setup, so
// both build only when needed.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { SERVICES, entryOf } from './services.mjs';

/** Why a build is needed, or undefined when dist is up to date. */
export function buildReason(root) {
  const entries = SERVICES.map((s) => path.join(root, entryOf(s.name)));
  const missing = entries.find((entry) => !existsSync(entry));
  if (missing) return `${path.relative(root, missing)} is missing`;
  const oldest = Math.min(...entries.map((entry) => statSync(entry).mtimeMs));
  const changed = newerSource(root, ['apps', 'libs'], oldest);
  return changed && `${changed} is newer than the build`;
}

/** The built contract: scripts that need the wire names (bench, demo, check-deploy) import it. */
export const CONTRACT_ENTRY = 'dist/libs/contracts/src/index.js';

/**
 * Why the built contract is missing or older than libs/contracts, or undefined. Narrower
 * than buildReason: an edit elsewhere in apps/ or libs/ does not make its names stale.
 */
export function contractBuildReason(root) {
  const entry = path.join(root, CONTRACT_ENTRY);
  if (!existsSync(entry)) return `${CONTRACT_ENTRY} is missing`;
  const changed = newerSource(root, [path.join('libs', 'contracts')], statSync(entry).mtimeMs);
  return changed && `${changed} is newer than the build`;
}

/** The first non-test .ts file under `dirs` modified after `than`. */
function newerSource(root, dirs, than) {
  const pending = dirs.map((dir) => path.join(root, dir)).filter(existsSync);
  while (pending.length) {
    const dir = pending.pop();
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        // libs/testing is not part of any app build (the apps' tsconfig excludes it).
        if (entry.name !== 'node_modules' && full !== path.join(root, 'libs', 'testing')) pending.push(full);
      } else if (/\.ts$/.test(entry.name) && !/\.(e2e-)?spec\.ts$/.test(entry.name)) {
        if (statSync(full).mtimeMs > than) return path.relative(root, full);
      }
    }
  }
  return undefined;
}
