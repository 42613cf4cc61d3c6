import { setTimeout as sleep } from 'node:timers/promises';
import type { BackendSettings } from '../protocol/backend';
import type { FinishCommand } from '../protocol/call-lifecycle';
import type { MiniworkerDb } from '../protocol/db-client';
import type { Logger } from '../protocol/log';
import type { Job } from '../protocol/worker-messages';
import type { CallRecorder } from './call-recorder';
import { ContainerDriver, type LiveOutput } from './container-driver';
import { HandlerContainer, type HandlerOutcome, type HandlerSpec } from './handler-container';
import { CallRunner } from './runner';

/** One function container as a miniworker drives it: started, given calls, disposed of. */
export interface FunctionContainer {
  readonly alive: boolean;
  invoke(id: number, params: unknown, timeoutMs: number, env?: Record<string, string>): Promise<HandlerOutcome>;
  /** Puts a function's code into a stem cell. */
  inject(packagePath: string, handler: string): Promise<void>;
  liveStdout(): string;
  liveStderr(): string;
  /** Stops and removes it; safe to call twice. */
  dispose(): Promise<void>;
}

/** Runs one process-mode call, in a container of its own, from start to removal. */
export interface ProcessRunner {
  run(job: Job, onOutput?: (output: LiveOutput) => void): Promise<FinishCommand>;
}

export interface RunnerOptions {
  nodeId: string;
  platformLabel: string;
  miniworkerId: string;
  log: Logger;
  secretsDir?: string;
}

/** The deploy step of a node's back-end, as a miniworker sees it (the node's side is worker/backend.ts). */
export interface MiniworkerBackend {
  readonly name: BackendSettings['name'];
  /** A container with the runtime's handler bootstrap running (and the function loaded unless `load: false`). */
  start(spec: HandlerSpec): Promise<FunctionContainer>;
  runner(db: MiniworkerDb, recorder: CallRecorder, options: RunnerOptions): ProcessRunner;
}

export class DockerMiniworkerBackend implements MiniworkerBackend {
  readonly name = 'docker';
  constructor(private readonly driver = new ContainerDriver()) {}

  start(spec: HandlerSpec): Promise<FunctionContainer> {
    return HandlerContainer.start(this.driver, spec);
  }

  runner(db: MiniworkerDb, recorder: CallRecorder, options: RunnerOptions): ProcessRunner {
    return new CallRunner(this.driver, db, recorder, options);
  }
}

/** A container that is not there: it starts in `startMs` and answers each call in `callMs` with its params. */
export class HollowContainer implements FunctionContainer {
  private live = true;

  private constructor(private readonly callMs: number) {}

  static async start(settings: { startMs: number; callMs: number }): Promise<HollowContainer> {
    if (settings.startMs > 0) await sleep(settings.startMs);
    return new HollowContainer(settings.callMs);
  }

  get alive(): boolean {
    return this.live;
  }

  async invoke(_id: number, params: unknown, timeoutMs: number): Promise<HandlerOutcome> {
    if (!this.live) throw new Error('the hollow container was disposed of');
    if (this.callMs > timeoutMs) {
      await sleep(timeoutMs);
      return { kind: 'timeout', stdout: '', stderr: '', truncated: false };
    }
    if (this.callMs > 0) await sleep(this.callMs);
    return { kind: 'ok', result: JSON.stringify(params ?? null), stdout: '', stderr: '', truncated: false };
  }

  async inject(): Promise<void> {
    if (!this.live) throw new Error('the hollow container was disposed of');
  }

  liveStdout(): string {
    return '';
  }

  liveStderr(): string {
    return '';
  }

  async dispose(): Promise<void> {
    this.live = false;
  }
}

/** Process mode on a hollow node: each call "starts a container" and runs, as a hollow container does. */
class HollowRunner implements ProcessRunner {
  constructor(
    private readonly settings: { startMs: number; callMs: number },
    private readonly recorder: CallRecorder,
  ) {}

  async run(job: Job): Promise<FinishCommand> {
    const started = new Date();
    const running = this.recorder.start(job, started);
    const container = await HollowContainer.start(this.settings);
    const outcome = await container.invoke(job.call.callNum, job.call.params ?? {}, job.timeoutMs);
    await container.dispose();
    const ended = new Date();
    const timing = { startedAt: started.toISOString(), endedAt: ended.toISOString(), durationMs: ended.getTime() - started.getTime(), coldStart: true };
    await running;
    if (outcome.kind === 'ok') return this.recorder.command(job, { status: 'DONE', result: outcome.result, stderr: '', ...timing });
    return this.recorder.command(job, { status: 'TIMEOUT', reason: 'timeout', error: `the call ran past its timeout of ${job.timeoutMs} ms`, result: '', ...timing });
  }
}

export class HollowMiniworkerBackend implements MiniworkerBackend {
  readonly name = 'hollow';
  constructor(private readonly settings: { startMs: number; callMs: number }) {}

  start(): Promise<FunctionContainer> {
    return HollowContainer.start(this.settings);
  }

  runner(_db: MiniworkerDb, recorder: CallRecorder): ProcessRunner {
    return new HollowRunner(this.settings, recorder);
  }
}

export function miniworkerBackend(settings: BackendSettings): MiniworkerBackend {
  return settings.name === 'hollow' ? new HollowMiniworkerBackend(settings) : new DockerMiniworkerBackend();
}
