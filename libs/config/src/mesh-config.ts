import { Transform } from 'class-transformer';
import { IsBoolean, IsIn, IsInt, IsOptional, IsString, IsUrl, Max, Min, MinLength } from 'class-validator';
import { MAX_CALLBACK_MAX_BODY_BYTES } from '@backchannel/contracts';
import { CRASH_POINTS, type CrashPointName } from './crash-point.js';

const toInt = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : value;
const toBool = ({ value }: { value: unknown }): unknown => {
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  return value;
};

/**
 * Every variable of CONTRACT.md §8, validated once at boot. All services read the same
 * set so one ConfigMap configures the whole mesh; each uses what it needs.
 */
export class MeshConfig {
  /** Broker URL(s), comma-separated. Required: a service never guesses a broker. */
  @IsString()
  @MinLength(1, { message: 'NATS_URL is required (npm start sets it; a service started alone needs it)' })
  NATS_URL!: string;

  /** Broker credentials of this service (deployments give each service its own NATS user). */
  @IsOptional() @IsString() @MinLength(1) NATS_USER?: string;
  @IsOptional() @IsString() @MinLength(1) NATS_PASSWORD?: string;

  /** Address the HTTP listener binds: loopback on one machine, `0.0.0.0` in a container. */
  @IsString() @MinLength(1) HOST = '127.0.0.1';

  @IsOptional()
  @IsUrl({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] })
  PUBLIC_BASE_URL?: string;

  @IsOptional()
  @IsString()
  @MinLength(16, { message: 'INTERNAL_API_TOKEN must be at least 16 characters' })
  INTERNAL_API_TOKEN?: string;

  @Transform(toInt) @IsInt() @Min(0) @Max(65535) INGRESS_PORT = 8080;
  @Transform(toInt) @IsInt() @Min(0) @Max(65535) TOKEN_AUTHORITY_PORT = 8081;
  @Transform(toInt) @IsInt() @Min(0) @Max(65535) SEQUENCER_PORT = 8082;
  @Transform(toInt) @IsInt() @Min(0) @Max(65535) INJECTOR_PORT = 8083;
  @Transform(toInt) @IsInt() @Min(0) @Max(65535) DISPATCHER_PORT = 8084;

  @Transform(toInt) @IsInt() @Min(1_000) @Max(86_400_000) REPLAY_TTL_MS = 600_000;

  @Transform(toInt)
  @IsInt()
  @Min(1_024)
  @Max(MAX_CALLBACK_MAX_BODY_BYTES)
  CALLBACK_MAX_BODY_BYTES = 262_144;

  @Transform(toInt) @IsInt() @Min(1) @Max(1_000_000) INGRESS_RATE_LIMIT_PER_SOURCE = 500;
  /**
   * Tenant API requests per second per API key (by key id; requests without a valid key
   * count per client address) before 429 `rate_limited` (docs/injector.md).
   */
  @Transform(toInt) @IsInt() @Min(1) @Max(1_000_000) INJECTOR_RATE_LIMIT_PER_KEY = 100;
  @Transform(toInt) @IsInt() @Min(1) @Max(1_024) SEQUENCER_PARTITIONS = 16;
  @Transform(toInt) @IsInt() @Min(1) @Max(1_000_000) SEQUENCER_MAX_HELD_PER_CONVERSATION = 1_000;
  @Transform(toInt) @IsInt() @Min(1) @Max(100_000) DISPATCHER_MAX_CONCURRENCY = 256;
  @Transform(toInt) @IsInt() @IsIn([1, 3, 5]) STREAM_REPLICAS = 1;
  @Transform(toBool) @IsBoolean() DISPATCHER_ALLOW_PRIVATE_NETWORKS = false;
  @IsIn(['debug', 'info', 'warn', 'error']) LOG_LEVEL: 'debug' | 'info' | 'warn' | 'error' = 'info';

  /**
   * OpenTelemetry, by its standard variables: `none` (the default) makes no span at all;
   * `otlp` exports OTLP/HTTP to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (or
   * OTEL_EXPORTER_OTLP_ENDPOINT + `/v1/traces`); `console` prints spans. The exporter
   * itself also honours OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT and _COMPRESSION.
   */
  @IsIn(['none', 'otlp', 'console']) OTEL_TRACES_EXPORTER: 'none' | 'otlp' | 'console' = 'none';
  @IsOptional()
  @IsUrl({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] })
  OTEL_EXPORTER_OTLP_ENDPOINT?: string;
  @IsOptional()
  @IsUrl({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] })
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?: string;
  @IsOptional() @IsString() @MinLength(1) OTEL_SERVICE_NAME?: string;
  /** Milliseconds spans are batched before export (OpenTelemetry's default 5,000). */
  @IsOptional() @Transform(toInt) @IsInt() @Min(1) @Max(60_000) OTEL_BSP_SCHEDULE_DELAY?: number;

  /**
   * For fault-injection tests only, never for operating the mesh: the named crash point
   * (one of `CRASH_POINTS`) at which the service kills itself with SIGKILL. Unset, no
   * crash point does anything; set while `NODE_ENV=production` (as in the image), the
   * service refuses to start. See docs/operations.md.
   */
  @IsOptional()
  @IsIn(CRASH_POINTS, { message: `BACKCHANNEL_CRASH_POINT must be one of ${CRASH_POINTS.join(', ')}` })
  BACKCHANNEL_CRASH_POINT?: CrashPointName;
}

/** Where OTLP/HTTP spans go, from the standard variables (none: the exporter's own default). */
export function otlpTracesUrl(config: MeshConfig): string | undefined {
  if (config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (!config.OTEL_EXPORTER_OTLP_ENDPOINT) return undefined;
  return `${config.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`;
}

/** The port each service listens on, by service name. */
export function portOf(config: MeshConfig, service: string): number {
  switch (service) {
    case 'callback-ingress':
      return config.INGRESS_PORT;
    case 'token-authority':
      return config.TOKEN_AUTHORITY_PORT;
    case 'ordering-sequencer':
      return config.SEQUENCER_PORT;
    case 'conversation-injector':
      return config.INJECTOR_PORT;
    case 'tool-dispatcher':
      return config.DISPATCHER_PORT;
    default:
      throw new Error(`unknown service ${service}`);
  }
}

/** `PUBLIC_BASE_URL`, defaulting to the ingress on loopback (CONTRACT.md §8). */
export function publicBaseUrl(config: MeshConfig): string {
  return (config.PUBLIC_BASE_URL ?? `http://127.0.0.1:${config.INGRESS_PORT}`).replace(/\/+$/, '');
}
