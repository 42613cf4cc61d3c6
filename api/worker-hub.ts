import { EventEmitter } from 'node:events';
import * as zmq from 'zeromq';
import { serverCurveOptions } from '../protocol/curve';
import { Channel, type ChannelStats, type Peer } from '../protocol/channel';
import { decodeMessage, isReply, MAX_FRAME_BYTES } from '../protocol/envelope';
import type { Logger } from '../protocol/log';
import {
  apiToWorkerSchemas,
  MAX_INVOKES,
  workerToApiSchemas,
  type ApiToWorker,
  type Invocation,
  type WarmCounts,
  type WireCall,
  type WorkerToApi,
} from '../protocol/worker-messages';
import { isFinal, type Call, type FunctionRecord, type Runtime } from '../protocol/types';
import { CallQueue } from './call-queue';
import { choose, type PlacementPolicy } from './placement';

export interface WorkerNode {
  routingId: string;
  nodeId: string;
  pid: number;
  capacity: number;
  inflight: Map<number, Invocation>;
  /** The calls the worker says it holds (from hello and heartbeats), also those handed to it before an api restart. */
  reported: Set<number>;
  queued: number;
  /** Warm containers by warm key, from the worker's heartbeats. */
  warm: WarmCounts;
  draining: boolean;
  connectedAt: number;
  lastSeen: number;
  /** Calls sent to the worker that its heartbeats have not listed, and in how many heartbeats in a row. */
  unlisted?: Map<number, number>;
}

export interface WorkerHubOptions {
  heartbeatMs: number;
  /** Beats missed before a silent worker is expired. */
  liveness: number;
  /** What a worker needs on hello: every runtime and function. */
  snapshot: () => Promise<{ runtimes: Runtime[]; functions: FunctionRecord[] }>;
  /** Invocation policy: warm (default), home, least-loaded. */
  policy?: PlacementPolicy;
  /** The largest request body the api takes: how many invocations fit in one message follows from it. */
  maxBodyBytes?: number;
  log: Logger;
}

/** How far past calls held back by their function's concurrency limit one pump looks. */
const MAX_SKIPPED = 10_000;
/** Calls remembered as ended here, so that a replayed callDone or a claim in a hello is refused. */
const MAX_REMEMBERED_ENDED = 65_536;

/**
 * The api's side of the api–worker channel: a ROUTER (mandatory, so a vanished worker is an error,
 * not a silent drop) that knows which workers are alive, hands pending calls to the least loaded
 * one with a free slot, and reports calls that end ('callDone') or lose their worker ('lost').
 *
 * Only a registered worker (hello first) is heard, and a worker speaks only for the calls it holds:
 * those the hub gave it, or those it named in hello or a heartbeat (after an api restart). Any
 * other frame is dropped and counted by the channel.
 */
export class WorkerHub extends EventEmitter {
  private readonly socket = new zmq.Router({ linger: 0, mandatory: true, receiveHighWaterMark: 0, sendHighWaterMark: 0, maxMessageSize: MAX_FRAME_BYTES, ...serverCurveOptions(process.env, 'workers') });
  private readonly channel: Channel<typeof workerToApiSchemas, typeof apiToWorkerSchemas>;
  private lastBeatAt = 0;
  private catalogChanges = 0;
  private snapshotRead?: { changes: number; promise: Promise<{ runtimes: Runtime[]; functions: FunctionRecord[] }> };
  private skippedJudging = false;
  /** Workers to be asked to say hello again, their welcome having failed. */
  private readonly welcomeRetries = new Map<string, NodeJS.Timeout>();
  private readonly workers = new Map<string, WorkerNode>();
  /** Calls that ended through this hub, oldest first (bounded). */
  private readonly ended = new Set<number>();
  private readonly queue = new CallQueue();
  /** Calls waiting for their time to be queued (retries after their backoff): held all the same. */
  private readonly delayed = new Map<number, NodeJS.Timeout>();
  /** Invocations made in this turn, by worker, sent together when the turn ends. */
  private readonly outgoing = new Map<string, Invocation[]>();
  private timer?: NodeJS.Timeout;
  private closed = false;
  /** Whether workers send callsStarted (someone follows the events that need them). */
  private callStarts = false;
  /** Calls whose logs someone follows: a call still queued is followed once it is sent. */
  private readonly followed = new Set<number>();

