import type { FinishCommand } from '../protocol/call-lifecycle';
import type { DbClient, FinishOutcome } from '../protocol/db-client';
import { MAX_FINISH_BATCH } from '../protocol/db-messages';
import { PlatformError } from '../protocol/errors';
import type { Logger } from '../protocol/log';
import type { Call } from '../protocol/types';

/** A batch stays under this many bytes of logs and results (a frame is far larger). */
const MAX_BATCH_CHARS = 4 * 1024 * 1024;
/** The pause between tries while db-service is away grows to this; the tries go on until stopped. */
const MAX_PAUSE_MS = 2000;

interface Pending {
  command: FinishCommand;
  /** The outcome was refused as it stands and is now recorded as a platform error. */
  fallback?: boolean;
}

export interface FinalWriterOptions {
  db: Pick<DbClient, 'finishCalls'>;
  log: Logger;
  /** The call as stored, once its outcome is written (or was refused because it had moved on). */
  recorded: (call: Call) => void;
  /** An outcome that could not be written even as a platform error: the caller ends the call otherwise. */
  givenUp: (command: FinishCommand, err: PlatformError) => void;
}

/**
 * Writes the outcomes the node's miniworkers report, many in one request: every outcome ready while
 * the previous request is out goes in the next one, so db-service applies them side by side under
 * one synced write, and a miniworker never holds its container while its outcome is written. While
 * db-service is away the outcomes wait here (the calls stay held by this node) and are retried
 * until they land; `pending` lets the worker stop taking calls when too many wait. An outcome
 * db-service refuses as it stands (a value it will not store) is recorded as a platform error, so
 * the call still ends.
 */
export class FinalWriter {
  private queue: Pending[] = [];
  private writing = false;
  private stopped = false;
  private inFlight = 0;
  private idle: Array<() => void> = [];

  constructor(private readonly options: FinalWriterOptions) {}

  /** Outcomes not yet written. */
  get pending(): number {
    return this.queue.length + this.inFlight;
  }

  add(command: FinishCommand): void {
    this.queue.push({ command });
    if (!this.writing) {
      this.writing = true;
      // Outcomes that arrive in the same turn of the event loop go together.
      setImmediate(() => void this.drain());
    }
  }

  /** Resolves once nothing waits to be written (or the writer was stopped). */
  drained(): Promise<void> {
    if (this.pending === 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Stops retrying; what is not written is left to the api's recovery. */
  stop(): Pending[] {
    this.stopped = true;
    const left = this.queue.splice(0);
    for (const resolve of this.idle.splice(0)) resolve();
    return left;
  }

  private async drain(): Promise<void> {
    let pause = 100;
    while (this.queue.length > 0 && !this.stopped) {
      const batch = this.take();
      this.inFlight = batch.length;
      let outcomes: FinishOutcome[];
      try {
        outcomes = await this.options.db.finishCalls(batch.map((p) => p.command));
        pause = 100;
      } catch (err) {
        this.inFlight = 0;
        const error = asError(err);
        if (error.retryable) {
          // db-service away or its disk refusing writes: the batch goes back first, and waits.
          this.queue.unshift(...batch);
          this.options.log.warn({ err: error.message, waiting: this.queue.length }, 'outcomes of calls are not recorded yet; still trying');
          await new Promise((r) => setTimeout(r, pause));
          pause = Math.min(pause * 2, MAX_PAUSE_MS);
          continue;
        }
        // The request as a whole was refused (one command db-service will not read): each goes on its own.
        if (batch.length > 1) {
          this.queue.unshift(...batch);
          this.splitNext = batch.length;
          continue;
        }
        outcomes = [{ ok: false, error: error.toJSON() }];
      }
      this.inFlight = 0;
      let retry = false;
      batch.forEach((p, i) => (retry = this.settle(p, outcomes[i]) || retry));
      if (retry) {
        await new Promise((r) => setTimeout(r, pause));
        pause = Math.min(pause * 2, MAX_PAUSE_MS);
      }
    }
    this.writing = false;
    if (this.queue.length === 0) for (const resolve of this.idle.splice(0)) resolve();
  }

  /** After a batch was refused whole, its commands are sent one by one to find the one at fault. */
  private splitNext = 0;

  private take(): Pending[] {
    if (this.splitNext > 0) {
      this.splitNext -= 1;
      return this.queue.splice(0, 1);
    }
    let chars = 0;
    let n = 0;
    while (n < this.queue.length && n < MAX_FINISH_BATCH) {
      chars += sizeOf(this.queue[n]!.command);
      if (n > 0 && chars > MAX_BATCH_CHARS) break;
      n += 1;
    }
    return this.queue.splice(0, n);
  }

  /** Returns true when the outcome is to be tried again later. */
  private settle(pending: Pending, outcome: FinishOutcome | undefined): boolean {
    if (outcome?.ok) {
      this.options.recorded(outcome.result.call);
      return false;
    }
    const error = PlatformError.fromJSON(outcome?.error);
    if (error.retryable) {
      this.queue.push(pending);
      return true;
    }
    const { command } = pending;
    if (pending.fallback) {
      this.options.log.error({ callNum: command.callNum, err: error.message }, 'the outcome of a call could not be recorded');
      this.options.givenUp(command, error);
      return false;
    }
    this.options.log.error({ callNum: command.callNum, err: error.message }, 'the outcome of a call was refused; recording it as an error');
    this.queue.push({
      fallback: true,
      command: {
        callNum: command.callNum,
        by: command.by,
        attempt: command.attempt,
        status: 'ERROR',
        reason: 'docker_error',
        ...(command.node ? { node: command.node } : {}),
        error: `the outcome could not be recorded: ${error.message.slice(0, 2000)}`,
        ...(command.startedAt ? { startedAt: command.startedAt } : {}),
        ...(command.durationMs !== undefined ? { durationMs: command.durationMs } : {}),
      },
    });
    return false;
  }
}

function asError(err: unknown): PlatformError {
  return err instanceof PlatformError ? err : new PlatformError('INTERNAL', err instanceof Error ? err.message : String(err));
}

/** Roughly what a command weighs in a request: its texts, and a little for the rest. */
function sizeOf(command: FinishCommand): number {
  return 512 + (command.result?.length ?? 0) + (command.stdout?.length ?? 0) + (command.stderr?.length ?? 0) + (command.error?.length ?? 0);
}
