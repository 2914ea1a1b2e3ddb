import { Inject, Injectable } from '@nestjs/common';
import { transcriptReleaseMsgId, type ReleaseMessage } from '@backchannel/contracts';
import { Clock } from '@backchannel/config';
import { LOGGER } from '@backchannel/http';
import type { Logger } from '@backchannel/observability';
import { InjectorMetrics } from '../injector.metrics.js';
import { LivePublisher } from '../live/live-messages.js';
import {
  decideRelease,
  recordFromRelease,
  toInjectedMessage,
  type ReleaseDecision,
} from '../transcript/transcript-record.js';
import { TranscriptWriter } from '../transcript/transcript-writer.service.js';

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
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** `apply`: injected now (or its own earlier append was found); `already_applied`: a redelivery; `gap`: retry later. */
  async inject(release: ReleaseMessage): Promise<ReleaseDecision> {
    const msgId = transcriptReleaseMsgId(release.conversation_id, release.release_index);
    const outcome = await this.writer.append(release.conversation_id, msgId, (last) => {
      const decision = decideRelease(release.release_index, last?.applied_release_index ?? 0);
      if (decision !== 'apply') return { decline: decision };
      return { record: recordFromRelease(release, (last?.position ?? 0) + 1, this.clock.nowIso()) };
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
      if (outcome.last?.msgId === msgId) this.live.publish(toInjectedMessage(outcome.last.record));
      return 'already_applied';
    }
    this.metrics.releaseGap();
    this.logger.warn(
      {
        conversation_id: release.conversation_id,
        release_index: release.release_index,
        applied_release_index: outcome.last?.record.applied_release_index ?? 0,
      },
      'release arrived before an earlier release of its conversation was injected; retrying later',
    );
    return 'gap';
  }

  private countInjected(release: ReleaseMessage): void {
    this.metrics.injectedMessage(release.source.type);
    const acceptedAt = Date.parse(release.accepted_at);
    if (Number.isFinite(acceptedAt)) this.metrics.observeInjectionLatency((this.clock.now() - acceptedAt) / 1_000);
  }
}
