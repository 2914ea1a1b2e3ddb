#!/usr/bin/env node
// Lints the `backchannel_` metrics of running services (it starts nothing itself):
//
//   node scripts/check-metrics.mjs                       the five on 127.0.0.1:8080-8084 (npm start)
//   node scripts/check-metrics.mjs http://host:8082 ...  the given base URLs
//
// For each service: GET /metrics, keep the `backchannel_` families (prom-client's default
// Node.js metrics keep their standard names, which fail promtool's naming lint: CONTRACT.md
// §7), run `promtool check metrics` on them, and refuse labels named like an id or a
// secret. One line per service; exit 1 on any problem, 2 when promtool is missing.
// test/mesh/metrics.e2e-spec.ts does the same against services it starts in-process.
import { spawnSync } from 'node:child_process';
import { SERVICES } from './services.mjs';

const FORBIDDEN_LABEL = /(^|_)ids?$|token|key|secret|password|conversation|work_item|tenant|request|trace|url|path$/;

const urls = process.argv.slice(2).length
  ? process.argv.slice(2)
  : SERVICES.map((service) => `http://127.0.0.1:${process.env[service.portEnv] ?? service.defaultPort}`);

if (spawnSync('sh', ['-c', 'command -v promtool']).status !== 0) {
  console.error(
    'check-metrics: promtool is not installed (Debian package "prometheus"; scripts/ensure-deploy-tools.sh)',
  );
  process.exit(2);
}

let failed = 0;
for (const base of urls) {
  const problems = [];
  let families = 0;
  try {
    const answer = await fetch(new URL('/metrics', base));
    if (!answer.ok) throw new Error(`GET /metrics answered ${answer.status}`);
    const text = (await answer.text())
      .split('\n')
      .filter((line) => /^(# (HELP|TYPE) )?backchannel_/.test(line))
      .join('\n')
      .concat('\n');
    families = [...text.matchAll(/^# TYPE /gm)].length;
    if (families === 0) problems.push('no backchannel_ metric at all');
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    problems.push(
      ...`${lint.stdout}${lint.stderr}`
        .split('\n')
        .filter(Boolean)
        .map((line) => `promtool: ${line}`),
    );
    for (const line of text.split('\n').filter((l) => l.startsWith('backchannel_'))) {
      for (const [, label] of (/\{([^}]*)\}/.exec(line)?.[1] ?? '').matchAll(/(\w+)="/g)) {
        if (FORBIDDEN_LABEL.test(label)) problems.push(`label "${label}" looks like an id or a secret: ${line}`);
      }
    }
  } catch (error) {
    problems.push(
      error instanceof Error
        ? `${error.message}${error.cause ? ` (${error.cause.code ?? error.cause})` : ''}`
        : String(error),
    );
  }
  const unique = [...new Set(problems)];
  if (unique.length === 0) console.log(`PASS  ${base} (${families} backchannel_ families)`);
  else {
    failed++;
    console.log(`FAIL  ${base}`);
    for (const problem of unique) console.log(`        - ${problem}`);
  }
}
console.log(`check-metrics: ${urls.length - failed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
