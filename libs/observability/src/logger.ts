import { pino, type Logger as PinoLogger } from 'pino';
import type { LoggerService } from '@nestjs/common';
import { REDACTED_PATHS, scrubSecrets, scrubString } from './redaction.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Logger = PinoLogger;

export interface LoggerOptions {
  service: string;
  level: LogLevel;
  /** Secrets known at boot (the internal API token) that must never appear in a line. */
  knownSecrets?: readonly string[];
  /** Where lines go; stdout by default. Tests pass a stream to read the lines back. */
  destination?: NodeJS.WritableStream;
}

/**
 * The JSON line logger of every service: pino with path redaction plus a value scrub,
 * so no callback token, API key, signing secret or internal token reaches a line.
 *
 * A line about a request or a message carries its `trace_id` because the code writing it
 * says so (`{ trace_id }` in the logged object), not through an implicit async context:
 * on Node 20, one `AsyncLocalStorage.run` anywhere in a process turns on a promise hook
 * for every promise it ever makes, and that cost about a tenth of each service's CPU
 * (docs/benchmarks.md, item 12) for the handful of lines that needed it.
 */
export function createLogger(options: LoggerOptions): Logger {
  const secrets = options.knownSecrets ?? [];
  return pino(
    {
      level: options.level,
      base: { service: options.service },
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_PATHS, censor: '[REDACTED]' },
      formatters: {
        level: (label) => ({ level: label }),
        log: (object) => scrubSecrets(object, secrets) as Record<string, unknown>,
      },
      hooks: {
        logMethod(args, method) {
          const scrubbed = args.map((arg) => (typeof arg === 'string' ? scrubString(arg, secrets) : arg));
          method.apply(this, scrubbed as Parameters<typeof method>);
        },
      },
    },
    options.destination ?? pino.destination({ sync: false }),
  );
}

/** Nest's logger interface over our pino logger, so framework lines are JSON too. */
export class NestPinoLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, context?: string): void {
    this.logger.info({ context }, String(message));
  }
  error(message: unknown, trace?: string, context?: string): void {
    this.logger.error({ context, trace }, String(message));
  }
  warn(message: unknown, context?: string): void {
    this.logger.warn({ context }, String(message));
  }
  debug(message: unknown, context?: string): void {
    this.logger.debug({ context }, String(message));
  }
  verbose(message: unknown, context?: string): void {
    this.logger.debug({ context }, String(message));
  }
}
