import type { InjectedMessage } from '@backchannel/contracts';
import type { Logger } from '@backchannel/observability';
import type { Caller } from '../access/tenant-access.service.js';
import type { LiveFeed, LiveSubscription } from '../live/live-messages.js';
import type { TranscriptReader } from '../transcript/transcript-reader.service.js';

/** Where a follower's events go: an HTTP response in production, an array in unit tests. */
export interface EventSink {
  /** Resolves once the chunk is taken (after backpressure clears); false when the sink is closed. */
  write(chunk: string): Promise<boolean>;
  end(): void;
  onClose(listener: () => void): void;
}

/** Live messages held while the follower writes; past this it drops them and reads the transcript instead. */
const MAX_QUEUED = 1_000;
/** Messages per transcript read while catching up. */
const CATCH_UP_PAGE = 100;

/**
 * One live follower of a conversation (CONTRACT.md §4, Server-Sent Events). It subscribes
 * to the live subject first, then fixes its cursor (the given position, or the last one
 * now), then replays the transcript after the cursor and drains the live queue, skipping
 * positions it has sent. The transcript is the source of truth: a live message that skips
 * a position (a lost core NATS publish, a crash between append and publish) or an
 * overflowing queue makes it read the gap from the transcript, and each keep-alive tick
 * looks at the transcript's tail too. So events come without gap or repeat.
 */
export class Follower {
  private cursor = 0;
  private readonly queue: InjectedMessage[] = [];
  private catchUpNeeded = false;
  private pumping?: Promise<void>;
  private rerun = false;
  private closed = false;
  private subscription?: LiveSubscription;
  private sink?: EventSink;
  private keepAliveTimer?: NodeJS.Timeout;

  constructor(
    readonly conversationId: string,
    readonly caller: Caller,
    /** The trace of the request that opened the stream: its lines carry it. */
    private readonly traceId: string,
    private readonly reader: TranscriptReader,
    private readonly logger: Logger,
    private readonly keepAliveMs: number,
    private readonly onClosed: (follower: Follower) => void,
  ) {}

  /** Subscribes and fixes the starting point. Once it resolves, nothing injected later can be missed. */
  async open(feed: LiveFeed, after: number | undefined): Promise<void> {
    this.subscription = await feed.subscribe(this.conversationId, (message) => this.onLive(message));
    try {
      this.cursor = after ?? (await this.reader.lastPosition(this.conversationId));
      this.catchUpNeeded = after !== undefined;
    } catch (error) {
      this.subscription.unsubscribe();
      throw error;
    }
  }

  /** Starts writing: `: ready`, the replay, then live events and keep-alives. */
  start(sink: EventSink): void {
    this.sink = sink;
    sink.onClose(() => this.close());
    void sink.write(': ready\n\n');
    this.keepAliveTimer = setInterval(() => this.keepAlive(), this.keepAliveMs);
    this.kick();
  }

  /** Ends the stream (client gone, key revoked, service stopping). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.keepAliveTimer);
    this.subscription?.unsubscribe();
    this.queue.length = 0;
    this.sink?.end();
    this.onClosed(this);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private onLive(message: InjectedMessage): void {
    if (this.closed) return;
    if (this.queue.length >= MAX_QUEUED) {
      this.queue.length = 0;
      this.catchUpNeeded = true;
    } else {
      this.queue.push(message);
    }
    this.kick();
  }

  private keepAlive(): void {
    if (this.closed || !this.sink) return;
    void this.sink.write(': keep-alive\n\n');
    this.catchUpNeeded = true;
    this.kick();
  }

  /** Runs the pump, one at a time; a kick while it runs makes it run once more. */
  private kick(): void {
    if (this.closed || !this.sink) return;
    if (this.pumping) {
      this.rerun = true;
      return;
    }
    this.pumping = this.pump()
      .catch((error: unknown) => {
        this.catchUpNeeded = true;
        this.logger.warn(
          { err: error, trace_id: this.traceId, conversation_id: this.conversationId },
          'follower could not read the transcript; retrying',
        );
      })
      .finally(() => {
        this.pumping = undefined;
        if (this.rerun) {
          this.rerun = false;
          this.kick();
        }
      });
  }

  private async pump(): Promise<void> {
    while (!this.closed) {
      if (this.catchUpNeeded) {
        this.catchUpNeeded = false;
        await this.catchUp();
        continue;
      }
      const next = this.queue.shift();
      if (!next) return;
      if (next.position <= this.cursor) continue;
      if (next.position === this.cursor + 1) await this.send(next);
      else this.catchUpNeeded = true;
    }
  }

  private async catchUp(): Promise<void> {
    try {
      for (;;) {
        const page = await this.reader.page(this.conversationId, this.cursor, CATCH_UP_PAGE);
        if (page.messages.length === 0) return;
        for (const message of page.messages) {
          if (this.closed) return;
          await this.send(message);
        }
      }
    } catch (error) {
      this.catchUpNeeded = true;
      throw error;
    }
  }

  private async send(message: InjectedMessage): Promise<void> {
    if (message.position <= this.cursor || !this.sink) return;
    this.cursor = message.position;
    const written = await this.sink.write(`id: ${message.position}\ndata: ${JSON.stringify(message)}\n\n`);
    if (!written) this.close();
  }
}
