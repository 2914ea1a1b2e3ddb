import 'reflect-metadata';
import { Global, Module, type DynamicModule, type Type } from '@nestjs/common';
import { APP_FILTER, NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyInstance } from 'fastify';
import type { KV } from '@nats-io/kv';
import { BUCKETS, STREAMS, SHUTDOWN_GRACE_MS } from '@backchannel/contracts';
import { MeshConfig, loadConfig, portOf } from '@backchannel/config';
import { connectNats, ensureBucket, ensureStream, type NatsHandles } from '@backchannel/messaging';
import { Metrics, NestPinoLogger, createLogger, type Logger } from '@backchannel/observability';
import { EnvelopeFilter } from './envelope.filter.js';
import { sendError, toHttpApiError } from './error-rendering.js';
import { HealthController } from './health.controller.js';
import { INTERNAL_PREFIX, internalAuthCheck } from './internal-auth.js';
import { Readiness } from './readiness.js';
import { LOGGER, NATS_HANDLES } from './tokens.js';
import { randomUUID } from 'node:crypto';

/** What the bootstrap hands every service: config, logger, metrics, broker handles, buckets. */
export interface ServiceContext {
  name: string;
  config: MeshConfig;
  logger: Logger;
  metrics: Metrics;
  nats: NatsHandles;
  readiness: Readiness;
  buckets: ReadonlyMap<string, KV>;
}

export interface ServiceDefinition {
  /** The deployable's name, as in scripts/services.mjs. */
  name: string;
  /** The app's composition root, built from the context. */
  module: (context: ServiceContext) => DynamicModule | Type<unknown>;
  /** Largest request body the service accepts, bytes. */
  bodyLimit?: (config: MeshConfig) => number;
  /** Fastify plugins and hooks (rate limits, headers, parsers), registered before routes. */
  configureHttp?: (fastify: FastifyInstance, context: ServiceContext) => Promise<void>;
}

export interface RunningService {
  context: ServiceContext;
  app: NestFastifyApplication;
  /** Base URL of the HTTP listener, e.g. `http://127.0.0.1:40123`. */
  url: string;
  port: number;
  /** Graceful stop: readiness drops, in-flight work finishes, the connection drains. */
  stop(): Promise<void>;
}

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
  const readiness = new Readiness();
  const nats = await connectNats(config.NATS_URL, definition.name, {
    user: config.NATS_USER,
    pass: config.NATS_PASSWORD,
  });
  watchConnection(nats, readiness, logger);
  await Promise.all(STREAMS.map((spec) => ensureStream(nats.jsm, spec, config.STREAM_REPLICAS)));
  const buckets = new Map<string, KV>();
  for (const spec of BUCKETS) buckets.set(spec.bucket, await ensureBucket(nats.nc, spec, config.STREAM_REPLICAS));
  const context: ServiceContext = { name: definition.name, config, logger, metrics, nats, readiness, buckets };

  const app = await NestFactory.create<NestFastifyApplication>(
    rootModule(definition, context),
    new FastifyAdapter({
      bodyLimit: definition.bodyLimit?.(config) ?? 1024 * 1024,
      genReqId: requestIdOf,
      requestIdHeader: false,
      forceCloseConnections: 'idle',
      return503OnClosing: true,
    }),
    { logger: new NestPinoLogger(logger), abortOnError: false },
  );
  const fastify = app.getHttpAdapter().getInstance();
  const checkInternalAuth = internalAuthCheck(config.INTERNAL_API_TOKEN);
  fastify.addHook('onRequest', async (request, reply) => {
    void reply.header('x-request-id', request.id);
    if (request.url.startsWith(INTERNAL_PREFIX)) checkInternalAuth(request.headers.authorization);
  });
  observeHttp(fastify, metrics);
  fastify.setErrorHandler((error, request, reply) => sendError(reply, request, toHttpApiError(error, logger)));
  await definition.configureHttp?.(fastify, context);
  await app.listen(options.port ?? portOf(config, definition.name), config.HOST);
  readiness.markStarted();
  const address = fastify.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  logger.info({ port }, `${definition.name} ready`);

  let stopping: Promise<void> | undefined;
  const host = config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST;
  const stop = (): Promise<void> => {
    stopping ??= gracefulStop(app, context);
    return stopping;
  };
  return { context, app, url: `http://${host}:${port}`, port, stop };
}

/**
 * The `main` of every service: start, then stop gracefully on SIGTERM or SIGINT and exit
 * 0 (CONTRACT.md §8). An invalid configuration exits 1 with the problems listed.
 */
export async function runService(definition: ServiceDefinition): Promise<void> {
  let service: RunningService;
  try {
    service = await startService(definition);
  } catch (error) {
    process.stderr.write(`${definition.name}: cannot start: ${(error as Error).message}\n`);
    process.exit(1);
  }
  const onSignal = (): void => {
    const hardStop = setTimeout(() => process.exit(0), SHUTDOWN_GRACE_MS + 3_000);
    hardStop.unref();
    void service.stop().then(
      () => process.exit(0),
      () => process.exit(0),
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}

async function gracefulStop(app: NestFastifyApplication, context: ServiceContext): Promise<void> {
  context.readiness.markStopping();
  const grace = new Promise<void>((resolve) => setTimeout(resolve, SHUTDOWN_GRACE_MS).unref());
  await Promise.race([app.close(), grace]);
  await Promise.race([context.nats.nc.drain().catch(() => undefined), grace]);
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
      { provide: Readiness, useValue: context.readiness },
      { provide: LOGGER, useValue: context.logger },
      { provide: NATS_HANDLES, useValue: context.nats },
      { provide: APP_FILTER, useClass: EnvelopeFilter },
    ],
    exports: [MeshConfig, Metrics, Readiness, LOGGER, NATS_HANDLES],
  };

  @Module({})
  class ServiceRootModule {}

  return { module: ServiceRootModule, imports: [core, definition.module(context)] };
}

function watchConnection(nats: NatsHandles, readiness: Readiness, logger: Logger): void {
  void (async () => {
    for await (const status of nats.nc.status()) {
      if (status.type === 'disconnect') {
        readiness.setBrokerConnected(false);
        logger.warn('broker disconnected');
      } else if (status.type === 'reconnect') {
        readiness.setBrokerConnected(true);
        logger.info('broker reconnected');
      }
    }
  })();
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
