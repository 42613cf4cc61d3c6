import { EventEmitter } from 'node:events';
import { createHash, randomUUID } from 'node:crypto';
import * as zmq from 'zeromq';
import { serverCurveOptions } from '../protocol/curve';
import { decodeMessage, encodeRequest, isReply, MAX_FRAME_BYTES } from '../protocol/envelope';
import type { Logger } from '../protocol/log';
import { Outbox } from '../protocol/outbox';
import { warmKey, type ApiToWorker, type Invocation, type WorkerToApi } from '../protocol/worker-messages';
import type { Call, FunctionRecord, Runtime } from '../protocol/types';

export interface WorkerNode {
  routingId: string;
  nodeId: string;
  pid: number;
  capacity: number;
  inflight: Map<number, Invocation>;
  /** The calls the worker says it holds (from hello and heartbeats), also those handed to it before an api restart. */
  reported: Set<number>;
  queued: number;
  /** Warm containers by function version ("name@sha256"), from the worker's heartbeats. */
  warm: Record<string, number>;
  draining: boolean;
  connectedAt: number;
  lastSeen: number;
}

export interface WorkerHubOptions {
  heartbeatMs: number;
  /** Beats missed before a silent worker is expired. */
  liveness: number;
  /** What a worker needs on hello: every runtime and function. */
  snapshot: () => Promise<{ runtimes: Runtime[]; functions: FunctionRecord[] }>;
  /** Invocation policy: warm (default), home, least-loaded. */
  policy?: 'warm' | 'home' | 'least-loaded';
  log: Logger;
}

/** How far past calls held back by their function's concurrency limit one pump looks. */
const MAX_SKIPPED = 10_000;

/**
 * The api's side of the api–worker channel: a ROUTER (mandatory, so a vanished worker is an error,
 * not a silent drop) that knows which workers are alive, hands pending calls to the least loaded
 * one with a free slot, and reports calls that end ('callDone') or lose their worker ('lost').
 */
export class WorkerHub extends EventEmitter {
  private readonly socket = new zmq.Router({ linger: 0, mandatory: true, receiveHighWaterMark: 0, sendHighWaterMark: 0, maxMessageSize: MAX_FRAME_BYTES, ...serverCurveOptions(process.env, 'workers') });
  private readonly outbox: Outbox;
  private readonly workers = new Map<string, WorkerNode>();
  private readonly queue: Invocation[] = [];
  private readonly queuedByFunction = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private closed = false;
  private loop?: Promise<void>;

  constructor(private readonly options: WorkerHubOptions) {
    super();
    this.outbox = new Outbox(this.socket, (err, frames) => this.onSendFailed(err, frames));
  }

  async bind(endpoint: string): Promise<string> {
    await this.socket.bind(endpoint);
    this.loop = this.receiveLoop();
    this.timer = setInterval(() => this.beat(), this.options.heartbeatMs);
    return this.socket.lastEndpoint ?? endpoint;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.socket.close();
    await this.loop?.catch(() => undefined);
  }

  /** Every call some connected worker holds. */
  ownedCalls(): Set<number> {
    const owned = new Set<number>();
    for (const worker of this.workers.values()) {
      for (const callNum of worker.inflight.keys()) owned.add(callNum);
      for (const callNum of worker.reported) owned.add(callNum);
    }
    return owned;
  }

  /** Every call a worker holds or the queue holds: what recovery must leave alone. */
  heldCalls(): Set<number> {
    const held = this.ownedCalls();
    for (const invocation of this.queue) held.add(invocation.call.callNum);
    return held;
  }

  list(): WorkerNode[] {
    return [...this.workers.values()];
  }

  get queueDepth(): number {
    return this.queue.length;
  }

  /** Calls of this function waiting for a worker. */
  queuedFor(funcName: string): number {
    return this.queuedByFunction.get(funcName) ?? 0;
  }

  private enqueue(invocation: Invocation, where: 'front' | 'back'): void {
    if (where === 'front') this.queue.unshift(invocation);
    else this.queue.push(invocation);
    this.countQueued(invocation, 1);
  }

  private countQueued(invocation: Invocation, delta: number): void {
    const name = invocation.call.funcName;
    const next = (this.queuedByFunction.get(name) ?? 0) + delta;
    if (next <= 0) this.queuedByFunction.delete(name);
    else this.queuedByFunction.set(name, next);
  }

