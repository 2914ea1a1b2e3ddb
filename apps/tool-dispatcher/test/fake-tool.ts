import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the fake tool received, with its exact bytes (signatures cover them). */
export interface ReceivedRequest {
  path: string;
  headers: IncomingHttpHeaders;
  raw: string;
  body: Record<string, unknown> | undefined;
}

/** How the fake tool answers the n-th request (0-based) on a path. */
export type Behaviour = (
  request: ReceivedRequest,
  index: number,
) => { status: number; body?: unknown; delayMs?: number; headers?: Record<string, string> };

/**
 * The only thing faked in the dispatcher's e2e tests: a provider, as a local node:http
 * server whose answers (and answer delays) each test scripts per path.
 */
export class FakeTool {
  private readonly behaviours = new Map<string, Behaviour>();
  private readonly received = new Map<string, ReceivedRequest[]>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private routes = 0;
  connections = 0;

  private constructor(
    private readonly server: Server,
    readonly baseUrl: string,
  ) {}

  static async start(): Promise<FakeTool> {
    const holder: { tool?: FakeTool } = {};
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const path = request.url ?? '/';
        const received: ReceivedRequest = { path, headers: request.headers, raw, body: safeJson(raw) };
        const list = holder.tool!.received.get(path) ?? [];
        list.push(received);
        holder.tool!.received.set(path, list);
        const behaviour: Behaviour = holder.tool!.behaviours.get(path) ?? (() => ({ status: 404 }));
        const { status, body, delayMs, headers } = behaviour(received, list.length - 1);
        const send = (): void => {
          if (response.destroyed) return;
          response.writeHead(status, { 'content-type': 'application/json', ...headers });
          response.end(body === undefined ? '' : JSON.stringify(body));
        };
        if (!delayMs) return send();
        const timer = setTimeout(() => {
          holder.tool!.timers.delete(timer);
          send();
        }, delayMs);
        holder.tool!.timers.add(timer);
      });
    });
    server.on('connection', () => {
      if (holder.tool) holder.tool.connections++;
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    holder.tool = new FakeTool(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return holder.tool;
  }

  /** A fresh path with its behaviour; returns the tool URL to invoke. */
  route(behaviour: Behaviour): string {
    const path = `/tool-${++this.routes}`;
    this.behaviours.set(path, behaviour);
    return `${this.baseUrl}${path}`;
  }

  requestsTo(url: string): ReceivedRequest[] {
    return this.received.get(new URL(url).pathname) ?? [];
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function safeJson(raw: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
