import { EventEmitter } from 'node:events';
import * as zmq from 'zeromq';
import { Channel, type Peer } from '../protocol/channel';
import { MAX_FRAME_BYTES } from '../protocol/envelope';
import type { Logger } from '../protocol/log';
import { isKeyOfFunction, isStemKey, stemKey, warmKey, type WarmCounts, type WarmKey } from '../protocol/warm-key';
import {
  miniworkerToWorkerSchemas,
  workerToMiniworkerSchemas,
  type Job,
  type MiniworkerToWorker,
  type Prewarm,
  type Stem,
  type WorkerToMiniworker,
} from '../protocol/worker-messages';
import { startChild, type ChildHandle } from '../protocol/supervisor';
import type { MiniworkerDb } from '../protocol/db-client';
import { asPlatformError, PlatformError } from '../protocol/errors';
import type { FromMiniworkerThread, MiniworkerThreadData, ThreadDbAsk } from '../protocol/miniworker-thread';
import { MiniworkerThread } from './miniworker-thread';

/**
 * Miniworkers started at once: each start costs a process or a thread, and a container. A slot
 * holds its start until it is first idle, its warm-up (if any) done: a prewarm of hundreds of
 * containers starts them a few at a time instead of all at once.
 */
const MAX_STARTING = 4;
/** A start that has not ended after this long (a miniworker stuck before its first idle) lets the next one begin. */
const START_HOLD_MS = 120_000;
/** Pause before starting stem cells again for a runtime whose stem cell failed to start. */
const STEM_RETRY_MS = 30_000;

type Warming = { msgType: 'prewarm'; content: Prewarm; key: WarmKey } | { msgType: 'stem'; content: Stem; key: WarmKey };

type MiniworkerExit = { code: number | null; signal: NodeJS.Signals | null; error?: Error };

type SlotState = 'starting' | 'idle' | 'busy' | 'stopping' | 'stopped';

interface Slot {
  id: number;
  routingId: string;
  /** The miniworker: a process, or a thread of this worker. */
  child?: ChildHandle;
  thread?: MiniworkerThread;
  state: SlotState;
  job?: Job;
  /** The function version whose container this miniworker keeps, if any. */
  warm: WarmKey | null;
  /** Where the warm container is going, while a prewarm runs or waits for the miniworker to start. */
  warming?: Warming;
  lastUsed: number;
  idleSince: number;
  /** When its current job or warm-up began. */
  busySince: number;
  /** Its current job runs in the container it kept warm (no container start). */
  warmCall?: boolean;
  /** Holds one of the MAX_STARTING starts: from its launch until it is first idle or gone. */
  launching?: NodeJS.Timeout;
  /** Its container is retired as soon as its call ends (a secret of its function changed meanwhile). */
  retireWhenDone?: boolean;
}

export interface PoolOptions {
  endpoint: string;
  /** Miniworkers kept even when idle. */
  minSize: number;
  /** The cap: miniworkers, and so containers, on this node. */
  maxSize: number;
  /** A warm container unused this long is removed. */
  keepAliveMs: number;
  /** A miniworker without a container, idle this long above minSize, exits. */
  idleExitMs: number;
  /** Processes (the miniworker's main.js, a ZeroMQ DEALER each) or threads of the worker (thread-main.js). */
  kind?: 'process' | 'thread';
  script: string;
  env: NodeJS.ProcessEnv;
  /** Threads: the entry file, what each is started with, and the db client their requests go through. */
  thread?: { script: string; data: Omit<MiniworkerThreadData, 'routingId'>; db: MiniworkerDb };
  log: Logger;
  /** Grace between SIGTERM and SIGKILL when stopping. */
  stopGraceMs?: number;
}

/**
 * The worker–miniworker channel, the seed's broker pattern, and the node's warm pool. The worker
 * binds a ROUTER and forks miniworkers; each asks for work ('ready') and gets one message at a
 * time. A miniworker in handler mode keeps its container warm, so a call goes first to a miniworker
 * warm for its function version, then to one without a container, then (evicting the least recently
 * used) to one warm for another function. Miniworkers are added while calls wait, up to the cap,
 * and exit when idle; warm containers are retired after keepAliveMs.
 * Events: 'done' (finish command, job), 'lost' (job), 'idle'.
 */
