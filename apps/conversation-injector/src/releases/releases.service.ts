import { Inject, Injectable } from '@nestjs/common';
import { partitionOf, transcriptReleaseMsgId, type ReleaseMessage } from '@backchannel/contracts';
import { Clock, MeshConfig } from '@backchannel/config';
import { LOGGER } from '@backchannel/http';
import { ReleaseLog } from '@backchannel/messaging';
import { Tracing, type Logger } from '@backchannel/observability';
import { InjectorMetrics } from '../injector.metrics.js';
import { LivePublisher } from '../live/live-messages.js';
import {
  decideRelease,
  recordFromRelease,
  toInjectedMessage,
  type ReleaseDecision,
} from '../transcript/transcript-record.js';
import { TranscriptWriter } from '../transcript/transcript-writer.service.js';

/** A release came before an earlier one of its conversation was injected: retried, never skipped. */
export class ReleaseGapError extends Error {
  constructor(conversationId: string, releaseIndex: number, appliedReleaseIndex: number) {
    super(
      `release ${releaseIndex} of ${conversationId} arrived before release ${appliedReleaseIndex + 1} was injected`,
    );
    this.name = 'ReleaseGapError';
  }
}

/**
 * Injects released results into their conversation's transcript, exactly once and in
 * release order (docs/injector.md): one compare-and-set append per release, decided by
 * the applied release index the transcript's last entry carries.
 */
@Injectable()
export class ReleasesService {
  constructor(
    private readonly writer: TranscriptWriter,
    private readonly live: LivePublisher,
    private readonly metrics: InjectorMetrics,
    private readonly clock: Clock,
    private readonly tracing: Tracing,
    private readonly releaseLog: ReleaseLog,
    @Inject(LOGGER) private readonly logger: Logger,
    config: MeshConfig,
  ) {
    this.partitions = config.SEQUENCER_PARTITIONS;
  }

  private readonly partitions: number;

  /**
   * `apply`: injected now (or its own earlier append was found); `already_applied`: seen
   * before. A release whose predecessor is not injected yet throws `ReleaseGapError`, so the
   * partition's run retries it before any later release of the conversation.
   */
  inject(release: ReleaseMessage): Promise<Exclude<ReleaseDecision, 'gap'>> {
    const attributes = {
      'backchannel.conversation_id': release.conversation_id,
      'backchannel.release_index': release.release_index,
      'backchannel.source': release.source.type,
    };
    return this.tracing.inSpan('injector inject', 'consumer', { traceId: release.trace_id }, attributes, () =>
      this.append(release),
    );
  }

  private async append(release: ReleaseMessage): Promise<Exclude<ReleaseDecision, 'gap'>> {
    const msgId = transcriptReleaseMsgId(release.conversation_id, release.release_index);
    const outcome = await this.writer.append(release.conversation_id, msgId, (last) => {
      const decision = decideRelease(release.release_index, last.appliedReleaseIndex);
      if (decision !== 'apply') return { decline: decision };
      return { record: recordFromRelease(release, last.position + 1, this.clock.nowIso()) };
    });
    if (outcome.type === 'appended') {
      if (outcome.duplicate) this.metrics.releaseRedelivered();
      else this.countInjected(release);
      this.live.publish(toInjectedMessage(outcome.entry.record));
      return 'apply';
    }
    if (outcome.decision === 'already_applied') {
      this.metrics.releaseRedelivered();
      // Live delivery is at least once: a crash between the append and the live publish
      // is repaired by publishing again when the last entry is this release's own.
      const entry = outcome.last.entry;
      if (entry?.msgId === msgId) this.live.publish(toInjectedMessage(entry.record));
      return 'already_applied';
    }
    this.metrics.releaseGap();
    // The releases in between are in the stream, ahead of this one (a release is published
    // only after the one before it): a delivery that was skipped is read there and injected.
    if (await this.fillGap(release, outcome.last.appliedReleaseIndex)) return this.append(release);
    throw new ReleaseGapError(release.conversation_id, release.release_index, outcome.last.appliedReleaseIndex);
  }

  /** Injects, in order, the releases between what the transcript applied and `release`; false if one is missing. */
  private async fillGap(release: ReleaseMessage, appliedReleaseIndex: number): Promise<boolean> {
    const conversationId = release.conversation_id;
    let next = appliedReleaseIndex + 1;
    for await (const earlier of this.releaseLog.releasesOf(
      partitionOf(conversationId, this.partitions),
      conversationId,
    )) {
      if (earlier.release_index !== next) continue;
      this.logger.warn(
        { trace_id: earlier.trace_id, conversation_id: conversationId, release_index: next },
        'a release was never delivered; injected from the release stream',
      );
      await this.append(earlier);
      next += 1;
      if (next === release.release_index) return true;
    }
    return false;
  }

  private countInjected(release: ReleaseMessage): void {
    this.metrics.injectedMessage(release.source.type);
    const acceptedAt = Date.parse(release.accepted_at);
    if (Number.isFinite(acceptedAt)) this.metrics.observeInjectionLatency((this.clock.now() - acceptedAt) / 1_000);
  }
}
