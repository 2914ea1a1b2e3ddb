import { Inject, Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import { ApiError, RETRY_AFTER_UNAVAILABLE_S } from '@backchannel/contracts';
import { LOGGER } from '@backchannel/http';
import type { Logger } from '@backchannel/observability';
import { TenantAccess, type Caller } from '../access/tenant-access.service.js';
import { InjectorMetrics } from '../injector.metrics.js';
import { InjectorSettings } from '../injector.options.js';
import { LiveFeed } from '../live/live-messages.js';
import { TranscriptReader } from '../transcript/transcript-reader.service.js';
import { Follower } from './follower.js';

/** How often open streams' keys are checked again: a revoked key loses its streams within 1 s. */
const KEY_RECHECK_MS = 500;

/**
 * The open SSE streams of this replica: opens them, counts them, ends those whose key was
 * revoked, and ends them all when the service stops (so clients reconnect elsewhere with
 * `Last-Event-ID`).
 */
@Injectable()
export class FollowersService implements BeforeApplicationShutdown {
  private readonly open = new Set<Follower>();
  private stopping = false;
  private recheckTimer?: NodeJS.Timeout;
  private rechecking = false;

  constructor(
    private readonly feed: LiveFeed,
    private readonly reader: TranscriptReader,
    private readonly access: TenantAccess,
    private readonly metrics: InjectorMetrics,
    private readonly settings: InjectorSettings,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** A subscribed follower, not yet writing: the caller starts it once its response is ready. */
  async follow(caller: Caller, conversationId: string, after: number | undefined, traceId: string): Promise<Follower> {
    if (this.stopping) throw unavailable();
    const follower = new Follower(
      conversationId,
      caller,
      traceId,
      this.reader,
      this.logger,
      this.settings.sseKeepAliveMs,
      (closed) => this.forget(closed),
    );
    await follower.open(this.feed, after);
    if (this.stopping) {
      follower.close();
      throw unavailable();
    }
    this.open.add(follower);
    this.metrics.followerOpened();
    this.recheckTimer ??= setInterval(() => void this.recheckKeys(), KEY_RECHECK_MS);
    return follower;
  }

  get count(): number {
    return this.open.size;
  }

  beforeApplicationShutdown(): void {
    this.stopping = true;
    clearInterval(this.recheckTimer);
    for (const follower of [...this.open]) follower.close();
  }

  private forget(follower: Follower): void {
    if (!this.open.delete(follower)) return;
    this.metrics.followerClosed();
    if (this.open.size === 0) {
      clearInterval(this.recheckTimer);
      this.recheckTimer = undefined;
    }
  }

  /** Ends the streams of revoked keys (CONTRACT.md §2: a revoked key is refused within 1 s). */
  private async recheckKeys(): Promise<void> {
    if (this.rechecking) return;
    this.rechecking = true;
    try {
      const byKey = new Map<string, Follower[]>();
      for (const follower of this.open)
        byKey.set(follower.caller.keyId, [...(byKey.get(follower.caller.keyId) ?? []), follower]);
      for (const followers of byKey.values()) {
        if (await this.access.stillActive(followers[0].caller)) continue;
        for (const follower of followers) follower.close();
      }
    } catch (error) {
      this.logger.warn({ err: error }, 'could not recheck the keys of open streams');
    } finally {
      this.rechecking = false;
    }
  }
}

function unavailable(): ApiError {
  return new ApiError('unavailable', 'the service is shutting down; retry', {
    headers: { 'retry-after': String(RETRY_AFTER_UNAVAILABLE_S) },
  });
}