export class MiniworkerPool extends EventEmitter {
  private readonly socket = new zmq.Router({ linger: 0, mandatory: true, receiveHighWaterMark: 0, sendHighWaterMark: 0, maxMessageSize: MAX_FRAME_BYTES });
  private readonly channel: Channel<typeof miniworkerToWorkerSchemas, typeof workerToMiniworkerSchemas>;
  private readonly slots = new Map<number, Slot>();
  private readonly abandoned: Job[] = [];
  /** Stem cells to keep, by runtime: under the runtime preload policy. */
  private readonly stemTargets = new Map<string, { stem: Stem; count: number; failedAt?: number }>();
  private nextId = 0;
  /** Slots waiting for a start, in order; `launching` of them hold one. */
  private readonly launchQueue: Slot[] = [];
  private launching = 0;
  private closing = false;
  private closed?: Promise<Job[]>;
  private timer?: NodeJS.Timeout;

  constructor(private readonly options: PoolOptions) {
    super();
    this.channel = new Channel({
      name: 'miniworker',
      socket: this.socket,
      inbound: miniworkerToWorkerSchemas,
      log: options.log,
      onSendFailed: (err, to) => this.onSendFailed(err, to),
      handlers: {
        ready: (_, from) => this.onReady(from),
        done: (done, from) => this.onDone(from, done),
        warmed: (warmed, from) => this.onWarmed(from, warmed),
        logs: (piece, from) => this.onLogs(from, piece),
      },
    });
  }

  async start(): Promise<void> {
    if (!this.threads) {
      await this.socket.bind(this.options.endpoint);
      this.channel.start();
    }
    for (let i = 0; i < this.options.minSize; i++) this.spawn();
    this.timer = setInterval(() => this.tick(), Math.min(1000, Math.max(50, this.options.keepAliveMs / 4)));
    this.timer.unref();
  }

  get size(): number {
    return [...this.slots.values()].filter((s) => s.state !== 'stopped').length;
  }

  get busy(): number {
    return this.count((s) => s.state === 'busy' && s.job !== undefined);
  }

  /** Miniworkers ready for a job now. */
  get idleCount(): number {
    return this.count((s) => s.state === 'idle');
  }

  /** The function versions with a warm container here, and how many of each. */
  warmCounts(): WarmCounts {
    const counts = {} as WarmCounts;
    for (const slot of this.slots.values()) if (slot.warm) counts[slot.warm] = (counts[slot.warm] ?? 0) + 1;
    return counts;
  }

  /** The routing ids of the miniworkers alive now (containers carry them as a label). */
  liveMiniworkers(): Set<string> {
    return new Set([...this.slots.values()].filter((s) => s.state !== 'stopped').map((s) => s.routingId));
  }

  activeCalls(): Set<number> {
    return new Set([...this.slots.values()].flatMap((s) => (s.job ? [s.job.call.callNum] : [])));
  }

  /** Hands the job to the best idle miniworker; false when none is idle (the caller may grow()). */
  assign(job: Job): boolean {
    const key = job.runtime.mode === 'handler' ? warmKey(job.fn) : null;
    const idle = [...this.slots.values()].filter((s) => s.state === 'idle');
    const stem = stemKey(job.runtime.name);
    const slot =
      (key ? idle.find((s) => s.warm === key) : undefined) ??
      (key && job.injectable ? idle.find((s) => s.warm === stem) : undefined) ??
      idle.find((s) => s.warm === null) ??
      idle.sort((a, b) => a.lastUsed - b.lastUsed)[0];
    if (!slot) return false;
    slot.state = 'busy';
    slot.busySince = Date.now();
    slot.warmCall = key !== null && slot.warm === key;
    slot.job = job;
    this.send(slot, 'job', job);
    return true;
  }

  /**
   * Asks the miniworker running this call to send (or stop sending) its output as it is written;
   * false when no miniworker runs it now.
   */
  follow(callNum: number, on: boolean): boolean {
    for (const slot of this.slots.values()) {
      if (slot.job?.call.callNum !== callNum) continue;
      this.send(slot, 'follow', { callNum, follow: on });
      return true;
    }
    return false;
  }

