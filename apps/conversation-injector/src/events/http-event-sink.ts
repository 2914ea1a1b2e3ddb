import type { ServerResponse } from 'node:http';
import type { EventSink } from './follower.js';

/** An SSE response as an EventSink: writes wait out backpressure, and stop once the client is gone. */
export class HttpEventSink implements EventSink {
  constructor(private readonly response: ServerResponse) {}

  write(chunk: string): Promise<boolean> {
    const response = this.response;
    if (response.destroyed || response.writableEnded) return Promise.resolve(false);
    if (response.write(chunk)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => () => {
        response.off('drain', onDrain);
        response.off('close', onClose);
        resolve(ok);
      };
      const onDrain = done(true);
      const onClose = done(false);
      response.once('drain', onDrain);
      response.once('close', onClose);
    });
  }

  end(): void {
    if (!this.response.writableEnded) this.response.end();
  }

  onClose(listener: () => void): void {
    this.response.once('close', listener);
  }
}