  constructor(private readonly options: WorkerHubOptions) {
    super();
    this.channel = new Channel({
      name: 'worker',
      socket: this.socket,
      inbound: workerToApiSchemas,
      log: options.log,
      onSendFailed: (err, to, frame) => this.onSendFailed(err, to, frame),
      handlers: {
        hello: (hello, from) => this.register(from, hello),
        heartbeat: (beat, from) => this.onHeartbeat(from, beat),
        callDone: ({ call }, from) => this.onCallDone(from, call),
        callsDone: ({ calls }, from) => {
          for (const call of calls) this.onCallDone(from, call);
        },
        draining: (_, from) => {
          const worker = this.registered(from, 'draining');
          if (!worker || worker.draining) return;
          worker.draining = true;
          this.emit('workerDraining', worker);
        },
        callsStarted: ({ calls }, from) => this.onCallsStarted(from, calls),
        callLogs: (piece, from) => {
          const worker = this.registered(from, 'callLogs');
          if (!worker) return;
          if (!worker.inflight.has(piece.callNum) && !worker.reported.has(piece.callNum)) return this.channel.drop('not_held', from, `call ${piece.callNum}`, 'callLogs');
          this.emit('callLogs', piece);
        },
        handBack: ({ callNum }, from) => this.onHandBack(from, callNum),
        bye: (_, from) => {
          const worker = this.registered(from, 'bye');
          if (worker) this.expire(worker, 'said bye');
        },
      },
    });
  }

  async bind(endpoint: string): Promise<string> {
    await this.socket.bind(endpoint);
    this.channel.start();
    this.timer = setInterval(() => this.beat(), this.options.heartbeatMs);
    this.lastBeatAt = Date.now();
    return this.socket.lastEndpoint ?? endpoint;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const timer of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    for (const timer of this.welcomeRetries.values()) clearTimeout(timer);
    this.welcomeRetries.clear();
    await this.channel.close();
  }

  /** Frames received, handled and dropped (by reason) on the worker channel. */
  channelStats(): ChannelStats {
    return this.channel.stats();
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
    for (const callNum of this.queue.callNumbers()) held.add(callNum);
    for (const callNum of this.delayed.keys()) held.add(callNum);
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
    return this.queue.countFor(funcName);
  }

  /** Asks every worker, now and when one joins, for callsStarted or no more of them. */
  watchStarts(on: boolean): void {
    if (on === this.callStarts) return;
    this.callStarts = on;
    this.broadcast('watch', { callStarts: on });
  }

  /**
   * Asks the worker holding a call to send (or stop sending) what it writes as it writes it. A call
   * still queued is asked for when it is sent; one no worker holds is not followed (it has ended, or
   * recovery will end it).
   */
  followLogs(callNum: number, follow: boolean): void {
    if (follow) this.followed.add(callNum);
    else this.followed.delete(callNum);
    for (const worker of this.workers.values()) {
      if (worker.inflight.has(callNum) || worker.reported.has(callNum)) return this.send(worker.routingId, 'followLogs', { callNum, follow });
    }
  }

  /** Queues a call for the next free worker slot. */
  dispatch(invocation: Invocation): void {
    this.queue.add(invocation, 'back');
    this.pump();
  }

  /** Queues the call after `delayMs`; until then the sweep counts it as held. */
  dispatchLater(invocation: Invocation, delayMs: number): void {
    const callNum = invocation.call.callNum;
    if (this.delayed.has(callNum) || this.closed) return;
    const timer = setTimeout(() => {
      this.delayed.delete(callNum);
      this.dispatch(invocation);
    }, delayMs);
    timer.unref();
    this.delayed.set(callNum, timer);
  }