  /**
   * How long the most recently taken miniworker on a warm call has been at it (Infinity when none
   * is): a slot that turns warm calls over quickly takes a waiting call soon. Slots starting a
   * container, warming up or retiring do not count: they are held for a while whatever the load.
   */
  youngestWarmCallMs(): number {
    const now = Date.now();
    let youngest = Number.POSITIVE_INFINITY;
    for (const slot of this.slots.values()) if (slot.state === 'busy' && slot.job && slot.warmCall) youngest = Math.min(youngest, now - slot.busySince);
    return youngest;
  }

  /** Starts miniworkers for calls that wait, within the cap, a few at a time. */
  grow(waiting: number): void {
    const starting = this.count((s) => s.state === 'starting');
    const room = this.options.maxSize - this.size;
    const step = Math.max(0, Math.min(waiting - starting, room, MAX_STARTING - starting));
    for (let i = 0; i < step; i++) this.spawn();
  }

  /**
   * Makes sure `count` containers of this function version are warm: on miniworkers without a
   * container, on new ones within the cap, and then on spare ones, idle and warm for a function
   * that has more than one warm container. A function's only warm container is not taken.
   */
  prewarm(request: Prewarm, count: number): void {
    const key = warmKey(request.fn);
    const warming: Warming = { msgType: 'prewarm', content: request, key };
    let have = this.place(warming, count);
    if (have >= count) return;
    if (have >= count) return;
    const warmCounts = this.warmCounts();
    const spare = [...this.slots.values()]
      .filter((s) => s.state === 'idle' && s.warm !== null && s.warm !== key && !s.warming)
      .sort((a, b) => a.lastUsed - b.lastUsed);
    for (const slot of spare) {
      if (have >= count) return;
      if (warmCounts[slot.warm!]! <= 1) continue;
      warmCounts[slot.warm!]! -= 1;
      slot.warming = warming;
      this.startPrewarm(slot);
      have += 1;
    }
  }

  /** Keeps `count` stem cells of this runtime (count 0 stops keeping them). */
  setStems(stem: Stem, count: number): void {
    if (count <= 0) this.stemTargets.delete(stem.runtime.name);
    else this.stemTargets.set(stem.runtime.name, { stem, count });
    this.refillStems();
  }

  /**
   * Puts a warm-up on miniworkers without a container, then on new ones within the cap, until
   * `count` containers have (or are getting) it. Returns how many have it.
   */
  private place(warming: Warming, count: number): number {
    let have = [...this.slots.values()].filter((s) => s.warm === warming.key || s.warming?.key === warming.key).length;
    for (const slot of this.slots.values()) {
      if (have >= count) return have;
      if ((slot.state === 'idle' || slot.state === 'starting') && slot.warm === null && !slot.warming) {
        slot.warming = warming;
        if (slot.state === 'idle') this.startPrewarm(slot);
        have += 1;
      }
    }
    while (have < count && this.size < this.options.maxSize) {
      this.spawn().warming = warming;
      have += 1;
    }
    return have;
  }

  private refillStems(): void {
    if (this.closing) return;
    for (const { stem, count, failedAt } of this.stemTargets.values()) {
      // A runtime whose stem cells fail to start (its image is missing, say) is not retried every tick.
      if (failedAt && Date.now() - failedAt < STEM_RETRY_MS) continue;
      this.place({ msgType: 'stem', content: stem, key: stemKey(stem.runtime.name) }, count);
    }
  }

  /**
   * Stops every miniworker: SIGTERM lets a call in flight finish within the grace period, then
   * SIGKILL. Returns the jobs that were cut short, for the caller to record. A second call gets
   * the same answer when the first is done.
   */
  close(): Promise<Job[]> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<Job[]> {
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.all([...this.slots.values()].map((slot) => this.stopSlot(slot)));
    await this.channel.close();
    return this.abandoned.splice(0);
  }

  private count(predicate: (slot: Slot) => boolean): number {
    let n = 0;
    for (const slot of this.slots.values()) if (predicate(slot)) n += 1;
    return n;
  }

  private get threads(): boolean {
    return this.options.kind === 'thread';
  }

