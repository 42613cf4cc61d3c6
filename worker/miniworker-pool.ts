import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as zmq from 'zeromq';
import { decodeMessage, encodeRequest, isReply } from '../protocol/envelope';
import type { Logger } from '../protocol/log';
import { Outbox } from '../protocol/outbox';
import type { Job, MiniworkerToWorker } from '../protocol/worker-messages';
import type { Call } from '../protocol/types';

interface Slot {
  index: number;
  generation: number;
  routingId: string;
  child?: ChildProcess;
  state: 'starting' | 'idle' | 'busy' | 'stopped';
  job?: Job;
}

export interface PoolOptions {
  endpoint: string;
  size: number;
  script: string;
  env: NodeJS.ProcessEnv;
  log: Logger;
  /** Grace between SIGTERM and SIGKILL when stopping. */
  stopGraceMs?: number;
}

/**
 * The worker–miniworker channel, the seed's broker pattern: the worker binds a ROUTER, forks the
 * miniworkers, and each one asks for work ('ready') and gets one job at a time. A miniworker that
 * dies is replaced; the job it held is reported 'lost'. Events: 'done' (call, job), 'lost' (job), 'idle'.
 */
export class MiniworkerPool extends EventEmitter {
  private readonly socket = new zmq.Router({ linger: 0, mandatory: true, receiveHighWaterMark: 0, sendHighWaterMark: 0 });
  private readonly outbox: Outbox;
  private readonly slots: Slot[] = [];
  private readonly abandoned: Job[] = [];
  private closing = false;
  private loop?: Promise<void>;

  constructor(private readonly options: PoolOptions) {
    super();
    this.outbox = new Outbox(this.socket, (err, frames) => this.onSendFailed(err, frames));
  }

  async start(): Promise<void> {
    await this.socket.bind(this.options.endpoint);
    this.loop = this.receiveLoop();
    for (let i = 0; i < this.options.size; i++) {
      const slot: Slot = { index: i, generation: 0, routingId: '', state: 'stopped' };
      this.slots.push(slot);
      this.spawn(slot);
    }
  }

  get idle(): number {
    return this.slots.filter((s) => s.state === 'idle').length;
  }

  get busy(): number {
    return this.slots.filter((s) => s.state === 'busy').length;
  }

  /** The calls the miniworkers hold right now. */
  activeCalls(): Set<number> {
    return new Set(this.slots.flatMap((s) => (s.job ? [s.job.call.callNum] : [])));
  }

  /** Hands the job to an idle miniworker; false when none is idle. */
  assign(job: Job): boolean {
    const slot = this.slots.find((s) => s.state === 'idle');
    if (!slot) return false;
    slot.state = 'busy';
    slot.job = job;
    this.outbox.send([slot.routingId, encodeRequest(randomUUID(), 'job', job)]);
    return true;
  }

  /**
   * Stops every miniworker: SIGTERM lets a call in flight finish within the grace period, then
   * SIGKILL. Returns the jobs that were cut short, for the caller to record.
   */
  async close(): Promise<Job[]> {
    if (this.closing) return [];
    this.closing = true;
    const grace = this.options.stopGraceMs ?? 5000;
    await Promise.all(
      this.slots.map(
        (slot) =>
          new Promise<void>((resolve) => {
            const child = slot.child;
            if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
            const kill = setTimeout(() => child.kill('SIGKILL'), grace);
            child.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
    this.socket.close();
    await this.loop?.catch(() => undefined);
    return this.abandoned.splice(0);
  }

  private spawn(slot: Slot): void {
    slot.generation += 1;
    slot.routingId = `mw-${slot.index}-${slot.generation}-${process.pid}`;
    slot.state = 'starting';
    slot.job = undefined;
    const child = fork(this.options.script, [], {
      env: { ...this.options.env, FAAS_MINIWORKER_ENDPOINT: this.options.endpoint, FAAS_MINIWORKER_ID: slot.routingId },
      stdio: 'inherit',
    });
    slot.child = child;
    const generation = slot.generation;
    child.once('exit', (code, signal) => {
      if (slot.generation !== generation) return;
      const job = slot.job;
      slot.job = undefined;
      slot.state = 'stopped';
      if (this.closing) {
        if (job) this.abandoned.push(job);
        return;
      }
      this.options.log.warn({ miniworker: slot.routingId, code, signal, callNum: job?.call.callNum }, 'miniworker exited');
      if (job) this.emit('lost', job);
      setTimeout(() => {
        if (!this.closing) this.spawn(slot);
      }, 200);
    });
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const [identity, frame] of this.socket) this.handle(identity!.toString(), frame);
    } catch (err) {
      if (!this.closing) this.options.log.error({ err: String(err) }, 'miniworker channel receive loop ended');
    }
  }

  private handle(routingId: string, frame: Buffer | undefined): void {
    let message;
    try {
      message = decodeMessage(frame);
    } catch (err) {
      this.options.log.warn({ routingId, err: String(err) }, 'dropped a malformed frame from a miniworker');
      return;
    }
    if (isReply(message)) return;
    const slot = this.slots.find((s) => s.routingId === routingId);
    if (!slot || slot.state === 'stopped') return;
    switch (message.msgType) {
      case 'ready':
        if (slot.state === 'starting') {
          slot.state = 'idle';
          this.emit('idle');
        }
        return;
      case 'done': {
        const call = (message.content as MiniworkerToWorker['done'])?.call as Call | undefined;
        const job = slot.job;
        slot.job = undefined;
        slot.state = 'idle';
        if (call && job) this.emit('done', call, job);
        this.emit('idle');
        return;
      }
      default:
        this.options.log.warn({ routingId, msgType: message.msgType }, 'dropped an unknown message from a miniworker');
    }
  }

  private onSendFailed(err: unknown, frames: zmq.MessageLike[]): void {
    const slot = this.slots.find((s) => s.routingId === String(frames[0]));
    this.options.log.warn({ routingId: String(frames[0]), err: String(err) }, 'send to a miniworker failed');
    if (slot?.child && slot.state === 'busy') slot.child.kill('SIGKILL'); // its exit reports the job lost
  }
}
