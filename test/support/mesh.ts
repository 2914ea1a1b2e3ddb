import { Writable } from 'node:stream';
import { startService, type RunningService, type ServiceDefinition } from '@backchannel/http';
import { startNatsServer, type NatsServerHandle } from '@backchannel/testing';

export const INTERNAL_TOKEN = 'test-internal-token-0123456789';

/** Log lines a service wrote, captured for assertions (secret scans, trace lookups). */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  }
}

export interface TestService {
  service: RunningService;
  logs: LogCapture;
}

/** The environment every test service gets: a private broker and the internal token. */
export function testEnv(nats: NatsServerHandle, extra: Record<string, string> = {}): Record<string, string> {
  return {
    NATS_URL: nats.url,
    INTERNAL_API_TOKEN: INTERNAL_TOKEN,
    LOG_LEVEL: 'debug',
    SEQUENCER_PARTITIONS: '4',
    DISPATCHER_ALLOW_PRIVATE_NETWORKS: 'true',
    ...extra,
  };
}

/** Starts a service in this process on port 0 against the given broker. */
export async function startTestService(
  definition: ServiceDefinition,
  nats: NatsServerHandle,
  extra: Record<string, string> = {},
): Promise<TestService> {
  const logs = new LogCapture();
  const service = await startService(definition, { env: testEnv(nats, extra), port: 0, logDestination: logs });
  return { service, logs };
}

export { startNatsServer };

/** JSON over real HTTP. */
export async function http(
  method: string,
  url: string,
  options: { body?: unknown; rawBody?: string; headers?: Record<string, string>; internal?: boolean } = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.internal) headers.authorization = `Bearer ${INTERNAL_TOKEN}`;
  let payload: string | undefined = options.rawBody;
  if (options.body !== undefined) {
    payload = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(url, { method, headers, body: payload });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // Non-JSON answers (e.g. /metrics) stay text.
  }
  return { status: response.status, body, headers: response.headers };
}
