import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { ServiceDefinition } from '@backchannel/http';
import { eventually, type NatsServerHandle } from '@backchannel/testing';
import { CALLBACK_INGRESS } from '../../apps/callback-ingress/src/callback-ingress.service-definition.js';
import { CONVERSATION_INJECTOR } from '../../apps/conversation-injector/src/conversation-injector.service-definition.js';
import { ORDERING_SEQUENCER } from '../../apps/ordering-sequencer/src/ordering-sequencer.service-definition.js';
import { TOKEN_AUTHORITY } from '../../apps/token-authority/src/token-authority.service-definition.js';
import { TOOL_DISPATCHER } from '../../apps/tool-dispatcher/src/tool-dispatcher.service-definition.js';
import { http, startNatsServer, startTestService, type TestService } from '../support/mesh.js';
import { PlatformClient, postCallback } from '../support/platform.js';

/** Every service's `backchannel_` families (docs/operations.md, Metrics: the catalogue). */
const COMMON = [
  'backchannel_http_requests_total',
  'backchannel_http_request_duration_seconds',
  'backchannel_nats_connected',
];
const CONSUMERS = [
  'backchannel_consumer_pending_messages',
  'backchannel_consumer_ack_pending_messages',
  'backchannel_consumer_delivered_sequence',
  'backchannel_consumer_checkpoint_sequence',
];
const CATALOGUE: Record<string, string[]> = {
  'token-authority': COMMON,
  'callback-ingress': [...COMMON, 'backchannel_callbacks_total'],
  'ordering-sequencer': [
    ...COMMON,
    ...CONSUMERS,
    'backchannel_sequencer_releases_total',
    'backchannel_sequencer_head_of_line_wait_seconds',
    'backchannel_sequencer_held_results',
    'backchannel_sequencer_repaired_ends_total',
    'backchannel_active_conversations',
    'backchannel_work_item_timeouts_total',
    'backchannel_work_items_ended_total',
  ],
  'conversation-injector': [
    ...COMMON,
    ...CONSUMERS,
    'backchannel_injection_latency_seconds',
    'backchannel_messages_injected_total',
    'backchannel_sse_followers',
    'backchannel_release_redeliveries_total',
    'backchannel_release_gaps_total',
  ],
  'tool-dispatcher': [
    ...COMMON,
    'backchannel_dispatch_requests_total',
    'backchannel_dispatch_duration_seconds',
    'backchannel_dispatch_in_flight',
    'backchannel_cancel_notices_total',
  ],
};

/** A label name that would carry an id or a secret: unbounded, or worse (CONTRACT.md §5, §7). */
const FORBIDDEN_LABEL = /(^|_)ids?$|token|key|secret|password|conversation|work_item|tenant|request|trace|url|path$/;