  broadcast<K extends keyof ApiToWorker>(msgType: K, content: ApiToWorker[K]): void {
    // What workers are told of the catalog makes a snapshot read before it stale.
    if (msgType !== 'watch' && msgType !== 'heartbeat') this.catalogChanges += 1;
    for (const worker of this.workers.values()) this.send(worker.routingId, msgType, content);
  }

  /**
   * The runtimes and functions for a welcome. Workers that say hello together (a fleet starting, or
   * reconnecting after an api restart) share one read: without it every hello is two db-service
   * reads, and hellos repeated while db-service is slow would add to what makes it slow. A read
   * begun before a catalog change is not shared after it.
   */
  private snapshot(): Promise<{ runtimes: Runtime[]; functions: FunctionRecord[] }> {
    if (this.snapshotRead && this.snapshotRead.changes === this.catalogChanges) return this.snapshotRead.promise;
    const read = { changes: this.catalogChanges, promise: this.options.snapshot() };
    this.snapshotRead = read;
    const done = () => {
      if (this.snapshotRead === read) this.snapshotRead = undefined;
    };
    read.promise.then(done, done);
    return read.promise;
  }

  private send<K extends keyof ApiToWorker & string>(routingId: string, msgType: K, content: ApiToWorker[K]): void {
    this.channel.send(msgType, content, routingId);
  }

  /** Sends queued calls to free workers, oldest first (see CallQueue.pump and placement's choose). */
  private pump(): void {
    this.queue.pump((invocation) => {
      if (this.atConcurrencyLimit(invocation.fn)) return 'held';
      const worker = choose(this.workers.values(), invocation.fn, this.options.policy ?? 'warm');
      if (!worker) return 'full';
      const sent: Invocation = { ...invocation, dispatchedAt: new Date().toISOString() };
      worker.inflight.set(sent.call.callNum, sent);
      this.post(worker.routingId, sent);
      this.emit('dispatched', sent, worker);
      return 'taken';
    }, MAX_SKIPPED);
  }

  /**
   * Invocations for one worker made in the same turn leave in one `invokes` message, as many as fit a
   * frame whatever their params (the api takes bodies up to maxBodyBytes); alone, as `invoke`.
   */
  private post(routingId: string, invocation: Invocation): void {
    let outgoing = this.outgoing.get(routingId);
    if (!outgoing) {
      outgoing = [];
      this.outgoing.set(routingId, outgoing);
      if (this.outgoing.size === 1) setImmediate(() => this.flushOutgoing());
    }
    outgoing.push(invocation);
  }

