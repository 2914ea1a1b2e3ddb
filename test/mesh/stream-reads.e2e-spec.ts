import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { StreamReads, connectNats, ensureStream, type NatsHandles } from '@backchannel/messaging';
import { startNatsServer, type NatsServerHandle } from '@backchannel/testing';

/**
 * StreamReads answers the same from the stream's leader (STREAM.MSG.GET, used when streams
 * are replicated so that a read sees every acknowledged write) as from a direct get.
 */
describe.each([
  ['direct get', false],
  ['leader get', true],
])('stream reads by %s', (_name, fromLeader) => {
  let nats: NatsServerHandle;
  let handles: NatsHandles;
  let sut: StreamReads;
  const seqs: Record<string, number> = {};

  beforeAll(async () => {
    nats = await startNatsServer();
    handles = await connectNats(nats.url, 'stream-reads-test');
    const spec = {
      name: 'READS',
      subjects: ['reads.>'],
      maxAgeMs: 60_000,
      duplicateWindowMs: 1_000,
      maxMsgSize: 1024,
      allowDirect: true,
    };
    await ensureStream(handles.jsm, spec, 1);
    for (const subject of ['reads.a.1', 'reads.b.1', 'reads.a.2', 'reads.b.2']) {
      seqs[subject] = (await handles.js.publish(subject, subject)).seq;
    }
    sut = new StreamReads(handles.jsm, fromLeader);
  });

  afterAll(async () => {
    await handles?.nc.close();
    await nats?.cleanup();
  });

  it('reads by sequence, last and next on a (wildcard) subject, and null when there is none', async () => {
    expect((await sut.get('READS', { seq: seqs['reads.b.1'] }))?.subject).toBe('reads.b.1');
    expect((await sut.get('READS', { last_by_subj: 'reads.a.>' }))?.seq).toBe(seqs['reads.a.2']);
    expect((await sut.get('READS', { seq: 1, next_by_subj: 'reads.b.>' }))?.seq).toBe(seqs['reads.b.1']);
    expect((await sut.get('READS', { seq: seqs['reads.b.1'] + 1, next_by_subj: 'reads.b.>' }))?.seq).toBe(
      seqs['reads.b.2'],
    );
    expect(await sut.get('READS', { seq: 1, next_by_subj: 'reads.c.>' })).toBeNull();
    expect(await sut.get('READS', { last_by_subj: 'reads.c.1' })).toBeNull();
    expect(await sut.get('READS', { seq: 999 })).toBeNull();
  });
});
