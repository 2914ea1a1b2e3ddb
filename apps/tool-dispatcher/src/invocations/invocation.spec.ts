import { describe, expect, it } from '@jest/globals';
import { ApiError } from '@backchannel/contracts';
import { parseInvocation } from './invocation.js';

const SECRET = `whsec_${Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')}`;
const valid = (tool: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({
  conversation_id: 'conv-1',
  call_control_id: 'v3:abc/123',
  tool: { url: 'https://tools.example.com/x', mode: 'async', ...tool },
  arguments: { q: 'x' },
  ...extra,
});

function pointerOf(body: unknown): string | undefined {
  try {
    parseInvocation(body);
  } catch (error) {
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).code).toBe('invalid_request');
    return (error as ApiError).pointer;
  }
  throw new Error('expected a refusal');
}

describe('parseInvocation', () => {
  it('applies the defaults of CONTRACT.md §2 and §6', () => {
    expect(parseInvocation(valid())).toEqual({
      conversationId: 'conv-1',
      callControlId: 'v3:abc/123',
      tool: { url: 'https://tools.example.com/x', mode: 'async', timeoutMs: 30_000, ackTimeoutMs: 3_000 },
      arguments: { q: 'x' },
      ordered: true,
      delivery: 'when_idle',
    });
  });

  it('keeps given values, and lowers the default ack timeout to a shorter timeout', () => {
    const sut = parseInvocation(
      valid({ timeout_ms: 2_000, signing_secret: SECRET }, { name: 'n', ordered: false, delivery: 'interrupt' }),
    );
    expect(sut.tool).toEqual({
      url: 'https://tools.example.com/x',
      mode: 'async',
      timeoutMs: 2_000,
      ackTimeoutMs: 2_000,
      signingSecret: SECRET,
    });
    expect(sut).toMatchObject({ name: 'n', ordered: false, delivery: 'interrupt' });
  });

  it('passes arguments through untouched, however deep', () => {
    const args = { a: { b: [1, { c: null, d: 'x' }], e: true }, f: 1.5, g: '2024-01-01T00:00:00Z' };
    expect(parseInvocation({ ...valid(), arguments: args }).arguments).toEqual(args);
  });

  it.each([
    [{ ...valid(), call_control_id: '' }, '/call_control_id'],
    [{ ...valid(), call_control_id: 'a\nb' }, '/call_control_id'],
    [{ ...valid(), call_control_id: ' padded' }, '/call_control_id'],
    [{ ...valid(), call_control_id: 'x'.repeat(257) }, '/call_control_id'],
    [{ ...valid(), call_control_id: 'caf\u00e9' }, '/call_control_id'],
    [{ ...valid(), conversation_id: 'has space' }, '/conversation_id'],
    [{ ...valid(), tool: undefined }, '/tool'],
    [valid({ mode: 'maybe' }), '/tool/mode'],
    [valid({ url: 42 }), '/tool/url'],
    [valid({ timeout_ms: 3_600_001 }), '/tool/timeout_ms'],
    [valid({ ack_timeout_ms: 99 }), '/tool/ack_timeout_ms'],
    [valid({ ack_timeout_ms: 10_001 }), '/tool/ack_timeout_ms'],
    [valid({ timeout_ms: 1_000, ack_timeout_ms: 1_001 }), '/tool/ack_timeout_ms'],
    [valid({ signing_secret: 'secret' }), '/tool/signing_secret'],
    [valid({ signing_secret: 'whsec_=================' }), '/tool/signing_secret'],
    [valid({ headers: {} }), '/tool/headers'],
    [{ ...valid(), arguments: 'x' }, '/arguments'],
    [{ ...valid(), arguments: [] }, '/arguments'],
    [{ ...valid(), ordered: 'yes' }, '/ordered'],
    [{ ...valid(), delivery: 'now' }, '/delivery'],
  ])('refuses %j at %s', (body, pointer) => {
    expect(pointerOf(body)).toBe(pointer);
  });

  it('never quotes a signing secret in its refusal', () => {
    try {
      parseInvocation(valid({ signing_secret: 'whsec_short' }));
    } catch (error) {
      expect(JSON.stringify((error as ApiError).toErrorObject())).not.toContain('whsec_short');
    }
  });
});