  private flushOutgoing(): void {
    const perMessage = Math.max(1, Math.min(MAX_INVOKES, Math.floor((MAX_FRAME_BYTES / 2) / (this.options.maxBodyBytes ?? MAX_FRAME_BYTES))));
    for (const [routingId, invocations] of this.outgoing) {
      for (let i = 0; i < invocations.length; i += perMessage) {
        const part = invocations.slice(i, i + perMessage);
        if (part.length === 1) this.send(routingId, 'invoke', part[0]!);
        else this.send(routingId, 'invokes', { invocations: part });
      }
      if (this.followed.size > 0) {
        for (const { call } of invocations) if (this.followed.has(call.callNum)) this.send(routingId, 'followLogs', { callNum: call.callNum, follow: true });
      }
    }
    this.outgoing.clear();
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

  /** The registered worker behind this peer; a frame from any other peer is dropped. */
  private registered(from: Peer, msgType: string): WorkerNode | undefined {
    const worker = this.workers.get(from);
    if (!worker) {
      this.channel.drop('unregistered', from, undefined, msgType);
      return undefined;
    }
    worker.lastSeen = Date.now();
    return worker;
  }

  private onHeartbeat(from: Peer, beat: WorkerToApi['heartbeat']): void {
    const worker = this.registered(from, 'heartbeat');
    if (!worker) {
      this.send(from, 'reregister', {});
      return;
    }
    worker.queued = beat.queued;
    if (beat.warm) worker.warm = beat.warm;
    if (beat.inflight) {
      worker.reported = this.claimable(beat.inflight, worker);
      this.reconcile(worker);
    }
  }

  /**
   * A call sent to a worker that two heartbeats in a row do not list (and sent as long ago as a node
   * may stay silent, so that the invoke has arrived) is one the worker never got, or whose end was
   * lost on the way: its slot is freed and the call is reported 'unheld' for recovery to settle.
   * Otherwise a lost frame would keep the call unfinished and the slot taken forever.
   */
  private reconcile(worker: WorkerNode): void {
    const settled = Date.now() - this.options.heartbeatMs * this.options.liveness;
    let freed = false;
    for (const [callNum, invocation] of worker.inflight) {
      if (worker.reported.has(callNum) || Date.parse(invocation.dispatchedAt ?? '') > settled) {
        worker.unlisted?.delete(callNum);
        continue;
      }
      worker.unlisted ??= new Map();
      const misses = (worker.unlisted.get(callNum) ?? 0) + 1;
      if (misses < 2) {
        worker.unlisted.set(callNum, misses);
        continue;
      }
      worker.unlisted.delete(callNum);
      worker.inflight.delete(callNum);
      freed = true;
      this.options.log.warn({ callNum, nodeId: worker.nodeId }, 'a call sent to a worker is not held by it');
      this.emit('unheld', callNum, invocation);
    }
    if (worker.unlisted) for (const callNum of worker.unlisted.keys()) if (!worker.inflight.has(callNum)) worker.unlisted.delete(callNum);
    if (freed) this.pump();
  }

  /**
   * A worker reports only the calls it holds. The call handed on is the api's own record of what it
   * dispatched (number and function), with the worker's outcome.
   */
  private onCallDone(from: Peer, call: WireCall): void {
    const worker = this.registered(from, 'callDone');
    if (!worker) return;
    const invocation = worker.inflight.get(call.callNum);
    if (!invocation && !worker.reported.has(call.callNum)) {
      this.channel.drop('not_held', from, `call ${call.callNum}`, 'callDone');
      return;
    }
    if (!isFinal(call.status)) {
      this.channel.drop('not_final', from, `call ${call.callNum} is ${call.status}`, 'callDone');
      return;
    }
    worker.inflight.delete(call.callNum);
    worker.reported.delete(call.callNum);
    this.followed.delete(call.callNum);
    this.remember(call.callNum);
    const done: Call = invocation ? { ...call, callNum: invocation.call.callNum, funcName: invocation.call.funcName } : call;
    this.emit('callDone', done);
    this.pump();
  }

  /** Calls a worker handed to its miniworkers: those it holds, named with the api's own record of them. */
  private onCallsStarted(from: Peer, calls: { callNum: number }[]): void {
    const worker = this.registered(from, 'callsStarted');
    if (!worker) return;
    for (const { callNum } of calls) {
      const invocation = worker.inflight.get(callNum);
      if (invocation) this.emit('started', invocation.call, worker);
      else if (!worker.reported.has(callNum)) this.channel.drop('not_held', from, `call ${callNum}`, 'callsStarted');
    }
  }

  private onHandBack(from: Peer, callNum: number): void {
    const worker = this.registered(from, 'handBack');
    if (!worker) return;
    const invocation = worker.inflight.get(callNum);
    if (!invocation) {
      this.channel.drop('not_held', from, `call ${callNum}`, 'handBack');
      return;
    }
    worker.inflight.delete(callNum);
    worker.reported.delete(callNum);
    this.queue.add(invocation, 'front');
    this.pump();
  }

  private async register(routingId: string, hello: WorkerToApi['hello']): Promise<void> {
    const now = Date.now();
    const existing = this.workers.get(routingId);
    const worker: WorkerNode = existing ?? {
      routingId,
      nodeId: hello.nodeId,
      pid: hello.pid,
      capacity: hello.capacity,
      inflight: new Map(),
      reported: new Set(),
      queued: 0,
      warm: {},
      draining: false,
      connectedAt: now,
      lastSeen: now,
    };
    worker.capacity = hello.capacity;
    worker.lastSeen = now;
    worker.reported = this.claimable(hello.inflight ?? [], worker);
    this.workers.set(routingId, worker);
    this.options.log.info({ nodeId: hello.nodeId, routingId, capacity: hello.capacity }, 'worker registered');
    try {
      const changes = this.catalogChanges;
      let snapshot = await this.snapshot();
      // A change told to the workers meanwhile (this one, listed already, got it) may be missing from
      // a read begun before it was written: the welcome would then take it back.
      if (this.catalogChanges !== changes) snapshot = await this.snapshot();
      if (this.workers.get(routingId) !== worker) return;
      this.send(routingId, 'welcome', { ...snapshot, heartbeatMs: this.options.heartbeatMs });
      if (this.callStarts) this.send(routingId, 'watch', { callStarts: true });
    } catch (err) {
      this.options.log.warn({ err: String(err) }, 'could not send the snapshot to a new worker');
      // Without a welcome the worker knows no catalog (nothing preloaded, images never collected):
      // it is asked to say hello again in a while, and welcomed then.
      if (!this.welcomeRetries.has(routingId)) {
        const retry = setTimeout(() => {
          this.welcomeRetries.delete(routingId);
          if (this.workers.get(routingId) === worker) this.send(routingId, 'reregister', {});
        }, this.options.heartbeatMs * this.options.liveness);
        retry.unref();
        this.welcomeRetries.set(routingId, retry);
      }
    }
    // A hello of a worker already registered (it missed a welcome, say) is not a new node.
    this.emit('workerJoined', worker, existing === undefined);
    this.pump();
  }

  /**
   * The calls a worker may claim (hello, heartbeat): not a call another worker was given, not one
   * waiting in the queue, not one that already ended here.
   */
  private claimable(callNums: number[], worker: WorkerNode): Set<number> {
    const claims = new Set<number>();
    for (const callNum of callNums) {
      if (this.ended.has(callNum) || this.queue.has(callNum)) continue;
      if (!worker.inflight.has(callNum) && this.heldByAnother(callNum, worker)) continue;
      claims.add(callNum);
    }
    return claims;
  }

  private heldByAnother(callNum: number, worker: WorkerNode): boolean {
    for (const other of this.workers.values()) if (other !== worker && other.inflight.has(callNum)) return true;
    return false;
  }

  private remember(callNum: number): void {
    this.ended.add(callNum);
    if (this.ended.size > MAX_REMEMBERED_ENDED) this.ended.delete(this.ended.values().next().value!);
  }

  private beat(): void {
    const now = Date.now();
    // A beat that comes late means this process stalled: what the workers sent meanwhile may still
    // wait unread in the socket. Nobody is judged on such a beat — but on the next one, late or not,
    // so that a dead node's calls still end while this process is overloaded.
    const stalled = now - this.lastBeatAt > this.options.heartbeatMs * 1.5 && !this.skippedJudging;
    this.lastBeatAt = now;
    this.skippedJudging = stalled;
    const deadline = now - this.options.heartbeatMs * this.options.liveness;
    for (const worker of [...this.workers.values()]) {
      if (!stalled && worker.lastSeen < deadline) this.expire(worker, 'missed heartbeats');
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

  private onSendFailed(err: unknown, routingId: Peer, frame: Buffer): void {
    const worker = this.workers.get(routingId);
    this.options.log.warn({ routingId, err: String(err) }, 'send to a worker failed');
    if (!worker) return;
    // The invoke that failed to leave is queued again rather than counted as lost.
    try {
      const message = decodeMessage(frame);
      if (!isReply(message) && (message.msgType === 'invoke' || message.msgType === 'invokes')) {
        const invocations = message.msgType === 'invoke' ? [apiToWorkerSchemas.invoke.parse(message.content)] : apiToWorkerSchemas.invokes.parse(message.content).invocations;
        for (const invocation of invocations.reverse()) {
          worker.inflight.delete(invocation.call.callNum);
          this.queue.add(invocation, 'front');
        }
      }
    } catch {
      /* not an invoke */
    }
    this.expire(worker, 'unreachable');
  }
}
