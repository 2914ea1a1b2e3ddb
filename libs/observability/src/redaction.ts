import { SECRET_VALUE_PREFIXES } from '@backchannel/contracts';

/**
 * Paths pino removes from every log object: headers and fields that carry secrets.
 * Redaction by path catches the expected places; `scrubSecrets` catches secrets that
 * end up inside other strings (an error message quoting a header, say).
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["x-callback-token"]',
  'headers.authorization',
  'headers["x-callback-token"]',
  '*.token',
  '*.api_key',
  '*.signing_secret',
  'token',
  'api_key',
  'signing_secret',
  'internal_api_token',
];

const SECRET_PATTERN = new RegExp(`(${SECRET_VALUE_PREFIXES.join('|')})[A-Za-z0-9_+/=-]{8,}`, 'g');

/** Replaces every secret-looking value inside a string. */
export function scrubString(value: string, extraSecrets: readonly string[] = []): string {
  let scrubbed = value.replace(SECRET_PATTERN, '$1[REDACTED]');
  for (const secret of extraSecrets) {
    if (secret.length >= 8 && scrubbed.includes(secret)) scrubbed = scrubbed.split(secret).join('[REDACTED]');
  }
  return scrubbed;
}

/** Deep copy of a log object with every string scrubbed (bounded depth: logs are small). */
export function scrubSecrets(value: unknown, extraSecrets: readonly string[] = [], depth = 0): unknown {
  if (typeof value === 'string') return scrubString(value, extraSecrets);
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => scrubSecrets(item, extraSecrets, depth + 1));
  if (value instanceof Error) {
    return {
      type: value.name,
      message: scrubString(value.message, extraSecrets),
      stack: scrubString(value.stack ?? '', extraSecrets),
    };
  }
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) copy[key] = scrubSecrets(item, extraSecrets, depth + 1);
  return copy;
}
