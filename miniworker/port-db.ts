import type { CommandResult, StartCommand } from '../protocol/call-lifecycle';
import type { MiniworkerDb } from '../protocol/db-client';
import { PlatformError } from '../protocol/errors';
import type { ThreadDbAnswer, ThreadDbAsk } from '../protocol/miniworker-thread';

/** Requests waiting for their answer at once; a thread runs one call at a time, so a few at most. */
const MAX_PENDING = 256;

/**
 * db-service as a miniworker thread sees it: its requests go to its worker over the thread's port
 * and the worker makes them on its own db client. Each waits at most `timeoutMs` for its answer
 * (DB_UNAVAILABLE, retryable, as from a socket of its own); close() rejects every one still waiting.
 */
export class PortDb implements MiniworkerDb {
  private readonly pending = new Map<number, { resolve: (data: unknown) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly post: (ask: ThreadDbAsk) => void,
    private readonly timeoutMs = 30_000,
  ) {}

  startCall(command: StartCommand): Promise<CommandResult> {
    return this.ask<CommandResult>((id) => ({ id, op: 'startCall', command }));
  }

  /** The values of the secrets of the function whose call this thread holds (the worker checks). */
  getSecretValues(names: string[]): Promise<Record<string, string>> {
    return this.ask<Record<string, string>>((id) => ({ id, op: 'getSecretValues', names }));
  }

  putOutputs(callNum: number, zip: Buffer): Promise<{ ok: true }> {
    return this.ask<{ ok: true }>((id) => ({ id, op: 'putOutputs', callNum, zip }));
  }

  /** An answer from the worker; one for no request waiting (late, or unknown) is ignored. */
  answer(answer: ThreadDbAnswer): void {
    const waiting = this.pending.get(answer.id);
    if (!waiting) return;
    this.pending.delete(answer.id);
    clearTimeout(waiting.timer);
    if (answer.ok) waiting.resolve(answer.data);
    else waiting.reject(PlatformError.fromJSON(answer.error));
  }

  close(): void {
    this.closed = true;
    for (const [id, waiting] of this.pending) {
      this.pending.delete(id);
      clearTimeout(waiting.timer);
      waiting.reject(new PlatformError('DB_UNAVAILABLE', 'the miniworker is stopping'));
    }
  }

  private ask<T>(make: (id: number) => ThreadDbAsk): Promise<T> {
    if (this.closed) return Promise.reject(new PlatformError('DB_UNAVAILABLE', 'the miniworker is stopping'));
    if (this.pending.size >= MAX_PENDING) return Promise.reject(new PlatformError('DB_UNAVAILABLE', `${MAX_PENDING} db-service requests are already waiting`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new PlatformError('DB_UNAVAILABLE', `db-service did not answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(id, { resolve: resolve as (data: unknown) => void, reject, timer });
      this.post(make(id));
    });
  }
}
