import type { Logger } from '../protocol/log';
import { MAX_LOG_PIECE_CHARS, type Job, type MiniworkerToWorker, type Prewarm, type Stem, type WorkerToMiniworker } from '../protocol/worker-messages';
import type { Miniworker } from './miniworker';

/** How often a followed call's new output is sent. */
const FOLLOW_EVERY_MS = 200;

/** How a miniworker answers its worker: a ZeroMQ channel (a process) or its parent port (a thread). */
export interface WorkerLink {
  send<K extends keyof MiniworkerToWorker & string>(msgType: K, content: MiniworkerToWorker[K]): void;
}

/**
 * What a miniworker does with each message from its worker, whatever carries it: one message at a
 * time, and a stop asked for meanwhile waits for the message in hand. `exit` is the entry file's:
 * it retires the container, lets the last report leave and ends the process or the thread.
 */
export class MiniworkerService {
  private busy = false;
  private stopping = false;
  /** The messages that wait for the one in hand, in order. */
  private queue: Promise<void> = Promise.resolve();
  /** The call of the job in hand. */
  private current?: number;
  /** The call whose output the worker follows, what of it was sent, and the timer sending the rest. */
  private following?: { callNum: number; sent: { stdout: number; stderr: number }; timer?: NodeJS.Timeout };

  constructor(
    private readonly miniworker: Miniworker,
    private readonly link: WorkerLink,
    private readonly log: Logger,
    private readonly exit: (code: number) => Promise<void>,
  ) {}

  readonly handlers = {
    job: this.serving(async (job: Job) => {
      this.current = job.call.callNum;
      if (this.following?.callNum === job.call.callNum) this.startFollowing();
      else this.stopFollowing();
      try {
        // The outcome goes to the worker as soon as the container is free; the worker writes it.
        const finish = await this.miniworker.run(job);
        // What the call wrote since the last piece is in its outcome: nothing more goes as a piece.
        this.current = undefined;
        this.stopFollowing();
        this.link.send('done', { finish, warm: this.miniworker.warmKey });
        await this.miniworker.cleanUp();
      } catch (err) {
        // The call could not be run to an outcome (the worker is gone, outputs could not be kept): end,
        // so that the worker, if it is there, ends the job as lost.
        this.log.error({ callNum: job.call.callNum, err: String(err) }, 'call could not be completed');
        this.stopFollowing();
        await this.exit(1);
      }
    }),
    prewarm: this.serving((request: Prewarm) => this.warm('prewarm', this.miniworker.prewarm(request), request.runtime.name)),
    stem: this.serving((request: Stem) => this.warm('stem', this.miniworker.stem(request), request.runtime.name)),
    retire: this.serving(async () => {
      await this.miniworker.retire();
      this.link.send('warmed', { warm: null });
    }),
  };

  /**
   * Takes a message from the worker: `follow` at once (it is about the job in hand), the others one
   * at a time, in order, each after the one before has ended.
   */
  take<K extends keyof WorkerToMiniworker & string>(msgType: K, content: WorkerToMiniworker[K]): void {
    if (msgType === 'follow') return this.follow(content as WorkerToMiniworker['follow']);
    const handle = this.handlers[msgType as Exclude<K, 'follow'>] as (content: unknown) => Promise<void>;
    this.queue = this.queue.then(() => handle(content));
  }

  /** The worker follows (or no longer follows) a call's output: pieces of it go every FOLLOW_EVERY_MS while it runs. */
  private follow({ callNum, follow }: WorkerToMiniworker['follow']): void {
    if (!follow) {
      if (this.following?.callNum === callNum) this.stopFollowing();
      return;
    }
    if (this.following?.callNum === callNum) return;
    this.stopFollowing();
    // A follow may come before its job is taken (the worker sends both at once): it starts with the job.
    this.following = { callNum, sent: { stdout: 0, stderr: 0 } };
    if (this.current === callNum) this.startFollowing();
  }

  private startFollowing(): void {
    const following = this.following;
    if (!following || following.timer) return;
    following.timer = setInterval(() => this.sendPiece(following), FOLLOW_EVERY_MS);
    following.timer.unref();
  }

  private stopFollowing(): void {
    if (this.following?.timer) clearInterval(this.following.timer);
    this.following = undefined;
  }

  private sendPiece(following: { callNum: number; sent: { stdout: number; stderr: number } }): void {
    const output = this.miniworker.liveOutput(following.callNum);
    if (!output) return;
    const piece: { stdout?: string; stderr?: string } = {};
    for (const stream of ['stdout', 'stderr'] as const) {
      let text = output[stream]();
      // A character cut between two chunks decodes as U+FFFD for now: it waits for the next piece.
      if (text.endsWith('\uFFFD')) text = text.slice(0, -1);
      if (text.length <= following.sent[stream]) continue;
      const part = text.slice(following.sent[stream], following.sent[stream] + MAX_LOG_PIECE_CHARS);
      piece[stream] = part;
      following.sent[stream] += part.length;
    }
    if (piece.stdout !== undefined || piece.stderr !== undefined) this.link.send('logs', { callNum: following.callNum, ...piece });
  }

  /** Stops after the call in flight, if any: its worker waits for it. */
  stop(): void {
    this.stopping = true;
    if (!this.busy) void this.exit(0);
  }

  private serving<T>(handle: (content: T) => Promise<void>): (content: T) => Promise<void> {
    return async (content: T) => {
      this.busy = true;
      try {
        await handle(content);
      } finally {
        this.busy = false;
      }
      if (this.stopping) await this.exit(0);
    };
  }

  private async warm(msgType: 'prewarm' | 'stem', warming: Promise<void>, runtime: string): Promise<void> {
    const error = await warming.then(
      () => undefined,
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    if (error) this.log.warn({ msgType, runtime, err: error }, 'warming a container failed');
    this.link.send('warmed', { warm: this.miniworker.warmKey, ...(error ? { error: error.slice(0, 60_000) } : {}) });
  }
}
