import 'reflect-metadata';
import { Global, Module, type DynamicModule, type Type } from '@nestjs/common';
import { APP_FILTER, NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { KV } from '@nats-io/kv';
import {
  ApiError,
  BUCKETS,
  CONTRACT_HEADERS,
  RETRY_AFTER_UNAVAILABLE_S,
  SHUTDOWN_GRACE_MS,
  STREAMS,
  envelopeOf,
} from '@backchannel/contracts';
import { MeshConfig, loadConfig, otlpTracesUrl, portOf } from '@backchannel/config';
import { connectNats, ensureBucket, ensureStream, type NatsHandles } from '@backchannel/messaging';
import { Metrics, NestPinoLogger, Tracing, createLogger, type Logger } from '@backchannel/observability';
import { EnvelopeFilter } from './envelope.filter.js';
import { sendError } from './error-rendering.js';
import { HealthController } from './health.controller.js';
import { INTERNAL_PREFIX, internalAuthCheck } from './internal-auth.js';
import { Readiness } from './readiness.js';
import { isRouteUnder } from './route-prefix.js';
import { traceRequests } from './request-trace.js';
import { LOGGER, NATS_HANDLES } from './tokens.js';
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';

/** What the bootstrap hands every service: config, logger, metrics, broker handles, buckets. */
export interface ServiceContext {
  name: string;
  config: MeshConfig;
  logger: Logger;
  metrics: Metrics;
  nats: NatsHandles;
  readiness: Readiness;
  buckets: ReadonlyMap<string, KV>;
  /** OpenTelemetry spans (off unless OTEL_TRACES_EXPORTER says otherwise). */
  tracing: Tracing;
}

export interface ServiceDefinition {
  /** The deployable's name, as in scripts/services.mjs. */
  name: string;
  /** The app's composition root, built from the context. */
  module: (context: ServiceContext) => DynamicModule | Type<unknown>;
  /** Largest request body the service accepts, bytes. */
  bodyLimit?: (config: MeshConfig) => number;
  /**
   * Fastify plugins and hooks (rate limits, headers, parsers), registered before routes.
   * `app` is built (its providers exist) but not yet initialised: a hook may use a provider.
   */
  configureHttp?: (fastify: FastifyInstance, context: ServiceContext, app: NestFastifyApplication) => Promise<void>;
}

export interface RunningService {
  context: ServiceContext;
  app: NestFastifyApplication;
  /** Base URL of the HTTP listener, e.g. `http://127.0.0.1:40123`. */
  url: string;
  port: number;
  /** Graceful stop: readiness drops, in-flight work finishes, the connection drains. */
  stop(options?: StopOptions): Promise<void>;
}

export interface StopOptions {
  /**
   * How long the listener stays open after readiness drops, answering (new callbacks with
   * 503) and closing every keep-alive connection it answers on. `runService` (a real
   * process sent SIGTERM) uses `SHUTDOWN_READINESS_DELAY_MS`; in-process tests stop at once.
   */
  readinessDelayMs?: number;
}

/**
 * After SIGTERM, `/readyz` answers 503 for this long before the listener closes. Closing
 * at once would cut keep-alive connections a client is writing a request on at that
 * moment (seen in test/mesh/shutdown.e2e-spec.ts: socket errors, not answers); during the
 * delay every answer carries `Connection: close`, so busy clients leave cleanly, and a
 * load balancer polling readiness sees 503 before connections are refused. Kubernetes
 * adds its own preStop pause in front of this (docs/deploy.md).
 */
export const SHUTDOWN_READINESS_DELAY_MS = 1_000;

export interface StartOptions {
  /** Environment to read instead of `process.env` (tests). */
  env?: Record<string, string | undefined>;
  /** Port override (tests pass 0). */
  port?: number;
  /** Where log lines go (tests capture them). */
  logDestination?: NodeJS.WritableStream;
}

/** Starts one service: validated config, broker connection, provisioning, HTTP. */
export async function startService(definition: ServiceDefinition, options: StartOptions = {}): Promise<RunningService> {
  const config = loadConfig(options.env);
  const logger = createLogger({
    service: definition.name,
    level: config.LOG_LEVEL,
    knownSecrets: [config.INTERNAL_API_TOKEN, config.NATS_PASSWORD].filter((secret): secret is string => !!secret),
    destination: options.logDestination,
  });
  const metrics = new Metrics(definition.name);
  const tracing = Tracing.start({
    service: config.OTEL_SERVICE_NAME ?? definition.name,
    exporter: config.OTEL_TRACES_EXPORTER,
    otlpTracesUrl: otlpTracesUrl(config),
    ...(config.OTEL_BSP_SCHEDULE_DELAY !== undefined ? { scheduledDelayMs: config.OTEL_BSP_SCHEDULE_DELAY } : {}),
  });
  const readiness = new Readiness();
  const nats = await connectNats(
    config.NATS_URL,
    definition.name,
    { user: config.NATS_USER, pass: config.NATS_PASSWORD },
    config.STREAM_REPLICAS > 1,
  );
  watchConnection(nats, readiness, logger, metrics);
  await Promise.all(STREAMS.map((spec) => ensureStream(nats.jsm, spec, config.STREAM_REPLICAS)));
  const buckets = new Map<string, KV>();
  for (const spec of BUCKETS) buckets.set(spec.bucket, await ensureBucket(nats.nc, spec, config.STREAM_REPLICAS));
  const context: ServiceContext = { name: definition.name, config, logger, metrics, nats, readiness, buckets, tracing };

  const app = await NestFactory.create<NestFastifyApplication>(
    rootModule(definition, context),
    new FastifyAdapter({
      bodyLimit: definition.bodyLimit?.(config) ?? 1024 * 1024,
      genReqId: requestIdOf,
      requestIdHeader: false,
      forceCloseConnections: 'idle',
      // Fastify's own 503 while closing is not the envelope and has no Retry-After: the
      // hook below answers those requests instead (CONTRACT.md §5, §8).
      return503OnClosing: false,
      // Requests too malformed to reach a route still get the envelope (CONTRACT.md §5).
      // The detail is ours, never the router's message: that one quotes the raw URL, which
      // may hold anything a client put there, a key included (CONTRACT.md §5).
      frameworkErrors: (_error: Error, request: FastifyRequest, reply: FastifyReply) =>
        sendError(reply, request, new ApiError('invalid_request', 'the request URL could not be routed')),
      clientErrorHandler: answerMalformedConnection,
    }),
    // Nest's body parsers would add application/x-www-form-urlencoded: every API here is
    // JSON (CONTRACT.md §2–§4), so only Fastify's JSON parser stays; other types are 415.
    { logger: new NestPinoLogger(logger), abortOnError: false, bodyParser: false },
  );
  const fastify = app.getHttpAdapter().getInstance();
  fastify.removeContentTypeParser(['text/plain']);
  traceRequests(fastify, logger, tracing);
  const checkInternalAuth = internalAuthCheck(config.INTERNAL_API_TOKEN);
  fastify.addHook('onRequest', async (request, reply) => {
    void reply.header('x-request-id', request.id);
    if (isRouteUnder(request, INTERNAL_PREFIX)) checkInternalAuth(request.headers.authorization);
  });
  // Shutting down: no answer leaves a keep-alive connection open behind it.
  fastify.addHook('onSend', async (_request, reply) => {
    if (readiness.isStopping) void reply.header('connection', 'close');
  });
  observeHttp(fastify, metrics);
  await definition.configureHttp?.(fastify, context, app);
  // Once the listener is closing, a request still arriving on an open keep-alive
  // connection is refused with the contract's 503 `unavailable` and `Retry-After`
  // (retrying elsewhere is safe). After the app's own hooks, so its headers apply too.
  let closing = false;
  fastify.addHook('onRequest', (_request, _reply, done) => {
    if (closing) done(shuttingDown());
    else done();
  });
  await app.listen(options.port ?? portOf(config, definition.name), config.HOST);
  readiness.markStarted();
  const address = fastify.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  logger.info({ port }, `${definition.name} ready`);

  let stopping: Promise<void> | undefined;
  const host = config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST;
  const stop = (stopOptions: StopOptions = {}): Promise<void> => {
    stopping ??= gracefulStop(app, context, stopOptions.readinessDelayMs ?? 0, () => (closing = true));
    return stopping;
  };
  return { context, app, url: `http://${host}:${port}`, port, stop };
}

/**
 * The `main` of every service: start, then stop gracefully on SIGTERM or SIGINT and exit
 * 0 (CONTRACT.md §8). An invalid configuration exits 1 with the problems listed.
 *
 * The handlers stay installed for the whole life of the process: under `npm start` a
 * service gets the process group's signal, the launcher's SIGTERM and maybe a second
 * Ctrl-C, and a repeated signal must not fall back to the default action (death by
 * signal, cutting what is in flight). A signal that comes while the service is still
 * starting (e.g. waiting for its broker) exits 0 at once: no HTTP listener is open yet,
 * so no client has work in flight, and the consumers survive a crash at any point anyway.
 */
export async function runService(definition: ServiceDefinition): Promise<void> {
  let service: RunningService | undefined;
  let signalled = false;
  const onSignal = (): void => {
    if (signalled) return;
    signalled = true;
    if (!service) process.exit(0);
    const hardStop = setTimeout(() => process.exit(0), SHUTDOWN_READINESS_DELAY_MS + SHUTDOWN_GRACE_MS + 3_000);
    hardStop.unref();
    void service.stop({ readinessDelayMs: SHUTDOWN_READINESS_DELAY_MS }).then(
      () => process.exit(0),
      () => process.exit(0),
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    service = await startService(definition);
  } catch (error) {
    process.stderr.write(`${definition.name}: cannot start: ${(error as Error).message}\n`);
    process.exit(1);
  }
}

async function gracefulStop(
  app: NestFastifyApplication,
  context: ServiceContext,
  readinessDelayMs: number,
  markClosing: () => void,
): Promise<void> {
  context.readiness.markStopping();
  if (readinessDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, readinessDelayMs));
  markClosing();
  const grace = new Promise<void>((resolve) => setTimeout(resolve, SHUTDOWN_GRACE_MS).unref());
  await Promise.race([app.close(), grace]);
  await Promise.race([context.nats.nc.drain().catch(() => undefined), grace]);
  await Promise.race([context.tracing.shutdown(), grace]);
  await context.nats.nc.close().catch(() => undefined);
  context.logger.info('stopped');
  context.logger.flush();
}

function rootModule(definition: ServiceDefinition, context: ServiceContext): DynamicModule {
  @Global()
  @Module({})
  class ServiceCoreModule {}

  const core: DynamicModule = {
    module: ServiceCoreModule,
    global: true,
    controllers: [HealthController],
    providers: [
      { provide: MeshConfig, useValue: context.config },
      { provide: Metrics, useValue: context.metrics },
      { provide: Tracing, useValue: context.tracing },
      { provide: Readiness, useValue: context.readiness },
      { provide: LOGGER, useValue: context.logger },
      { provide: NATS_HANDLES, useValue: context.nats },
      { provide: APP_FILTER, useClass: EnvelopeFilter },
    ],
    exports: [MeshConfig, Metrics, Tracing, Readiness, LOGGER, NATS_HANDLES],
  };

  @Module({})
  class ServiceRootModule {}

  return { module: ServiceRootModule, imports: [core, definition.module(context)] };
}

function watchConnection(nats: NatsHandles, readiness: Readiness, logger: Logger, metrics: Metrics): void {
  const connected = metrics.gauge('backchannel_nats_connected', 'Whether the broker connection is up (1) or not (0)');
  connected.set(1);
  void (async () => {
    for await (const status of nats.nc.status()) {
      if (status.type === 'disconnect') {
        readiness.setBrokerConnected(false);
        connected.set(0);
        logger.warn('broker disconnected');
      } else if (status.type === 'reconnect') {
        readiness.setBrokerConnected(true);
        connected.set(1);
        logger.info('broker reconnected');
      }
    }
  })().finally(() => connected.set(0));
}

function shuttingDown(): ApiError {
  return new ApiError('unavailable', 'the service is shutting down; retry', {
    headers: { [CONTRACT_HEADERS.retryAfter]: String(RETRY_AFTER_UNAVAILABLE_S) },
  });
}

/** A request the HTTP parser itself refused: a 400 envelope, then the connection closes. */
function answerMalformedConnection(_error: Error, socket: Duplex): void {
  if (!socket.writable) return;
  const body = JSON.stringify(
    envelopeOf(new ApiError('invalid_request', 'the HTTP request could not be parsed'), { requestId: randomUUID() }),
  );
  socket.end(
    `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** Requests by route template and status class: never ids (routes are templates). */
function observeHttp(fastify: FastifyInstance, metrics: Metrics): void {
  const requests = metrics.counter('backchannel_http_requests_total', 'HTTP requests answered', [
    'route',
    'status_class',
  ]);
  const duration = metrics.histogram('backchannel_http_request_duration_seconds', 'HTTP request handling time', [
    'route',
  ]);
  fastify.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    requests.inc({ route, status_class: `${Math.floor(reply.statusCode / 100)}xx` });
    duration.observe({ route }, reply.elapsedTime / 1000);
  });
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

function requestIdOf(request: { headers: Record<string, unknown> }): string {
  const given = request.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}
