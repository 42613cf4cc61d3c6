import type { MiniworkerDb } from '../protocol/db-client';
import { LABELS } from '../protocol/labels';
import type { Sandbox } from '../protocol/limits';
import type { Logger } from '../protocol/log';
import { stemKey, warmKey, type WarmKey } from '../protocol/warm-key';
import { functionEnv, type Job, type Prewarm, type Stem } from '../protocol/worker-messages';
import type { FinishCommand } from '../protocol/call-lifecycle';
import type { CallPatch, Runtime } from '../protocol/types';
import type { LiveOutput } from './container-driver';
import { HandlerStartError, type HandlerSpec } from './handler-container';
import { errorHead, handlerPatch, keepOutputs } from './runner';
import type { FunctionContainer, MiniworkerBackend, ProcessRunner } from './backend';
import { CallRecorder } from './call-recorder';
import { SecretFiles } from './secret-files';

const DEFAULT_HANDLER = 'handler.handle';
/** A handler call still running after this long is marked RUNNING. */
const RUNNING_AFTER_MS = 20;

/**
 * What a miniworker does with its one container: process-mode calls get a container each; in
 * handler mode the container stays warm for the next call of the same function version, and is
 * replaced when a call of another version comes, when it crashes, or when the worker retires it.
 */
export class Miniworker {
  private warm?: { key: WarmKey; container: FunctionContainer };
  /** The call in hand and what it has written so far. */
  private live?: { callNum: number; output: LiveOutput };
  private readonly detached: FunctionContainer[] = [];
  /** Set when the worker is gone: the call in flight is the api's to end (node_lost), not ours. */
  private abandoned = false;
  private readonly runner: ProcessRunner;
  private readonly recorder: CallRecorder;

  constructor(
    private readonly backend: MiniworkerBackend,
    private readonly db: MiniworkerDb,
    private readonly options: { nodeId: string; platformLabel: string; miniworkerId: string; log: Logger; channelDir?: string; secretsDir?: string },
  ) {
    this.recorder = new CallRecorder(db, options);
    this.runner = backend.runner(db, this.recorder, options);
  }

  /** The worker is gone: stop the container, and record nothing for the call that was cut. */
  abandon(): void {
    this.abandoned = true;
    this.recorder.stop();
  }

  /** What the call in hand has written so far, while it runs (see MiniworkerService's follow). */
  liveOutput(callNum: number): LiveOutput | undefined {
    return this.live?.callNum === callNum ? this.live.output : undefined;
  }

  get warmKey(): WarmKey | null {
    return this.warm?.container.alive ? this.warm.key : null;
  }

  /** Runs the call and answers its outcome as a finish command, with the container free again. */
  async run(job: Job): Promise<FinishCommand> {
    if (job.runtime.mode !== 'handler') {
      await this.retire();
      try {
        return await this.runner.run(job, (output) => (this.live = { callNum: job.call.callNum, output }));
      } finally {
        this.live = undefined;
      }
    }
    const { call } = job;
    const started = new Date();
    // RUNNING is written only for a call that lasts: a warm call is over in about a millisecond, and
    // two synced writes (RUNNING, then the end) would double its cost. startedAt is kept either way.
    // RUNNING is never waited for: one that lands after the end is refused as stale.
    const markRunning = setTimeout(() => void this.recorder.start(job, started), RUNNING_AFTER_MS);
    let patch: CallPatch;
    try {
      const { container, reused } = await this.ensure(job, job.sandbox);
      this.live = { callNum: call.callNum, output: { stdout: () => container.liveStdout(), stderr: () => container.liveStderr() } };
      const outcome = await container.invoke(call.callNum, call.params ?? {}, job.timeoutMs, call.env);
      const outputs = outcome.kind === 'ok' || outcome.kind === 'error' ? await keepOutputs(this.db, call.callNum, outcome.outputs) : {};
      patch = { ...handlerPatch(outcome, job.timeoutMs, job.sandbox), coldStart: !reused, ...outputs };
      // A container that is not kept is removed after the call is reported, off the call's path.
      if (!job.keepWarm || !container.alive || (outcome.kind === 'error' && outcome.exited)) this.detach();
    } catch (err) {
      await this.retire();
      if (err instanceof HandlerStartError) {
        patch = { status: 'ERROR', reason: 'load_failed', error: `${err.message}: ${errorHead(err.log, 2000)}`, stderr: err.log };
      } else {
        this.options.log.error({ callNum: call.callNum, err: String(err) }, 'the container could not run');
        patch = { status: 'ERROR', reason: 'docker_error', error: `the container could not run: ${err instanceof Error ? err.message : String(err)}` };
      }
    }
    clearTimeout(markRunning);
    this.live = undefined;
    const ended = new Date();
    patch.startedAt = started.toISOString();
    patch.endedAt = ended.toISOString();
    patch.durationMs = ended.getTime() - started.getTime();
    if (this.options.log.isLevelEnabled('debug')) this.options.log.debug({ callNum: call.callNum, function: job.fn.functionName, status: patch.status, reason: patch.reason, durationMs: patch.durationMs, coldStart: patch.coldStart }, 'call ran');
    if (this.abandoned) throw new Error('abandoned: the worker is gone');
    return this.recorder.command(job, patch);
  }

