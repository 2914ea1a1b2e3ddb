import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';
import {
  CALLBACK_TOKEN_PATTERN,
  ERROR_CODES,
  MAX_MESSAGE_CONTENT_LENGTH,
  MAX_PROGRESS_ID_LENGTH,
  MAX_PROGRESS_MESSAGE_LENGTH,
  WORK_ITEM_ID_PATTERN,
  isErrorCode,
} from '@backchannel/contracts';
import { MAX_CALLBACK_JSON_DEPTH, outcomeOfCallback, progressOfBody } from '../src/callbacks/callback-body.js';

/**
 * docs/openapi/provider-api.yaml against the contract (CONTRACT.md §3, §5) and the code:
 * every answer of the contract's table is documented, every error code is a real one
 * with its real status and title, and the documented examples and limits are the ones
 * the ingress enforces.
 */

type Node = Record<string, any>;

const document = parse(readFileSync(join(process.cwd(), 'docs/openapi/provider-api.yaml'), 'utf8')) as Node;
const FINAL = '/api/v1/webhooks/{work_item_id}';
const PROGRESS = '/api/v1/webhooks/{work_item_id}/progress';

/** The contract's answer table: status → the codes that answer it (none for 2xx). */
const CONTRACT_ANSWERS: Record<string, Record<string, string[]>> = {
  [FINAL]: {
    '202': [],
    '200': [],
    '400': ['invalid_request'],
    '401': ['invalid_token'],
    '409': ['token_already_used'],
    '410': ['work_item_closed', 'conversation_ended'],
    '413': ['payload_too_large'],
    '415': ['unsupported_media_type'],
    '429': ['rate_limited'],
    '503': ['unavailable'],
  },
  [PROGRESS]: {
    '202': [],
    '200': [],
    '400': ['invalid_request'],
    '401': ['invalid_token'],
    '410': ['work_item_closed', 'conversation_ended'],
    '413': ['payload_too_large'],
    '415': ['unsupported_media_type'],
    '429': ['rate_limited', 'progress_limit_reached'],
    '503': ['unavailable'],
  },
};

/** Follows local `$ref`s (`#/components/...`). */
function resolve(node: Node): Node {
  let current = node;
  for (let hops = 0; typeof current.$ref === 'string'; hops++) {
    if (hops > 10) throw new Error(`$ref loop at ${node.$ref}`);
    const ref = current.$ref;
    expect(ref.startsWith('#/')).toBe(true);
    current = ref
      .slice(2)
      .split('/')
      .reduce<Node>((at, key) => {
        const next = at?.[key.replaceAll('~1', '/').replaceAll('~0', '~')];
        if (next === undefined) throw new Error(`unresolved $ref ${ref}`);
        return next;
      }, document);
  }
  return current;
}

/** Every value under `node` (refs followed), depth first. */
function* walk(node: unknown, seen = new Set<unknown>()): Generator<unknown> {
  if (node === null || typeof node !== 'object' || seen.has(node)) return;
  seen.add(node);
  yield node;
  const resolved = typeof (node as Node).$ref === 'string' ? resolve(node) : node;
  for (const child of Object.values(resolved)) yield* walk(child, seen);
}

function operation(path: string): Node {
  return document.paths[path].post as Node;
}

/** The example values of a response or request media type, by name. */
function examplesOf(media: Node): Record<string, unknown> {
  const named = Object.entries((media.examples ?? {}) as Record<string, Node>).map(
    ([name, example]) => [name, resolve(example).value] as const,
  );
  return Object.fromEntries(media.example !== undefined ? [['example', media.example], ...named] : named);
}

function errorCodesOf(response: Node): string[] {
  const examples = examplesOf(resolve(response).content['application/json']);
  return Object.values(examples).flatMap((value) =>
    (value as { errors: { code: string }[] }).errors.map((e) => e.code),
  );
}

