import type { MessageLike } from 'zeromq';

interface SendSocket {
  send(message: MessageLike | MessageLike[]): Promise<void>;
  readonly closed: boolean;
}

/**
 * zeromq.js allows one pending send() per socket: every sender enqueues here and one loop drains.
 * The queue is bounded; past the bound a message is refused (and reported), never silently dropped.
 */
export class Outbox {
  private readonly queue: MessageLike[][] = [];
  private draining = false;
  private waiting: Array<() => void> = [];

  constructor(
    private readonly socket: SendSocket,
    private readonly onError: (err: unknown, frames: MessageLike[]) => void,
    private readonly maxQueued = 100_000,
  ) {}

  /** Returns false when the queue is full or the socket closed; the message was not queued. */
  send(frames: MessageLike[]): boolean {
    if (this.socket.closed || this.queue.length >= this.maxQueued) return false;
    this.queue.push(frames);
    if (!this.draining) void this.drain();
    return true;
  }

  /** Resolves when every queued message has been handed to the socket (or dropped because it closed). */
  drained(): Promise<void> {
    if (!this.draining && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        const frames = this.queue.shift()!;
        if (this.socket.closed) {
          this.queue.length = 0;
          break;
        }
        try {
          await this.socket.send(frames);
        } catch (err) {
          this.onError(err, frames);
        }
      }
    } finally {
      this.draining = false;
      for (const resolve of this.waiting.splice(0)) resolve();
    }
  }
}
