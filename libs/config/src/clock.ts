import { Injectable } from '@nestjs/common';

/** The time source, injectable so deadline behaviour is tested without waiting. */
@Injectable()
export class Clock {
  now(): number {
    return Date.now();
  }

  nowIso(): string {
    return new Date(this.now()).toISOString();
  }
}
