import { Injectable } from '@nestjs/common';
import type { MessageSource } from '@backchannel/contracts';
import { Metrics } from '@backchannel/observability';

/** The injector's metrics (CONTRACT.md §7): `backchannel_` names, no ids in labels. */
@Injectable()
export class InjectorMetrics {
  private readonly latency;
  private readonly injected;
  private readonly followers;
  private readonly redeliveries;
  private readonly gaps;

  constructor(metrics: Metrics) {
    this.latency = metrics.histogram(
      'backchannel_injection_latency_seconds',
      'Time from a result being accepted to its release being appended to the transcript',
    );
    this.injected = metrics.counter('backchannel_messages_injected_total', 'Messages appended to transcripts', [
      'source',
    ]);
    this.followers = metrics.gauge('backchannel_sse_followers', 'Open Server-Sent Events streams');
    this.redeliveries = metrics.counter(
      'backchannel_release_redeliveries_total',
      'Releases received again after they had been injected (nothing is injected twice)',
    );
    this.gaps = metrics.counter(
      'backchannel_release_gaps_total',
      'Releases that arrived before an earlier release of their conversation was injected (retried later)',
    );
  }

  injectedMessage(source: MessageSource['type']): void {
    this.injected.inc({ source });
  }

  observeInjectionLatency(seconds: number): void {
    this.latency.observe(Math.max(0, seconds));
  }

  followerOpened(): void {
    this.followers.inc();
  }

  followerClosed(): void {
    this.followers.dec();
  }

  releaseRedelivered(): void {
    this.redeliveries.inc();
  }

  releaseGap(): void {
    this.gaps.inc();
  }
}
