import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import { MeshConfig } from './mesh-config.js';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

const SECRET_VARIABLES = new Set(['INTERNAL_API_TOKEN', 'NATS_PASSWORD']);

/**
 * Reads and validates the environment once. The only place `process.env` is read; the
 * message names the variable and the rule, never a secret's value.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): MeshConfig {
  const known = Object.keys(new MeshConfig()).concat([
    'NATS_URL',
    'PUBLIC_BASE_URL',
    'INTERNAL_API_TOKEN',
    'NATS_USER',
    'NATS_PASSWORD',
    'BACKCHANNEL_CRASH_POINT',
    'OTEL_EXPORTER_OTLP_ENDPOINT',
    'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
    'OTEL_SERVICE_NAME',
    'OTEL_BSP_SCHEDULE_DELAY',
  ]);
  const plain: Record<string, string> = {};
  for (const key of known) {
    const value = env[key];
    if (value !== undefined && value !== '') plain[key] = value;
  }
  const config = plainToInstance(MeshConfig, plain);
  const errors = validateSync(config, { forbidUnknownValues: true });
  if (errors.length > 0) {
    const problems = errors.map((error) => {
      const rules = Object.values(error.constraints ?? {}).join('; ');
      const shown = SECRET_VARIABLES.has(error.property) ? '(hidden)' : JSON.stringify(error.value);
      return `${error.property}=${shown}: ${rules}`;
    });
    throw new ConfigError(problems);
  }
  if (config.BACKCHANNEL_CRASH_POINT !== undefined && env.NODE_ENV === 'production') {
    throw new ConfigError([
      `BACKCHANNEL_CRASH_POINT=${JSON.stringify(config.BACKCHANNEL_CRASH_POINT)}: crash points are for fault-injection tests and are refused when NODE_ENV=production`,
    ]);
  }
  return config;
}