describe('the provider API OpenAPI document', () => {
  it('is OpenAPI 3.1 with both endpoints, and every $ref resolves', () => {
    expect(document.openapi).toMatch(/^3\.1\.\d+$/);
    expect(Object.keys(document.paths).sort()).toEqual([FINAL, PROGRESS]);
    for (const node of walk(document)) {
      if (typeof (node as Node).$ref === 'string') expect(() => resolve(node as Node)).not.toThrow();
    }
  });

  it.each([FINAL, PROGRESS])('%s documents every answer of the contract, with its codes', (path) => {
    const responses = operation(path).responses as Record<string, Node>;
    for (const [status, codes] of Object.entries(CONTRACT_ANSWERS[path])) {
      expect(responses).toHaveProperty(status);
      const documented = status.startsWith('2') ? [] : errorCodesOf(responses[status]);
      expect([...new Set(documented)].sort()).toEqual(expect.arrayContaining(codes));
    }
    // Every error answer documented (the contract's and any more) is the envelope, with
    // codes whose status is that answer's.
    for (const [status, response] of Object.entries(responses).filter(([status]) => !status.startsWith('2'))) {
      const media = resolve(response).content['application/json'];
      expect(resolve(media.schema)).toBe(document.components.schemas.ErrorEnvelope);
      for (const code of errorCodesOf(response)) {
        expect(isErrorCode(code)).toBe(true);
        expect(`${code} ${ERROR_CODES[code as keyof typeof ERROR_CODES].status}`).toBe(`${code} ${status}`);
      }
    }
  });

  it.each([FINAL, PROGRESS])('%s gives Retry-After with 429 and 503', (path) => {
    for (const status of ['429', '503']) {
      const response = resolve(operation(path).responses[status]);
      expect(resolve(response.headers['Retry-After']).schema).toEqual({ type: 'integer', minimum: 1 });
    }
  });

  it('uses only error codes of libs/contracts, with their titles', () => {
    const enumerated = document.components.schemas.ErrorObject.properties.code.enum as string[];
    const inExamples: { code: string; title: string }[] = [];
    for (const node of walk(document)) {
      const errors = (node as Node).errors;
      if (Array.isArray(errors) && errors.every((error) => typeof error?.code === 'string')) inExamples.push(...errors);
    }
    // The provider's own errors in the request example carry its codes, not ours.
    const ours = inExamples.filter((error) => error.code !== 'upstream_timeout');
    expect(ours.length).toBeGreaterThan(10);
    for (const code of [...enumerated, ...ours.map((error) => error.code)]) {
      expect(Object.keys(ERROR_CODES)).toContain(code);
    }
    for (const error of ours) expect(error.title).toBe(ERROR_CODES[error.code as keyof typeof ERROR_CODES].title);
    expect([...new Set(ours.map((error) => error.code))].sort()).toEqual([...enumerated].sort());
  });

  it('states the id and token formats and the body limits the ingress enforces', () => {
    const { schemas, parameters, securitySchemes } = document.components;
    expect(parameters.WorkItemId.schema.pattern).toBe(WORK_ITEM_ID_PATTERN.source);
    expect(parameters.WorkItemId.example).toMatch(WORK_ITEM_ID_PATTERN);
    expect(securitySchemes.callbackToken).toMatchObject({ type: 'apiKey', in: 'header', name: 'x-callback-token' });
    expect(securitySchemes.callbackToken.description).toContain(CALLBACK_TOKEN_PATTERN.source);
    expect(schemas.MessageBody.properties.message.properties.content.maxLength).toBe(MAX_MESSAGE_CONTENT_LENGTH);
    expect(schemas.ProgressBody.properties.progress.properties.message.maxLength).toBe(MAX_PROGRESS_MESSAGE_LENGTH);
    expect(schemas.ProgressBody.properties.progress.properties.id.maxLength).toBe(MAX_PROGRESS_ID_LENGTH);
    expect(schemas.ResultBody.properties.result.description).toContain(`${MAX_CALLBACK_JSON_DEPTH} levels`);
  });

  it('its request examples pass the ingress shape checks, its 2xx examples are the answers', () => {
    const final = examplesOf(operation(FINAL).requestBody.content['application/json']);
    expect(outcomeOfCallback(final.tool_result, 'tool').state).toBe('completed');
    expect(outcomeOfCallback(final.llm_message, 'llm').state).toBe('completed');
    expect(outcomeOfCallback(final.failed, 'tool').state).toBe('failed');
    expect(outcomeOfCallback(final.failed, 'llm').state).toBe('failed');
    const progress = examplesOf(operation(PROGRESS).requestBody.content['application/json']);
    expect(progressOfBody(progress.progress).message).toBeTruthy();

    const answers = (path: string, status: string) =>
      examplesOf(resolve(operation(path).responses[status]).content['application/json']).example as Node;
    expect(answers(FINAL, '202')).toMatchObject({ status: 'accepted', duplicate: false });
    expect(answers(FINAL, '200')).toMatchObject({ status: 'accepted', duplicate: true });
    expect(answers(PROGRESS, '202')).toEqual({
      status: 'accepted',
      work_item_id: expect.stringMatching(WORK_ITEM_ID_PATTERN),
    });
    expect(answers(PROGRESS, '200')).toMatchObject({ status: 'accepted', duplicate: true });
  });
});