  /** Queues a call for the next free worker slot. */
  dispatch(invocation: Invocation): void {
    this.enqueue(invocation, 'back');
    this.pump();
  }

  broadcast<K extends keyof ApiToWorker>(msgType: K, content: ApiToWorker[K]): void {
    for (const worker of this.workers.values()) this.send(worker.routingId, msgType, content);
  }

  private send<K extends keyof ApiToWorker>(routingId: string, msgType: K, content: ApiToWorker[K]): void {
    this.outbox.send([routingId, encodeRequest(randomUUID(), msgType, content)]);
  }

  /**
   * Sends queued calls to free workers, oldest first. A call of a function at its concurrency
   * limit waits without holding up the calls behind it (the scan past such calls is bounded).
   */
  private pump(): void {
    let index = 0;
    while (index < this.queue.length && index < MAX_SKIPPED) {
      const invocation = this.queue[index]!;
      if (this.atConcurrencyLimit(invocation.fn)) {
        index += 1;
        continue;
      }
      const worker = this.choose(invocation);
      if (!worker) return;
      if (index === 0) this.queue.shift();
      else this.queue.splice(index, 1);
      this.countQueued(invocation, -1);
      worker.inflight.set(invocation.call.callNum, invocation);
      this.send(worker.routingId, 'invoke', invocation);
      this.emit('dispatched', invocation, worker);
    }
  }

  private atConcurrencyLimit(fn: FunctionRecord): boolean {
    const limit = fn.limits?.concurrency;
    if (limit === undefined) return false;
    let running = 0;
    for (const worker of this.workers.values()) {
      for (const invocation of worker.inflight.values()) if (invocation.fn.functionName === fn.functionName) running += 1;
    }
    return running >= limit;
  }

