import { describe, expect, it } from '@jest/globals';
import { RequestError, RequestOne, type Msg } from '@nats-io/nats-core/internal';
import { shareRequestCancelError } from './request-cancel.js';

/** What `RequestOne` asks of the connection's reply multiplexer when it ends. */
const mux = { cancel: () => undefined } as unknown as ConstructorParameters<typeof RequestOne>[0];

function request(): RequestOne {
  return new RequestOne(mux, '_INBOX.test', { timeout: 60_000 }, false);
}

const rejection = (pending: RequestOne): Promise<unknown> =>
  pending.deferred.then(
    () => 'resolved',
    (error: unknown) => error,
  );

describe('shareRequestCancelError', () => {
  it('applies to nats-core as installed, once', () => {
    expect(shareRequestCancelError()).toBe(true);
    expect(shareRequestCancelError()).toBe(true);
  });

  it('rejects every reasonless cancel with one RequestError("cancelled"), not a new error each', async () => {
    shareRequestCancelError();
    const first = request();
    const second = request();
    first.cancel();
    second.cancel();
    const [a, b] = await Promise.all([rejection(first), rejection(second)]);
    expect(a).toBeInstanceOf(RequestError);
    expect((a as Error).message).toBe('cancelled');
    expect(b).toBe(a);
  });

  it('keeps a cancel with a reason of its own', async () => {
    shareRequestCancelError();
    const pending = request();
    const reason = new Error('connection closed');
    pending.cancel(reason);
    await expect(rejection(pending)).resolves.toBe(reason);
  });

  it('still resolves an answered request with its answer', async () => {
    shareRequestCancelError();
    const answered = request();
    const answer = { subject: '_INBOX.test', data: new Uint8Array([1]) } as unknown as Msg;
    answered.resolver(null, answer);
    await expect(rejection(answered)).resolves.toBe('resolved');
    await expect(answered.deferred).resolves.toBe(answer);
  });
});