  private send<K extends keyof WorkerToMiniworker & string>(slot: Slot, msgType: K, content: WorkerToMiniworker[K]): void {
    if (slot.thread) slot.thread.post({ msgType, content } as never);
    else this.channel.send(msgType, content, slot.routingId);
  }

  private startPrewarm(slot: Slot): void {
    slot.state = 'busy';
    slot.busySince = Date.now();
    const warming = slot.warming!;
    if (warming.msgType === 'stem') this.send(slot, 'stem', warming.content);
    else this.send(slot, 'prewarm', warming.content);
  }

  private spawn(): Slot {
    const id = this.nextId++;
    const slot: Slot = { id, routingId: `mw-${id}-${process.pid}`, state: 'starting', warm: null, lastUsed: 0, idleSince: Date.now(), busySince: 0 };
    this.slots.set(id, slot);
    this.launchQueue.push(slot);
    this.launchNext();
    return slot;
  }

  /** Starts queued miniworkers while fewer than MAX_STARTING are starting. */
  private launchNext(): void {
    while (!this.closing && this.launching < MAX_STARTING && this.launchQueue.length > 0) {
      const slot = this.launchQueue.shift()!;
      if (slot.state !== 'starting') continue;
      this.launching += 1;
      slot.launching = setTimeout(() => this.launchDone(slot), START_HOLD_MS);
      slot.launching.unref();
      this.launch(slot);
    }
  }

  /** A slot is first idle, or gone: its start is over, and the next queued one may begin. */
  private launchDone(slot: Slot): void {
    if (!slot.launching) return;
    clearTimeout(slot.launching);
    slot.launching = undefined;
    this.launching -= 1;
    this.launchNext();
  }

  private launch(slot: Slot): void {
    const id = slot.id;
    const exited = this.threads ? this.startThread(slot) : this.startProcess(slot);
    void exited.then(({ code, signal, error }) => {
      this.launchDone(slot);
      const job = slot.job;
      const wasStopping = slot.state === 'stopping';
      slot.job = undefined;
      slot.state = 'stopped';
      slot.warm = null;
      this.slots.delete(id);
      if (this.closing) {
        if (job) this.abandoned.push(job);
        return;
      }
      if (!wasStopping || job) this.options.log.warn({ miniworker: slot.routingId, code, signal, err: error?.message, callNum: job?.call.callNum }, 'miniworker exited');
      if (job) this.emit('lost', job);
      if (this.size < this.options.minSize) setTimeout(() => !this.closing && this.size < this.options.minSize && this.spawn(), 200);
      this.emit('idle');
    });
  }

  private startProcess(slot: Slot): Promise<MiniworkerExit> {
    const child = startChild({
      name: `miniworker ${slot.routingId}`,
      script: this.options.script,
      env: { ...this.options.env, FAAS_MINIWORKER_ENDPOINT: this.options.endpoint, FAAS_MINIWORKER_ID: slot.routingId },
      stdio: 'inherit',
      // A node can hold a hundred miniworkers: keep each one's heap small.
      execArgv: [...process.execArgv, '--max-semi-space-size=1', '--max-old-space-size=192'],
      graceMs: this.options.stopGraceMs ?? 5000,
    });
    slot.child = child;
    return child.exited;
  }

  private startThread(slot: Slot): Promise<MiniworkerExit> {
    const { script, data } = this.options.thread!;
    const thread = new MiniworkerThread(script, { ...data, routingId: slot.routingId }, (message) => this.onThreadMessage(slot, message), this.options.stopGraceMs ?? 5000);
    slot.thread = thread;
    return thread.exited;
  }

  private async stopSlot(slot: Slot): Promise<void> {
    if (!slot.child && !slot.thread) {
      // Still waiting for its start: it never ran.
      slot.state = 'stopped';
      this.slots.delete(slot.id);
      return;
    }
    const miniworker = slot.child ?? slot.thread;
    if (!miniworker?.alive) return;
    if (slot.state !== 'busy') slot.state = 'stopping';
    await miniworker.stop();
  }

