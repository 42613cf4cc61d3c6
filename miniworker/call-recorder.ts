import type { FinishCommand } from '../protocol/call-lifecycle';
import type { MiniworkerDb } from '../protocol/db-client';
import { MAX_FRAME_BYTES } from '../protocol/envelope';
import type { Logger } from '../protocol/log';
import type { CallPatch } from '../protocol/types';
import type { Job } from '../protocol/worker-messages';

/**
 * How a miniworker records the calls it runs: RUNNING off the call's path (the run never waits for
 * it, and a RUNNING that lands after the end is refused as stale), and the outcome as a `finish`
 * command that goes to its worker with the container already free: the worker writes the outcomes
 * of all its miniworkers to db-service in batches (worker/final-writer.ts), as the seed has it —
 * the worker, told the result, updates the database.
 */
export class CallRecorder {
  private stopped = false;

  constructor(
    private readonly db: MiniworkerDb,
    private readonly options: { nodeId: string; log: Logger },
  ) {}

  /** Stops recording (the worker is gone: the api ends the call as node_lost). */
  stop(): void {
    this.stopped = true;
  }

  /** Records RUNNING in the background; the promise settles when that write is answered, never rejects. */
  start(job: Job, startedAt: Date): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return this.db
      .startCall({ callNum: job.call.callNum, by: 'miniworker', attempt: job.call.attempts ?? 1, node: this.options.nodeId, startedAt: startedAt.toISOString() })
      .then(
        () => undefined,
        (err: unknown) => {
          if (this.options.log.isLevelEnabled('debug')) this.options.log.debug({ callNum: job.call.callNum, err: String(err) }, 'RUNNING not recorded');
        },
      );
  }

  /** The outcome of a call as the finish command its worker writes, cut to fit one frame. */
  command(job: Job, patch: CallPatch): FinishCommand {
    const command: FinishCommand = {
      callNum: job.call.callNum,
      by: 'miniworker',
      attempt: job.call.attempts ?? 1,
      status: patch.status as FinishCommand['status'],
      node: this.options.nodeId,
      ...(job.dispatchedAt ? { dispatchedAt: job.dispatchedAt } : {}),
      ...pick(patch),
    };
    fitFrame(command, job.call.params);
    return command;
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
