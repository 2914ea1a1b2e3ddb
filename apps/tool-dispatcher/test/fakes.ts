import { Metrics } from '@backchannel/observability';
import { DispatchMetrics } from '../src/dispatch-metrics.js';
import { DispatchEnds, type DispatchEndResult } from '../src/invocations/dispatch-ends.js';
import {
  WorkItemRegistrar,
  type Registration,
  type RegistrationRequest,
} from '../src/invocations/work-item-registrar.js';
import { ToolHttpClient, type ToolAnswer, type ToolPost } from '../src/outbound/tool-http-client.js';

/** Fakes of the dispatcher's ports, for unit tests of its logic (no broker, no sockets). */

export class FakeToolHttp extends ToolHttpClient {
  readonly posts: ToolPost[] = [];
  constructor(private readonly script: (post: ToolPost, index: number) => Promise<ToolAnswer>) {
    super();
  }
  post(post: ToolPost): Promise<ToolAnswer> {
    this.posts.push(post);
    return this.script(post, this.posts.length - 1);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

export class FakeRegistrar extends WorkItemRegistrar {
  readonly requests: RegistrationRequest[] = [];
  constructor(
    private readonly answer: (request: RegistrationRequest) => Promise<Registration> = () =>
      Promise.resolve(REGISTRATION),
  ) {
    super();
  }
  register(request: RegistrationRequest): Promise<Registration> {
    this.requests.push(request);
    return this.answer(request);
  }
}

export class FakeEnds extends DispatchEnds {
  readonly recorded: Parameters<DispatchEnds['recordFailure']>[0][] = [];
  constructor(private readonly result: DispatchEndResult = { won: true, state: 'failed' }) {
    super();
  }
  recordFailure(input: Parameters<DispatchEnds['recordFailure']>[0]): Promise<DispatchEndResult> {
    this.recorded.push(input);
    return Promise.resolve(this.result);
  }
}

export const REGISTRATION: Registration = {
  work_item_id: 'wi_01HZX0000000000000000000AB',
  sequence: 4,
  expires_at: new Date(Date.now() + 60_000).toISOString(),
  callback: {
    url: 'https://ingress.example/api/v1/webhooks/wi_01HZX0000000000000000000AB',
    method: 'POST',
    headers: { 'x-callback-token': `cbt_${'A'.repeat(43)}` },
  },
};

export const SILENT_LOGGER = { info: () => undefined, warn: () => undefined };

export function testMetrics(): { metrics: Metrics; dispatch: DispatchMetrics } {
  const metrics = new Metrics('tool-dispatcher-test');
  return { metrics, dispatch: new DispatchMetrics(metrics) };
}
