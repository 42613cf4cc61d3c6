import type { MiniworkerDb } from '../protocol/db-client';
import { retrying } from '../protocol/retry';
import { LABELS } from '../protocol/labels';
import { OUTPUT_DIR, type Sandbox } from '../protocol/limits';
import type { Logger } from '../protocol/log';
import { functionEnv, type Job } from '../protocol/worker-messages';
import type { FinishCommand } from '../protocol/call-lifecycle';
import type { CallPatch } from '../protocol/types';
import { tail, truncationMarker, type ContainerDriver, type LiveOutput, type RunOutcome } from './container-driver';
import type { CollectedOutputs } from './outputs';
import type { HandlerOutcome } from './handler-container';
import type { CallRecorder } from './call-recorder';
import { SecretFiles } from './secret-files';

/** Linux refuses a single environment string past 128 KiB; larger params travel on stdin only. */
const MAX_ENV_PARAMS = 100 * 1024;

/**
 * Runs one call in process mode: RUNNING is recorded, the function's `run` command gets the params
 * as JSON on stdin and in FAAS_PARAMS, and the final state is written to db-service.
 */
export class CallRunner {
  constructor(
    private readonly driver: ContainerDriver,
    private readonly db: MiniworkerDb,
    private readonly recorder: CallRecorder,
    private readonly options: { nodeId: string; platformLabel: string; miniworkerId: string; log: Logger; secretsDir?: string },
  ) {}

  async run(job: Job, onOutput?: (output: LiveOutput) => void): Promise<FinishCommand> {
    const { call, runtime, fn } = job;
    const log = this.options.log.child({ callNum: call.callNum, function: fn.functionName });
    const started = new Date();
    // RUNNING is recorded beside the run, not before it: a slow or absent db-service does not hold the call up.
    const running = this.recorder.start(job, started);
    const params = JSON.stringify(call.params ?? {});
    let patch: CallPatch;
    let secrets: SecretFiles | undefined;
    try {
      if (fn.secrets?.length) {
        secrets = await SecretFiles.forCall(this.db, fn.secrets, job.sandbox.user, this.options);
      }
      const outcome = await this.driver.runOnce({
        ...(secrets ? { binds: [secrets.bind] } : {}),
        image: job.image,
        cmd: runtime.run,
        args: [...(fn.args ?? []), ...(call.args ?? [])],
        workingDir: runtime.path,
        env: [
          ...functionEnv(fn, call),
          ...(params.length <= MAX_ENV_PARAMS ? [`FAAS_PARAMS=${params}`] : []),
          `FAAS_CALL_NUM=${call.callNum}`,
          `FAAS_FUNCTION=${fn.functionName}`,
          ...(job.sandbox.outputs ? [`FAAS_OUTPUT_DIR=${OUTPUT_DIR}`] : []),
        ],
        labels: {
          [LABELS.platform]: this.options.platformLabel,
          [LABELS.node]: this.options.nodeId,
          [LABELS.function]: fn.functionName,
          [LABELS.version]: fn.version,
          [LABELS.call]: String(call.callNum),
          [LABELS.miniworker]: this.options.miniworkerId,
          [LABELS.role]: 'call',
        },
        stdin: params,
        timeoutMs: job.timeoutMs,
        ...(onOutput ? { onOutput } : {}),
        sandbox: job.sandbox,
        maxStdoutBytes: job.sandbox.maxResultBytes,
        maxStderrBytes: job.sandbox.maxLogBytes,
      });
      // Process mode starts a container for every call.
      patch = { ...finalPatch(outcome, job.timeoutMs, job.sandbox), coldStart: true, ...(await keepOutputs(this.db, call.callNum, outcome.outputs)) };
    } catch (err) {
      log.error({ err: String(err) }, 'the container could not run');
      patch = { status: 'ERROR', reason: 'docker_error', error: `the container could not run: ${err instanceof Error ? err.message : String(err)}` };
    } finally {
      await secrets?.remove().catch(() => undefined);
    }
    const ended = new Date();
    patch.endedAt = ended.toISOString();
    patch.durationMs = ended.getTime() - started.getTime();
    patch.startedAt = started.toISOString();
    log.debug({ status: patch.status, reason: patch.reason, durationMs: patch.durationMs }, 'call ran');
    // RUNNING lands before the end: a process-mode call takes a container start at least.
    await running;
    return this.recorder.command(job, patch);
  }
}