  /** Starts a warm container of this function version (handler mode), replacing any other. */
  async prewarm(request: Prewarm): Promise<void> {
    // A container with secrets starts for a call only: its values are asked for that call's function.
    if (request.fn.secrets?.length) return;
    await this.ensure({ ...request, injectable: false }, request.sandbox);
  }

  /** Starts a stem cell: a container of the runtime with its bootstrap running and no function yet. */
  async stem(request: Stem): Promise<void> {
    const key = stemKey(request.runtime.name);
    if (this.warm?.key === key && this.warm.container.alive) return;
    await this.retire();
    const container = await this.backend.start({
      ...this.containerSpec(request.runtime, request.runtime.image, DEFAULT_HANDLER, request.sandbox),
      labels: { [LABELS.platform]: this.options.platformLabel, [LABELS.node]: this.options.nodeId, [LABELS.miniworker]: this.options.miniworkerId, [LABELS.role]: 'stem' },
      load: false,
    });
    this.warm = { key, container };
  }

  async retire(): Promise<void> {
    this.detach();
    await this.cleanUp();
  }

  /** Removes containers detached from this miniworker; run after a call is reported. */
  async cleanUp(): Promise<void> {
    const doomed = this.detached.splice(0);
    await Promise.all(doomed.map((c) => c.dispose()));
  }

  private detach(): void {
    if (this.warm) this.detached.push(this.warm.container);
    this.warm = undefined;
  }

  /** The container for this function version; `reused` when it was already warm here (not a cold start). */
  private async ensure(job: Pick<Job, 'fn' | 'runtime' | 'image' | 'injectable' | 'packagePath'>, sandbox: Sandbox): Promise<{ container: FunctionContainer; reused: boolean }> {
    const key = warmKey(job.fn);
    const handler = job.fn.handler ?? DEFAULT_HANDLER;
    if (this.warm && this.warm.key === key && this.warm.container.alive) return { container: this.warm.container, reused: true };
    const secrets = job.fn.secrets ?? [];
    if (this.warm?.key === stemKey(job.runtime.name) && this.warm.container.alive && job.injectable && job.packagePath && secrets.length === 0) {
      const stem = this.warm.container;
      this.warm = undefined;
      try {
        await stem.inject(job.packagePath, handler);
      } catch (err) {
        await stem.dispose();
        throw err;
      }
      this.warm = { key, container: stem };
      return { container: stem, reused: false };
    }
    await this.retire();
    const secretFiles = secrets.length > 0 ? await SecretFiles.forCall(this.db, secrets, sandbox.user, this.options) : undefined;
    const container = await this.backend.start({
      ...this.containerSpec(job.runtime, job.image, handler, sandbox, functionEnv(job.fn)),
      ...(secretFiles ? { secrets: secretFiles } : {}),
      labels: {
        [LABELS.platform]: this.options.platformLabel,
        [LABELS.node]: this.options.nodeId,
        [LABELS.function]: job.fn.functionName,
        [LABELS.version]: job.fn.version,
        [LABELS.miniworker]: this.options.miniworkerId,
        [LABELS.role]: 'warm',
      },
    });
    this.warm = { key, container };
    return { container, reused: false };
  }

  private containerSpec(runtime: Runtime, image: string, handler: string, sandbox: Sandbox, env: string[] = []): Omit<HandlerSpec, 'labels'> {
    return {
      image,
      cmd: runtime.run,
      workingDir: runtime.path,
      handler,
      env,
      sandbox,
      startTimeoutMs: 60_000,
      ...(this.options.channelDir ? { channelDir: this.options.channelDir } : {}),
    };
  }
}