  /**
   * Stops the idle warm containers of a function; busy ones end their call and then idle out, or, with
   * `busyToo` (a secret of the function changed), are retired as soon as their call ends.
   */
  retireFunction(name: string, busyToo = false): void {
    for (const slot of this.slots.values()) {
      if (slot.state === 'idle' && slot.warm && isKeyOfFunction(slot.warm, name)) {
        slot.state = 'busy';
        slot.busySince = Date.now();
        this.send(slot, 'retire', {});
      } else if (busyToo && slot.state === 'busy' && slot.job?.fn.functionName === name) {
        slot.retireWhenDone = true;
      }
    }
  }

  /** Retires warm containers past their keep-alive, and miniworkers idle past idleExitMs. */
  private tick(): void {
    this.refillStems();
    const now = Date.now();
    let size = this.size;
    for (const slot of this.slots.values()) {
      if (slot.state !== 'idle') continue;
      if (slot.warm && !isStemKey(slot.warm) && now - slot.lastUsed > this.options.keepAliveMs) {
        slot.state = 'busy';
        slot.busySince = Date.now();
        this.send(slot, 'retire', {});
      } else if (!slot.warm && size > this.options.minSize && now - slot.idleSince > this.options.idleExitMs) {
        size -= 1;
        void this.stopSlot(slot);
      }
    }
  }

  private findSlot(routingId: string): Slot | undefined {
    const id = Number(routingId.split('-')[1]);
    const slot = this.slots.get(id);
    return slot && slot.routingId === routingId ? slot : undefined;
  }

  /** The live miniworker behind this peer; a frame from any other peer is dropped. */
  private known(from: Peer, msgType: string): Slot | undefined {
    const slot = this.findSlot(from);
    if (!slot || slot.state === 'stopped') {
      this.channel.drop('unknown_peer', from, undefined, msgType);
      return undefined;
    }
    return slot;
  }

  private onReady(from: Peer): void {
    const slot = this.known(from, 'ready');
    if (!slot) return;
    if (slot.state !== 'starting') return this.channel.drop('unexpected', from, `ready while ${slot.state}`, 'ready');
    if (slot.warming) return this.startPrewarm(slot);
    this.becomeIdle(slot);
  }

  /**
   * A miniworker reports only the job it was given, and only as a miniworker: the outcome handed on
   * names the job's own call and attempt. Its container is free again: the slot is idle at once,
   * while the worker writes the outcome.
   */
  private onDone(from: Peer, done: MiniworkerToWorker['done']): void {
    const slot = this.known(from, 'done');
    if (!slot) return;
    const job = slot.job;
    const { finish } = done;
    if (!job || job.call.callNum !== finish.callNum || finish.by !== 'miniworker' || (finish.attempt ?? 1) !== (job.call.attempts ?? 1)) {
      this.channel.drop('not_held', from, `call ${finish.callNum}`, 'done');
      return;
    }
    slot.job = undefined;
    slot.warm = done.warm;
    slot.lastUsed = Date.now();
    this.emit('done', finish, job);
    if (slot.retireWhenDone) {
      slot.retireWhenDone = false;
      if (slot.warm) {
        slot.busySince = Date.now();
        this.send(slot, 'retire', {});
        return;
      }
    }
    this.becomeIdle(slot);
  }

  /** The answer to a prewarm, stem or retire: only while one of those is under way. */
  /** A piece of the output of the call a miniworker runs, handed on as a 'logs' event; of any other call, dropped. */
  private onLogs(from: Peer, piece: MiniworkerToWorker['logs']): void {
    const slot = this.known(from, 'logs');
    if (!slot) return;
    if (slot.job?.call.callNum !== piece.callNum) return this.channel.drop('not_held', from, `call ${piece.callNum}`, 'logs');
    this.emit('logs', piece);
  }

  private onWarmed(from: Peer, warmed: MiniworkerToWorker['warmed']): void {
    const slot = this.known(from, 'warmed');
    if (!slot) return;
    if (slot.state !== 'busy' || slot.job) {
      this.channel.drop('unexpected', from, `warmed while ${slot.job ? 'running a call' : slot.state}`, 'warmed');
      return;
    }
    if (warmed.error && slot.warming?.msgType === 'stem') {
      const target = this.stemTargets.get(slot.warming.content.runtime.name);
      if (target) target.failedAt = Date.now();
    }
    slot.warm = warmed.warm;
    slot.warming = undefined;
    slot.lastUsed = Date.now();
    this.becomeIdle(slot);
  }

