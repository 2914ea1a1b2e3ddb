import type { Metrics } from '@backchannel/observability';
import type { CancelReason } from '@backchannel/contracts';
import type { ToolMode } from './invocations/dto/invoke-tool.dto.js';

/** How an invocation ended, as a metric label (never an id). */
export type DispatchOutcome =
  | 'acknowledged'
  | 'superseded'
  | 'succeeded'
  | 'rejected'
  | 'unreachable'
  | 'tool_failed'
  | 'timeout'
  | 'unavailable'
  | 'error';

export type CancelNoticeOutcome = 'delivered' | 'failed';

/** Sync invocations may wait up to an hour: the buckets reach that far. */
const DISPATCH_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/** The dispatcher's metrics (CONTRACT.md §7): `backchannel_dispatch_*`, labels without ids. */
export class DispatchMetrics {
  private readonly requests;
  private readonly duration;
  private readonly inFlight;
  private readonly cancelNotices;

  constructor(metrics: Metrics) {
    this.requests = metrics.counter('backchannel_dispatch_requests_total', 'Tool invocations by mode and outcome', [
      'mode',
      'outcome',
    ]);
    this.duration = metrics.histogram(
      'backchannel_dispatch_duration_seconds',
      'Time from a tool invocation to its answer',
      ['mode'],
      DISPATCH_BUCKETS_SECONDS,
    );
    this.inFlight = metrics.gauge('backchannel_dispatch_in_flight', 'Outbound requests to tools in flight');
    this.cancelNotices = metrics.counter(
      'backchannel_cancel_notices_total',
      'Cancel notices sent to tools by reason and outcome',
      ['reason', 'outcome'],
    );
  }

  invocationDone(mode: ToolMode, outcome: DispatchOutcome, seconds: number): void {
    this.requests.inc({ mode, outcome });
    this.duration.observe({ mode }, seconds);
  }

  setInFlight(count: number): void {
    this.inFlight.set(count);
  }

  cancelNotice(reason: CancelReason, outcome: CancelNoticeOutcome): void {
    this.cancelNotices.inc({ reason, outcome });
  }
}
