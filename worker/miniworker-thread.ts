import { Worker } from 'node:worker_threads';
import type { FromMiniworkerThread, MiniworkerThreadData, ToMiniworkerThread } from '../protocol/miniworker-thread';

export interface ThreadExit {
  code: number | null;
  signal: null;
  /** An exception the thread did not catch, or the heap limit it hit. */
  error?: Error;
}

/**
 * One miniworker thread, supervised as a child process would be: a stop is asked for first (the
 * call in flight finishes) and forced after a grace period; the thread's own failure (an uncaught
 * exception, its heap limit) ends the thread, never the worker. Each thread has a small heap: a
 * node can hold hundreds.
 */
export class MiniworkerThread {
  readonly exited: Promise<ThreadExit>;
  private readonly thread: Worker;
  private running = true;
  private failure?: Error;

  constructor(
    script: string,
    data: MiniworkerThreadData,
    onMessage: (message: FromMiniworkerThread) => void,
    private readonly graceMs: number,
  ) {
    this.thread = new Worker(script, {
      workerData: data,
      // The same bounds as a miniworker process's --max-semi-space-size and --max-old-space-size.
      resourceLimits: { maxYoungGenerationSizeMb: 3, maxOldGenerationSizeMb: 192 },
    });
    this.thread.on('message', onMessage);
    this.thread.on('error', (err) => (this.failure = err));
    this.exited = new Promise((resolve) => {
      this.thread.once('exit', (code) => {
        this.running = false;
        resolve({ code, signal: null, ...(this.failure ? { error: this.failure } : {}) });
      });
    });
  }

  get alive(): boolean {
    return this.running;
  }

  post(message: ToMiniworkerThread): void {
    if (this.running) this.thread.postMessage(message);
  }

  /** Asks the thread to stop after its call in flight; ends it after the grace period. */
  async stop(): Promise<ThreadExit> {
    this.post({ msgType: 'stop' });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), this.graceMs)));
    const ended = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (ended === 'late') await this.thread.terminate();
    return this.exited;
  }
}