/** A handler's error starts with its exception line: past `max` that line stays, and what follows is cut from its start. */
export function errorHead(text: string, max: number): string {
  if (text.length <= max) return text;
  const end = text.indexOf('\n');
  const first = (end < 0 ? text : text.slice(0, end)).slice(0, max / 2);
  return `${first}\n…${tail(text.slice(first.length), max - first.length - 2)}`;
}

function tooLarge(limit: number): CallPatch {
  return { status: 'ERROR', reason: 'result_too_large', truncated: true, result: '', error: `the result is larger than the ${limit} bytes a call may return` };
}

/** The final state of a handler-mode call from what its container answered. */
export function handlerPatch(outcome: HandlerOutcome, timeoutMs: number, sandbox: Pick<Sandbox, 'maxResultBytes'>): CallPatch {
  const logs: CallPatch = { stdout: outcome.stdout, stderr: outcome.stderr, ...(outcome.truncated ? { truncated: true } : {}) };
  switch (outcome.kind) {
    case 'ok':
      if (Buffer.byteLength(outcome.result) > sandbox.maxResultBytes) return { ...logs, ...tooLarge(sandbox.maxResultBytes) };
      return { ...logs, status: 'DONE', result: outcome.result };
    case 'too_large':
      return { ...logs, ...tooLarge(sandbox.maxResultBytes) };
    case 'error':
      return { ...logs, status: 'ERROR', reason: 'handler_error', error: errorHead(outcome.error, 4000) };
    case 'timeout':
      return { ...logs, status: 'TIMEOUT', reason: 'timeout', error: `the call ran past its timeout of ${timeoutMs} ms` };
    case 'crashed':
      if (outcome.oomKilled) return { ...logs, status: 'ERROR', reason: 'out_of_memory', error: 'the function ran out of memory', exitCode: outcome.exitCode ?? 137 };
      return {
        ...logs,
        status: 'ERROR',
        reason: 'handler_crashed',
        ...(outcome.exitCode !== null ? { exitCode: outcome.exitCode } : {}),
        error: `the handler's process exited${outcome.exitCode !== null ? ` with code ${outcome.exitCode}` : ''}: ${tail(outcome.stderr.trim(), 2000)}`,
      };
  }
}

export function finalPatch(outcome: RunOutcome, timeoutMs: number, sandbox: Pick<Sandbox, 'maxResultBytes' | 'maxLogBytes'>): CallPatch {
  const truncated = outcome.stdoutTruncated || outcome.stderrTruncated;
  const stderr = outcome.stderrTruncated ? outcome.stderr + truncationMarker(sandbox.maxLogBytes) : outcome.stderr;
  const base: CallPatch = { stderr, ...(truncated ? { truncated: true } : {}) };
  if (outcome.timedOut) {
    return { ...base, status: 'TIMEOUT', reason: 'timeout', error: `the call ran past its timeout of ${timeoutMs} ms`, result: '' };
  }
  if (outcome.oomKilled) {
    return { ...base, status: 'ERROR', reason: 'out_of_memory', exitCode: outcome.exitCode ?? 137, error: 'the function ran out of memory', result: '' };
  }
  // In process mode stdout is the result: past its cap the call is refused rather than cut.
  if (outcome.stdoutTruncated) return { ...base, ...tooLarge(sandbox.maxResultBytes), ...(outcome.exitCode !== null ? { exitCode: outcome.exitCode } : {}) };
  if (outcome.exitCode === 0) {
    return { ...base, status: 'DONE', exitCode: 0, result: outcome.stdout.replace(/\r?\n$/, '') };
  }
  return {
    ...base,
    status: 'ERROR',
    reason: 'exit_code',
    exitCode: outcome.exitCode ?? -1,
    error: `exit code ${outcome.exitCode}: ${tail(outcome.stderr.trim(), 2000)}`,
    result: outcome.stdout.replace(/\r?\n$/, ''),
  };
}

/** Stores a call's outputs before its final state is written, and says what was kept. */
export async function keepOutputs(db: MiniworkerDb, callNum: number, outputs: CollectedOutputs | undefined): Promise<Pick<CallPatch, 'outputs'>> {
  if (!outputs) return {};
  if (outputs.zip) await retrying(() => db.putOutputs(callNum, outputs.zip!));
  return { outputs: { bytes: outputs.bytes, ...(outputs.truncated ? { truncated: true } : {}) } };
}
