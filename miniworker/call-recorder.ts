import type { CommandResult, FinishCommand } from '../protocol/call-lifecycle';
import type { DbClient } from '../protocol/db-client';
import { MAX_FRAME_BYTES } from '../protocol/envelope';
import { PlatformError } from '../protocol/errors';
import type { Logger } from '../protocol/log';
import type { Call, CallPatch } from '../protocol/types';
import type { Job } from '../protocol/worker-messages';

/** The pause between tries of a final write grows to this, and the tries go on until the write lands. */
const MAX_PAUSE_MS = 2000;

/**
 * How a miniworker records the calls it runs: RUNNING off the call's path (the run never waits for
 * it), the outcome as a `finish` command that is retried for as long as db-service is away — the
 * slot stays busy meanwhile, so a worker never takes more calls than it can record, and no outcome
 * is dropped. An outcome db-service refuses outright is recorded as a platform error instead, so the
 * call still ends.
 */
export class CallRecorder {
  private stopped = false;

  constructor(
    private readonly db: DbClient,
    private readonly options: { nodeId: string; log: Logger },
  ) {}

  /** Stops retrying (the worker is gone: the api ends the call as node_lost). */
  stop(): void {
    this.stopped = true;
  }

  /** Records RUNNING in the background; the promise settles when that write is answered, never rejects. */
  start(job: Job, startedAt: Date): Promise<void> {
    return this.db
      .startCall({ callNum: job.call.callNum, by: 'miniworker', attempt: job.call.attempts ?? 1, node: this.options.nodeId, startedAt: startedAt.toISOString() })
      .then(
        () => undefined,
        (err: unknown) => {
          if (this.options.log.isLevelEnabled('debug')) this.options.log.debug({ callNum: job.call.callNum, err: String(err) }, 'RUNNING not recorded');
        },
      );
  }

  /** Records the outcome; answers the call as stored (the first final state wins). */
  async finish(job: Job, patch: CallPatch): Promise<Call> {
    const { callNum } = job.call;
    const command: FinishCommand = {
      callNum,
      by: 'miniworker',
      attempt: job.call.attempts ?? 1,
      status: patch.status as FinishCommand['status'],
      node: this.options.nodeId,
      ...(job.dispatchedAt ? { dispatchedAt: job.dispatchedAt } : {}),
      ...pick(patch),
    };
    fitFrame(command, job.call.params);
    try {
      return (await this.persist(() => this.db.finishCall(command))).call;
    } catch (err) {
      if (!(err instanceof PlatformError) || err.retryable) throw err;
      // Refused as it stands (a value db-service will not store): the call ends as a platform error.
      this.options.log.error({ callNum, err: err.message }, 'the outcome of a call was refused; recording it as an error');
      const fallback: FinishCommand = {
        callNum,
        by: 'miniworker',
        attempt: command.attempt,
        status: 'ERROR',
        reason: 'docker_error',
        node: this.options.nodeId,
        error: `the outcome could not be recorded: ${err.message.slice(0, 2000)}`,
        ...(command.startedAt ? { startedAt: command.startedAt } : {}),
        ...(command.durationMs !== undefined ? { durationMs: command.durationMs } : {}),
      };
      return (await this.persist(() => this.db.finishCall(fallback))).call;
    }
  }

  /** Retries while the failure is retryable (db-service away, its disk full), until stopped. */
  private async persist(write: () => Promise<CommandResult>): Promise<CommandResult> {
    let pause = 100;
    let tries = 0;
    for (;;) {
      try {
        return await write();
      } catch (err) {
        if (!(err instanceof PlatformError) || !err.retryable || this.stopped) throw err;
        tries += 1;
        if (tries === 5 || tries % 60 === 0) this.options.log.warn({ err: err.message, tries }, 'the outcome of a call is not recorded yet; still trying');
        await new Promise((r) => setTimeout(r, pause));
        pause = Math.min(pause * 2, MAX_PAUSE_MS);
      }
    }
  }
}

/** The stored call, and every message that carries it, must fit in one frame with room to spare. */
const CALL_BUDGET_BYTES = MAX_FRAME_BYTES - 1024 * 1024;

/**
 * Logs that would make the stored call larger than a frame (1 MiB of control bytes is 6 MiB of
 * JSON) are cut, the longer first, and the call is marked truncated: the call still ends.
 */
export function fitFrame(command: FinishCommand, params: unknown): void {
  // Logs under 1 KiB each are never cut: nothing to measure (the path of every warm call).
  if ((command.stdout?.length ?? 0) < 1024 && (command.stderr?.length ?? 0) < 1024) return;
  const size = () => Buffer.byteLength(JSON.stringify(command)) + Buffer.byteLength(JSON.stringify(params ?? null));
  for (let over = size() - CALL_BUDGET_BYTES; over > 0; over = size() - CALL_BUDGET_BYTES) {
    const field = (command.stdout?.length ?? 0) >= (command.stderr?.length ?? 0) ? 'stdout' : 'stderr';
    const text = command[field] ?? '';
    if (text.length < 1024) return;
    command[field] = text.slice(0, Math.floor(text.length / 2)) + '\n[faas: output cut to fit the call record]\n';
    command.truncated = true;
  }
}

/** The fields of a patch that a finish command carries. */
function pick(patch: CallPatch): Omit<FinishCommand, 'callNum' | 'by' | 'attempt' | 'status'> {
  const out: Record<string, unknown> = {};
  for (const key of ['result', 'startedAt', 'endedAt', 'durationMs', 'exitCode', 'stdout', 'stderr', 'reason', 'error', 'truncated', 'coldStart', 'outputs'] as const) {
    if (patch[key] !== undefined) out[key] = patch[key];
  }
  return out as Omit<FinishCommand, 'callNum' | 'by' | 'attempt' | 'status'>;
}