  private becomeIdle(slot: Slot): void {
    this.launchDone(slot);
    if (slot.state === 'stopping' || slot.state === 'stopped') return;
    slot.state = 'idle';
    slot.idleSince = Date.now();
    if (this.closing) return;
    this.emit('idle');
  }

  /**
   * A message from a miniworker thread: checked against the same schemas as a process's frames
   * (the thread runs the platform's code, but the outputs it carries are a function's), and
   * handed to the same handlers.
   */
  private onThreadMessage(slot: Slot, message: FromMiniworkerThread): void {
    const from = slot.routingId;
    const msgType = typeof message === 'object' && message !== null ? (message as { msgType?: unknown }).msgType : undefined;
    if (msgType === 'db') return this.onThreadDb(slot, (message as { content: ThreadDbAsk }).content);
    if (typeof msgType !== 'string' || !Object.prototype.hasOwnProperty.call(miniworkerToWorkerSchemas, msgType)) {
      this.channel.drop('unknown_type', from, undefined, typeof msgType === 'string' ? msgType : undefined);
      return;
    }
    const parsed = miniworkerToWorkerSchemas[msgType as keyof typeof miniworkerToWorkerSchemas].safeParse((message as { content?: unknown }).content);
    if (!parsed.success) {
      this.channel.drop('bad_content', from, parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.')} ${i.message}`).join('; '), msgType);
      return;
    }
    if (msgType === 'ready') this.onReady(from);
    else if (msgType === 'done') this.onDone(from, parsed.data as MiniworkerToWorker['done']);
    else if (msgType === 'logs') this.onLogs(from, parsed.data as MiniworkerToWorker['logs']);
    else this.onWarmed(from, parsed.data as MiniworkerToWorker['warmed']);
  }

  /**
   * A thread's db-service request, made on the worker's client: RUNNING and outputs, and only for
   * the call the thread holds, as db-service would check for a miniworker of its own.
   */
  private onThreadDb(slot: Slot, ask: ThreadDbAsk): void {
    const answer = (result: Promise<unknown>) =>
      void result.then(
        (data) => slot.thread?.post({ msgType: 'dbAnswer', content: { id: ask.id, ok: true, data } }),
        (err: unknown) => slot.thread?.post({ msgType: 'dbAnswer', content: { id: ask.id, ok: false, error: asPlatformError(err).toJSON() } }),
      );
    const db = this.options.thread?.db;
    const held = slot.job?.call.callNum;
    if (!db || typeof ask !== 'object' || ask === null || !Number.isSafeInteger(ask.id)) {
      this.channel.drop('malformed', slot.routingId, 'a db request without an id', 'db');
      return;
    }
    if (ask.op === 'startCall' && ask.command?.callNum === held && ask.command.by === 'miniworker') return answer(db.startCall(ask.command));
    if (ask.op === 'putOutputs' && ask.callNum === held && ask.zip instanceof Uint8Array) return answer(db.putOutputs(held, Buffer.from(ask.zip.buffer, ask.zip.byteOffset, ask.zip.byteLength)));
    // The secrets of the function whose call it holds, and no other.
    const secrets = slot.job?.fn.secrets ?? [];
    if (ask.op === 'getSecretValues' && Array.isArray(ask.names) && ask.names.length > 0 && ask.names.every((n) => typeof n === 'string' && secrets.includes(n))) {
      return answer(db.getSecretValues(ask.names));
    }
    this.channel.drop('not_held', slot.routingId, `${String(ask.op).slice(0, 32)} for a call it does not hold`, 'db');
    answer(Promise.reject(new PlatformError('FORBIDDEN', 'a miniworker records only the call it holds')));
  }

  private onSendFailed(err: unknown, routingId: Peer): void {
    const slot = this.findSlot(routingId);
    this.options.log.warn({ routingId, err: String(err) }, 'send to a miniworker failed');
    if (slot?.child && slot.state === 'busy') slot.child.kill('SIGKILL'); // its exit reports the job lost
  }

}