  /**
   * The seed's invocation policies. `warm` (default): a node with a warm container of the function,
   * then the function's home node (rendezvous hashing, as OpenWhisk and Fn place functions for
   * locality) while it is less than 3/4 busy, then the least loaded. `home`: the home node first.
   * `least-loaded`: only load counts.
   */
  private choose(invocation: Invocation): WorkerNode | undefined {
    const free = [...this.workers.values()].filter((w) => !w.draining && w.inflight.size < w.capacity);
    if (free.length === 0) return undefined;
    const load = (w: WorkerNode) => w.inflight.size / w.capacity;
    const leastLoaded = (ws: WorkerNode[]) => ws.reduce((a, b) => (load(b) < load(a) ? b : a));
    const policy = this.options.policy ?? 'warm';
    if (policy === 'least-loaded') return leastLoaded(free);
    if (policy === 'warm') {
      const key = warmKey(invocation.fn);
      const warm = free.filter((w) => (w.warm[key] ?? 0) > 0);
      if (warm.length > 0) return leastLoaded(warm);
    }
    const home = free.reduce((a, b) => (homeScore(invocation.fn.functionName, b.nodeId) > homeScore(invocation.fn.functionName, a.nodeId) ? b : a));
    if (load(home) < 0.75) return home;
    return leastLoaded(free);
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const [identity, frame] of this.socket) {
        this.handle(identity!.toString(), frame);
      }
    } catch (err) {
      if (!this.closed) this.options.log.error({ err: String(err) }, 'worker channel receive loop ended');
    }
  }

  private handle(routingId: string, frame: Buffer | undefined): void {
    let message;
    try {
      message = decodeMessage(frame);
    } catch (err) {
      this.options.log.warn({ routingId, err: String(err) }, 'dropped a malformed frame from a worker');
      return;
    }
    if (isReply(message)) return;
    const worker = this.workers.get(routingId);
    if (worker) worker.lastSeen = Date.now();
    const content = message.content as WorkerToApi[keyof WorkerToApi];
    switch (message.msgType) {
      case 'hello':
        void this.register(routingId, content as WorkerToApi['hello']);
        return;
      case 'heartbeat': {
        if (!worker) return this.send(routingId, 'reregister', {});
        const beat = content as WorkerToApi['heartbeat'];
        worker.queued = typeof beat?.queued === 'number' ? beat.queued : 0;
        if (beat?.warm && typeof beat.warm === 'object') worker.warm = beat.warm;
        if (Array.isArray(beat?.inflight)) worker.reported = callNums(beat.inflight);
        return;
      }
      case 'callDone': {
        const call = (content as WorkerToApi['callDone'])?.call;
        if (!call || typeof call.callNum !== 'number') return;
        worker?.inflight.delete(call.callNum);
        worker?.reported.delete(call.callNum);
        this.emit('callDone', call as Call);
        this.pump();
        return;
      }
      case 'draining':
        if (worker) worker.draining = true;
        return;
      case 'handBack': {
        const callNum = (content as WorkerToApi['handBack'])?.callNum;
        const invocation = typeof callNum === 'number' ? worker?.inflight.get(callNum) : undefined;
        if (!worker || !invocation) return;
        worker.inflight.delete(callNum);
        this.enqueue(invocation, 'front');
        this.pump();
        return;
      }
      case 'bye':
        if (worker) this.expire(worker, 'said bye');
        return;
      default:
        this.options.log.warn({ routingId, msgType: message.msgType }, 'dropped an unknown message from a worker');
    }
  }

  private async register(routingId: string, hello: WorkerToApi['hello']): Promise<void> {
    const capacity = Number.isInteger(hello?.capacity) && hello.capacity > 0 ? Math.min(hello.capacity, 1024) : 1;
    const nodeId = typeof hello?.nodeId === 'string' ? hello.nodeId.slice(0, 128) : routingId;
    const now = Date.now();
    const existing = this.workers.get(routingId);
    const worker: WorkerNode = existing ?? {
      routingId,
      nodeId,
      pid: typeof hello?.pid === 'number' ? hello.pid : 0,
      capacity,
      inflight: new Map(),
      reported: new Set(),
      queued: 0,
      warm: {},
      draining: false,
      connectedAt: now,
      lastSeen: now,
    };
    worker.capacity = capacity;
    worker.reported = callNums(hello?.inflight);
    this.workers.set(routingId, worker);
    this.options.log.info({ nodeId, routingId, capacity }, 'worker registered');
    try {
      const snapshot = await this.options.snapshot();
      this.send(routingId, 'welcome', { ...snapshot, heartbeatMs: this.options.heartbeatMs });
    } catch (err) {
      this.options.log.warn({ err: String(err) }, 'could not send the snapshot to a new worker');
    }
    this.emit('workerJoined', worker);
    this.pump();
  }

  private beat(): void {
    const deadline = Date.now() - this.options.heartbeatMs * this.options.liveness;
    for (const worker of [...this.workers.values()]) {
      if (worker.lastSeen < deadline) this.expire(worker, 'missed heartbeats');
      else this.send(worker.routingId, 'heartbeat', {});
    }
  }

  private expire(worker: WorkerNode, why: string): void {
    if (!this.workers.delete(worker.routingId)) return;
    this.options.log.warn({ nodeId: worker.nodeId, routingId: worker.routingId, why, inflight: worker.inflight.size }, 'worker expired');
    const lost = new Set([...worker.inflight.keys(), ...worker.reported]);
    for (const callNum of lost) this.emit('lost', callNum, worker);
    this.emit('workerLeft', worker, why);
    this.pump();
  }

  private onSendFailed(err: unknown, frames: zmq.MessageLike[]): void {
    const routingId = String(frames[0]);
    const worker = this.workers.get(routingId);
    this.options.log.warn({ routingId, err: String(err) }, 'send to a worker failed');
    if (!worker) return;
    // The invoke that failed to leave is queued again rather than counted as lost.
    try {
      const message = decodeMessage(Buffer.from(frames[1] as Buffer));
      if (!isReply(message) && message.msgType === 'invoke') {
        const invocation = message.content as Invocation;
        worker.inflight.delete(invocation.call.callNum);
        this.enqueue(invocation, 'front');
      }
    } catch {
      /* not ours to decode */
    }
    this.expire(worker, 'unreachable');
  }
}

function callNums(value: unknown): Set<number> {
  return new Set(Array.isArray(value) ? value.filter((n): n is number => Number.isInteger(n)).slice(0, 100_000) : []);
}

/** Rendezvous hashing: each function has a stable order of preference over the nodes. */
function homeScore(funcName: string, nodeId: string): number {
  return createHash('sha1').update(`${funcName}\0${nodeId}`).digest().readUInt32BE(0);
}