/** The `backchannel_` part of an exposition: its HELP/TYPE lines and samples. */
function backchannelFamilies(text: string): string {
  return text
    .split('\n')
    .filter((line) => /^(# (HELP|TYPE) )?backchannel_/.test(line))
    .join('\n')
    .concat('\n');
}

function familyNames(text: string): string[] {
  return [...text.matchAll(/^# TYPE (backchannel_\w+) /gm)].map((match) => match[1]);
}

function labelNames(text: string): string[] {
  const names = new Set<string>();
  for (const line of text.split('\n').filter((l) => l.startsWith('backchannel_'))) {
    const labels = /\{([^}]*)\}/.exec(line)?.[1] ?? '';
    for (const match of labels.matchAll(/(\w+)="/g)) names.add(match[1]);
  }
  return [...names];
}

const promtool = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).stdout.trim();
/** In CI (CI=true) a missing promtool fails the test: the lint must not pass by not running. */
const STRICT = /^(true|1)$/i.test(process.env.CI ?? '');
const NO_PROMTOOL =
  'promtool is not installed (Debian package "prometheus"; scripts/ensure-deploy-tools.sh installs it)';

/** Whether promtool can run here; without it, fails in CI and warns SKIPPED elsewhere. */
function promtoolAvailable(what: string): boolean {
  if (promtool) return true;
  if (STRICT) throw new Error(`${what}: ${NO_PROMTOOL}, and CI=${process.env.CI} does not allow skipping it`);
  console.warn(`SKIPPED ${what}: ${NO_PROMTOOL}`);
  return false;
}

function promtoolProblems(exposition: string): string[] {
  const out = spawnSync(promtool, ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
  return `${out.stdout}${out.stderr}`.split('\n').filter(Boolean);
}

/**
 * CONTRACT.md §7: every service answers /metrics with its `backchannel_` families from the
 * start (before any traffic), they pass `promtool check metrics`, and no label is an id.
 */
describe('metric catalogue', () => {
  let nats: NatsServerHandle;
  const services = new Map<string, TestService>();

  beforeAll(async () => {
    nats = await startNatsServer();
    const definitions: ServiceDefinition[] = [
      TOKEN_AUTHORITY,
      CALLBACK_INGRESS,
      ORDERING_SEQUENCER,
      CONVERSATION_INJECTOR,
      TOOL_DISPATCHER,
    ];
    for (const definition of definitions) services.set(definition.name, await startTestService(definition, nats));
  });

  afterAll(async () => {
    for (const service of [...services.values()].reverse()) await service.service.stop();
    await nats?.cleanup();
  });

  async function scrape(name: string): Promise<string> {
    const answer = await http('GET', `${services.get(name)!.service.url}/metrics`);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^text\/plain/);
    return answer.body as string;
  }

  it('shows every family of the catalogue before any traffic, and nothing else', async () => {
    for (const [name, expected] of Object.entries(CATALOGUE)) {
      await eventually(async () => expect(familyNames(await scrape(name)).sort()).toEqual([...expected].sort()));
    }
  });

  it('reports broker connection and consumer backlog from the start', async () => {
    for (const name of Object.keys(CATALOGUE)) {
      expect(await scrape(name)).toMatch(new RegExp(`^backchannel_nats_connected\\{service="${name}"\\} 1$`, 'm'));
    }
    // Durable consumers by name (partition numbers are bounded config, never ids): 4 each.
    for (const [name, role] of [
      ['ordering-sequencer', 'sequencer'],
      ['conversation-injector', 'injector'],
    ] as const) {
      await eventually(async () => {
        const text = await scrape(name);
        for (let partition = 0; partition < 4; partition++) {
          for (const family of CONSUMERS) {
            expect(text).toMatch(
              new RegExp(`^${family}\\{consumer="${role}-p${partition}",service="${name}"\\} \\d+$`, 'm'),
            );
          }
        }
      });
    }
  });

  it('after traffic: counters move, promtool finds no problem and no label names an id', async () => {
    const ta = services.get('token-authority')!;
    const platform = new PlatformClient(ta.service.url);
    await platform.openConversation('metered');
    const item = await platform.register('metered');
    await postCallback(services.get('callback-ingress')!.service.url, item.work_item_id, item.token, { result: 1 });
    await postCallback(services.get('callback-ingress')!.service.url, item.work_item_id, 'cbt_bad', { result: 1 });
    await eventually(async () =>
      expect(await scrape('ordering-sequencer')).toMatch(
        /^backchannel_work_items_ended_total\{state="completed",service="ordering-sequencer"\} 1$/m,
      ),
    );
    await eventually(async () =>
      expect(await scrape('conversation-injector')).toMatch(
        /^backchannel_messages_injected_total\{source="callback",service="conversation-injector"\} 1$/m,
      ),
    );
    // Idle again, every partition's written checkpoint reaches what it was delivered, and the
    // callback's partition delivered something: the pair an operator compares (BackchannelCheckpointStuck).
    for (const name of ['ordering-sequencer', 'conversation-injector']) {
      await eventually(async () => {
        const text = await scrape(name);
        const sequences = (family: string): Map<string, number> =>
          new Map(
            [...text.matchAll(new RegExp(`^${family}\\{consumer="([^"]+)",[^}]*\\} (\\d+)$`, 'gm'))].map((m) => [
              m[1],
              Number(m[2]),
            ]),
          );
        const delivered = sequences('backchannel_consumer_delivered_sequence');
        const written = sequences('backchannel_consumer_checkpoint_sequence');
        expect(Math.max(...delivered.values())).toBeGreaterThan(0);
        expect(written).toEqual(delivered);
      });
    }

    const ingress = await scrape('callback-ingress');
    expect(ingress).toMatch(
      /^backchannel_callbacks_total\{kind="final",outcome="accepted",service="callback-ingress"\} 1$/m,
    );
    expect(ingress).toMatch(
      /^backchannel_callbacks_total\{kind="final",outcome="invalid_token",service="callback-ingress"\} 1$/m,
    );
    expect(ingress).toMatch(
      /^backchannel_http_requests_total\{route="\/api\/v1\/webhooks\/:workItemId",status_class="2xx",service="callback-ingress"\} 1$/m,
    );

    const problems: string[] = [];
    const linting = promtoolAvailable('promtool check metrics');
    for (const name of Object.keys(CATALOGUE)) {
      const families = backchannelFamilies(await scrape(name));
      for (const label of labelNames(families)) {
        if (FORBIDDEN_LABEL.test(label)) problems.push(`${name}: label "${label}" looks like an id or a secret`);
      }
      if (linting) problems.push(...promtoolProblems(families).map((problem) => `${name}: promtool: ${problem}`));
    }
    expect(problems).toEqual([]);
  });

  it('the alert rules and the Grafana dashboard use only metrics of the catalogue', () => {
    const known = new Set(Object.values(CATALOGUE).flat());
    for (const file of ['deploy/prometheus/alerts.yml', 'deploy/grafana/backchannel-dashboard.json']) {
      const used = new Set(
        [...readFileSync(file, 'utf8').matchAll(/backchannel_[a-z_]+/g)].map((match) =>
          match[0].replace(/_(bucket|sum|count)$/, ''),
        ),
      );
      expect(used.size).toBeGreaterThan(0);
      expect([...used].filter((name) => !known.has(name))).toEqual([]);
    }
  });

  it('promtool itself flags a bad family (the check is live, not vacuous)', () => {
    if (!promtoolAvailable('promtool flags a bad family')) return;
    expect(promtoolProblems('# TYPE backchannel_bad counter\nbackchannel_bad 1\n').join('\n')).toMatch(/_total|help/);
  });
});
