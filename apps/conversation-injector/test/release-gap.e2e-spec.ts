import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { STREAMS, partitionOf, releaseMsgId, releaseSubject } from '@backchannel/contracts';
import { Clock, loadConfig } from '@backchannel/config';
import { ReleaseLog, connectNats, ensureStream, type NatsHandles } from '@backchannel/messaging';
import { Metrics, Tracing, createLogger } from '@backchannel/observability';
import { startNatsServer, type NatsServerHandle } from '@backchannel/testing';
import { InjectorMetrics } from '../src/injector.metrics.js';
import { NatsLivePublisher } from '../src/live/nats-live.js';
import { ReleaseGapError, ReleasesService } from '../src/releases/releases.service.js';
import { TranscriptStore } from '../src/transcript/transcript.store.js';
import { TranscriptWriter } from '../src/transcript/transcript-writer.service.js';
import { PARTITIONS, release } from './injector-harness.js';

/**
 * A release whose delivery the broker skipped (seen with nats-server 2.9.10 after kill -9,
 * docs/reliability.md) is read from the release stream, where it sits ahead of the one that
 * revealed the gap, and injected in its place; a release that is truly not there is never
 * skipped over.
 */
describe('conversation injector: a gap in the releases is filled from the stream', () => {
  let nats: NatsServerHandle;
  let handles: NatsHandles;
  let sut: ReleasesService;
  let store: TranscriptStore;

  beforeAll(async () => {
    nats = await startNatsServer();
    handles = await connectNats(nats.url, 'release-gap-test');
    for (const spec of STREAMS) await ensureStream(handles.jsm, spec, 1);
    const config = loadConfig({ NATS_URL: nats.url, SEQUENCER_PARTITIONS: String(PARTITIONS) });
    const logger = createLogger({
      service: 'injector-test',
      level: 'error',
      destination: new Writable({ write: (_c, _e, done) => done() }),
    });
    store = new TranscriptStore(handles.js, handles.reads);
    sut = new ReleasesService(
      new TranscriptWriter(store),
      new NatsLivePublisher(handles.nc),
      new InjectorMetrics(new Metrics('injector-test')),
      new Clock(),
      Tracing.off(),
      new ReleaseLog(handles.js, handles.reads),
      logger,
      config,
    );
  });

  afterAll(async () => {
    await handles?.nc.close();
    await nats?.cleanup();
  });

  async function publish(conversationId: string, index: number): Promise<void> {
    await handles.js.publish(
      releaseSubject(partitionOf(conversationId, PARTITIONS), conversationId),
      JSON.stringify(release(conversationId, index)),
      { msgID: releaseMsgId(conversationId, index) },
    );
  }

  async function transcript(conversationId: string): Promise<{ position: number; n: unknown }[]> {
    const entries: { position: number; n: unknown }[] = [];
    for (
      let next = await store.nextFrom(conversationId, 1);
      next;
      next = await store.nextFrom(conversationId, next.seq + 1)
    ) {
      entries.push({ position: next.record.position, n: (next.record.result as { n: number }).n });
    }
    return entries;
  }

  it('injects the skipped releases in order before the one that revealed them', async () => {
    const id = 'gap-filled';
    for (const index of [1, 2, 3, 4]) await publish(id, index);
    expect(await sut.inject(release(id, 1))).toBe('apply');
    // Releases 2 and 3 were never delivered; 4 arrives.
    expect(await sut.inject(release(id, 4))).toBe('apply');
    expect(await transcript(id)).toEqual([
      { position: 1, n: 1 },
      { position: 2, n: 2 },
      { position: 3, n: 3 },
      { position: 4, n: 4 },
    ]);
    // Their own deliveries, should they come late, change nothing.
    expect(await sut.inject(release(id, 2))).toBe('already_applied');
  });

  it('never skips a release that is not in the stream: the gap stays and is retried', async () => {
    const id = 'gap-open';
    for (const index of [1, 3]) await publish(id, index);
    await sut.inject(release(id, 1));
    await expect(sut.inject(release(id, 3))).rejects.toBeInstanceOf(ReleaseGapError);
    expect(await transcript(id)).toEqual([{ position: 1, n: 1 }]);
  });
});
