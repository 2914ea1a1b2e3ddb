/**
 * Identifier formats of CONTRACT.md §1. Every id is checked against these before it
 * reaches a subject, a store key or a log line.
 */

/** `conversation_id` and `tenant_id`: 1–128 chars of `[A-Za-z0-9_:-]`, first alphanumeric. */
export const EXTERNAL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_:-]{0,127}$/;

/** `work_item_id`: `wi_` + a ULID (Crockford base32, 26 chars). */
export const WORK_ITEM_ID_PATTERN = /^wi_[0-9A-HJKMNP-TV-Z]{26}$/;

/** Tenant API key id: `key_` + a ULID. */
export const API_KEY_ID_PATTERN = /^key_[0-9A-HJKMNP-TV-Z]{26}$/;

/** Callback token: `cbt_` + 43 chars base64url (256 random bits). */
export const CALLBACK_TOKEN_PATTERN = /^cbt_[A-Za-z0-9_-]{43}$/;

/** Tenant API key: `bck_` + 43 chars base64url. */
export const API_KEY_PATTERN = /^bck_[A-Za-z0-9_-]{43}$/;

/** Signing secret of a tool (Standard Webhooks): `whsec_` + base64. */
export const SIGNING_SECRET_PATTERN = /^whsec_[A-Za-z0-9+/=]{16,256}$/;

export const CALLBACK_TOKEN_PREFIX = 'cbt_';
export const API_KEY_PREFIX = 'bck_';
export const WORK_ITEM_ID_PREFIX = 'wi_';
export const API_KEY_ID_PREFIX = 'key_';

/** Value prefixes of every secret the mesh handles; log redaction scrubs strings holding them. */
export const SECRET_VALUE_PREFIXES = ['cbt_', 'bck_', 'whsec_'] as const;

export function isExternalId(value: unknown): value is string {
  return typeof value === 'string' && EXTERNAL_ID_PATTERN.test(value);
}

export function isWorkItemId(value: unknown): value is string {
  return typeof value === 'string' && WORK_ITEM_ID_PATTERN.test(value);
}

export function isApiKeyId(value: unknown): value is string {
  return typeof value === 'string' && API_KEY_ID_PATTERN.test(value);
}

export function isCallbackToken(value: unknown): value is string {
  return typeof value === 'string' && CALLBACK_TOKEN_PATTERN.test(value);
}

export function isApiKey(value: unknown): value is string {
  return typeof value === 'string' && API_KEY_PATTERN.test(value);
}

/**
 * Encodes an external id as a KV key token: KV keys refuse `:` (TOOLCHAIN.md), so it
 * becomes `=` (never part of an external id), keeping keys readable and reversible.
 */
export function kvSafeId(id: string): string {
  return id.replaceAll(':', '=');
}
