// The container image's entry point: `node scripts/entrypoint.mjs <service>` (or SERVICE=<service>).
// One image holds all five services; the argument picks one, checked against the list in
// scripts/services.mjs, and its built entry is loaded in this same process (no child
// process, so SIGTERM reaches the service directly and its exit code is the container's).
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SERVICES, entryOf } from './services.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const names = SERVICES.map((service) => service.name);
const requested = process.argv[2] ?? process.env.SERVICE;

function refuse(message) {
  process.stderr.write(`entrypoint: ${message}\nusage: entrypoint.mjs <${names.join('|')}>  (or SERVICE=<name>)\n`);
  process.exit(64);
}

if (!requested) refuse('no service named');
if (process.argv.length > 3) refuse(`one service per container, got: ${process.argv.slice(2).join(' ')}`);
if (process.argv[2] && process.env.SERVICE && process.argv[2] !== process.env.SERVICE) {
  refuse(`argument "${process.argv[2]}" and SERVICE="${process.env.SERVICE}" disagree`);
}
if (!names.includes(requested)) refuse(`unknown service "${requested}"`);

const entry = resolve(root, entryOf(requested));
if (!existsSync(entry)) refuse(`${entryOf(requested)} is missing: was the image built with \`npm run build\`?`);

process.env.SERVICE = requested;
// The built entry is CommonJS; a dynamic import of it runs its top level, which boots the service.
await import(pathToFileURL(entry).href);
