import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as zmq from 'zeromq';
import { clientCurveOptions } from '../protocol/curve';
import { DbClient } from '../protocol/db-client';
import { Channel } from '../protocol/channel';
import { PlatformError } from '../protocol/errors';
import type { Logger } from '../protocol/log';
import { apiToWorkerSchemas, MAX_BATCHED_CALL_CHARS, MAX_CALLS_DONE, workerToApiSchemas, type ApiToWorker, type Invocation, type Job, type LogPiece, type WorkerToApi } from '../protocol/worker-messages';
import type { FailCommand, FinishCommand } from '../protocol/call-lifecycle';
import type { Call, FunctionRecord, Runtime } from '../protocol/types';
import { changesContainer, type Sandbox } from '../protocol/limits';
import { INLINE_PACKAGE_BYTES } from '../miniworker/handler-container';
import { aliveFile, type WorkerConfig } from './config';
import { PrepareError, type FunctionImage } from './function-images';
import { nodeBackend, type NodeBackend } from './backend';
import { CpuGauge } from './cpu-gauge';
import { FinalWriter } from './final-writer';
import { MiniworkerPool } from './miniworker-pool';
import { PackageCache } from './package-cache';

/** Bounds of the heartbeat interval the api may ask for. */
const MIN_HEARTBEAT_MS = 50;
/** Outcomes waiting to be written past which this node takes no more calls (db-service is slow or away). */
const MAX_WAITING_FINALS = 1024;
/** The idle share of the node's processors from which more miniworkers may help calls that wait. */
const MIN_IDLE_TO_GROW = 0.25;
/** A call held this long in every busy miniworker is a long one: a new miniworker pays off whatever the load. */
const LONG_CALL_MS = 1000;
const MAX_HEARTBEAT_MS = 60_000;

/**
 * One per node. Talks to the api over a DEALER (hello, heartbeats, invocations, results), prepares
 * function images, and brokers jobs to its miniworkers. Docker is only reached through async calls,
 * so the event loop never blocks on it.
 */
export class Worker {
  private readonly socket: zmq.Dealer;
  private readonly channel: Channel<typeof apiToWorkerSchemas, typeof workerToApiSchemas>;
  private readonly backend: NodeBackend;
  private readonly aliveFile: string;
  private readonly packages: PackageCache;
  private readonly pool: MiniworkerPool;
  private readonly db: DbClient;
  /** Jobs prepared and waiting for a miniworker, with when they started waiting. */
  private readonly ready: Array<{ job: Job; at: number }> = [];
  private scaleTimer?: NodeJS.Timeout;
  private readonly runtimes = new Map<string, Runtime>();
  /** The current version of every function, by name, once the api's welcome said: what images are kept for. */
  private functions?: Map<string, FunctionRecord>;
  /** The image each call held by this worker was given: not removed while the call may still start. */
  private readonly callImages = new Map<number, string>();
  /** Calls accepted from the api and not yet reported back (told to the api in hello and heartbeats). */
  private readonly holding = new Set<number>();
  /** Outcomes reported by miniworkers and not yet written, and the jobs they end. */
  private readonly finals: FinalWriter;
  private readonly finishing = new Map<number, Job>();
  /** The node's processors: a saturated node gains nothing from more miniworkers. */
  private readonly cpu = new CpuGauge();
  /** Calls ended in this turn, reported together. */
  private ended: Call[] = [];
  /** Calls handed to miniworkers and not yet told to the api (only while it watches for starts). */
  private starts: { callNum: number }[] = [];
  private watchStarts = false;
  /** Held calls whose output the api follows. */
  private readonly followed = new Set<number>();
  private preparing = 0;
  private lastHeardFromApi = Date.now();
  /** When the api last sent anything (hello again or not). */
  private lastApiMessage = 0;
  private timer?: NodeJS.Timeout;
  /** The heartbeat interval: the api's (from welcome), the node's own until then. */
  private heartbeatMs: number;
  private reaper?: NodeJS.Timeout;
  private closing = false;
  private closingSince = 0;

  constructor(
    private readonly config: WorkerConfig,
    private readonly log: Logger,
  ) {
    // A fresh routing id per process start; reconnects back off from 100 ms up to FAAS_RECONNECT_MAX_MS.
    this.socket = new zmq.Dealer({
      routingId: `${config.nodeId}:${randomUUID().slice(0, 8)}`,
      linger: 0,
      sendHighWaterMark: 0,
      receiveHighWaterMark: 0,
      reconnectInterval: 100,
      reconnectMaxInterval: config.reconnectMaxMs,
      ...clientCurveOptions(),
    });
    this.heartbeatMs = config.heartbeatMs;
    this.channel = new Channel({
      name: 'api',
      socket: this.socket,
      inbound: apiToWorkerSchemas,
      log,
      handlers: {
        invoke: (invocation) => this.heard(() => void this.accept(invocation)),
        invokes: ({ invocations }) => this.heard(() => invocations.forEach((invocation) => void this.accept(invocation))),
        reregister: () => this.heard(() => this.hello()),
        welcome: (welcome) => this.heard(() => this.onWelcome(welcome)),
        runtimeRegistered: ({ runtime }) => this.heard(() => this.learnRuntime(runtime)),
        functionRegistered: ({ fn }) => this.heard(() => this.onFunctionRegistered(fn)),
        functionRemoved: ({ name }) => this.heard(() => this.onFunctionRemoved(name)),
        secretChanged: ({ functions }) => this.heard(() => functions.forEach((name) => this.pool.retireFunction(name, true))),
        heartbeat: () => this.heard(() => undefined),
        watch: ({ callStarts }) => this.heard(() => void (this.watchStarts = callStarts)),
        followLogs: ({ callNum, follow }) => this.heard(() => this.followLogs(callNum, follow)),
      },
    });
    this.packages = new PackageCache(path.join(config.dataDir, 'packages'), config.apiUrl, config.apiCredentials);
    this.aliveFile = aliveFile(config.dataDir);
    this.backend = nodeBackend(config.backend, {
      config,
      packages: this.packages,
      log,
      catalog: () => (this.functions ? { runtimes: this.runtimes.values(), functions: this.functions.values() } : undefined),
      inUse: () => this.callImages.values(),
    });
    this.db = new DbClient(config.dbEndpoint, { log });
    this.pool = new MiniworkerPool({
      endpoint: `ipc://${path.join(config.dataDir, `miniworkers-${process.pid}.sock`)}`,
      minSize: Math.min(config.minMiniworkers, config.capacity),
      maxSize: config.capacity,
      keepAliveMs: config.keepAliveMs,
      idleExitMs: config.idleExitMs,
      stopGraceMs: config.drainGraceMs,
      kind: config.miniworkerKind,
      script: path.join(__dirname, '..', 'miniworker', 'main.js'),
      thread: {
        script: path.join(__dirname, '..', 'miniworker', 'thread-main.js'),
        data: { nodeId: config.nodeId, platformLabel: config.platformLabel, secretsDir: config.secretsDir, ...(config.channelDir ? { channelDir: config.channelDir } : {}) },
        db: this.db,
      },
      env: {
        ...process.env,
        FAAS_DB_ENDPOINT: config.dbEndpoint,
        FAAS_NODE_ID: config.nodeId,
        FAAS_PLATFORM_LABEL: config.platformLabel,
        FAAS_MINIWORKER_CHANNEL_DIR: config.channelDir ?? '',
        FAAS_MINIWORKER_SECRETS_DIR: config.secretsDir,
      },
      log,
    });
    this.finals = new FinalWriter({
      db: this.db,
      log,
      recorded: (call) => {
        this.finishing.delete(call.callNum);
        this.report(call);
        if (this.ready.length > 0) this.pump();
      },
      givenUp: (command) => {
        const job = this.finishing.get(command.callNum);
        this.finishing.delete(command.callNum);
        if (job) void this.fail(job, { reason: 'docker_error', error: 'the outcome of this call could not be recorded' });
      },
    });
    this.pool.on('done', (finish: FinishCommand, job: Job) => {
      this.finishing.set(finish.callNum, job);
      this.finals.add(finish);
    });
    this.pool.on('lost', (job: Job) => void this.onMiniworkerLost(job));
    this.pool.on('idle', () => this.pump());
    this.pool.on('logs', (piece: LogPiece) => {
      if (this.followed.has(piece.callNum)) this.send('callLogs', piece);
    });
  }

  async start(): Promise<void> {
    const orphans = await this.backend.start();
    if (orphans > 0) this.log.info({ orphans }, 'removed containers left by an earlier run');
    await mkdir(this.config.dataDir, { recursive: true });
    // The channel folders of an earlier run went with its containers.
    if (this.config.channelDir) await rm(this.config.channelDir, { recursive: true, force: true });
    // Secrets of containers gone with an earlier run of this node.
    await rm(this.config.secretsDir, { recursive: true, force: true });
    await this.packages.init();
    this.db.start();
    await this.pool.start();
    this.socket.connect(this.config.apiEndpoint);
    this.channel.start();
    this.hello();
    this.timer = setInterval(() => this.beat(), this.heartbeatMs);
    this.reaper = setInterval(() => void this.reap().catch((err) => this.log.warn({ err: String(err) }, 'reaping containers failed')), this.config.reapIntervalMs);
    this.reaper.unref();
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.closingSince = Date.now();
    this.send('draining', {});
    const cutShort = await this.pool.close().catch((err) => {
      this.log.warn({ err: String(err) }, 'stopping miniworkers failed');
      return [] as Job[];
    });
    // Calls that never started go back to the api for another worker; a call cut short ends ERROR,
    // so none stays RUNNING because this worker stopped.
    for (const { job } of this.ready.splice(0)) this.handBack(job.call.callNum);
    // Outcomes already reported are written first, within the drain grace; what is left is the api's to recover.
    const grace = Math.max(0, this.closingSince + this.config.drainGraceMs - Date.now());
    await Promise.race([this.finals.drained(), new Promise((r) => setTimeout(r, grace))]);
    const unwritten = this.finals.stop();
    if (unwritten.length > 0) this.log.warn({ calls: unwritten.length }, 'outcomes of calls were not recorded before the worker stopped');
    await Promise.all(cutShort.map((job) => this.fail(job, { reason: 'worker_lost', error: 'the worker stopped while this call ran' })));
    if (this.timer) clearInterval(this.timer);
    if (this.scaleTimer) clearTimeout(this.scaleTimer);
    if (this.reaper) clearInterval(this.reaper);
    this.sendEnded();
    this.send('bye', {});
    await new Promise((r) => setTimeout(r, 50));
    await this.backend
      .shutdown()
      .catch((err) => this.log.warn({ err: String(err) }, 'removing containers failed'));
    await this.channel.close();
    this.db.close();
  }

  private send<K extends keyof WorkerToApi & string>(msgType: K, content: WorkerToApi[K]): void {
    this.channel.send(msgType, content);
  }

  /** Any valid message from the api counts as hearing from it. */
  private heard(then: () => void): void {
    this.lastHeardFromApi = Date.now();
    this.lastApiMessage = this.lastHeardFromApi;
    then();
  }

  private onWelcome(welcome: ApiToWorker['welcome']): void {
    // An api (re)starting wants nothing beyond the calls' ends until it says so.
    this.watchStarts = false;
    this.followed.clear();
    this.log.info({ runtimes: welcome.runtimes.length, functions: welcome.functions.length, heartbeatMs: welcome.heartbeatMs }, 'registered with the api');
    this.setHeartbeat(welcome.heartbeatMs);
    // A runtime an older version stored with an image that is not a reference is never used here:
    // its calls fail with the reason (see accept).
    for (const refused of welcome.refusedRuntimes ?? []) this.log.warn({ runtime: refused.name, err: refused.error }, 'runtime skipped: its record is not valid');
    for (const runtime of welcome.runtimes) this.learnRuntime(runtime);
    for (const fn of welcome.functions) void this.preload(fn, this.runtimes.get(fn.runtimeName));
    this.functions = new Map(welcome.functions.map((fn) => [fn.functionName, fn]));
    this.backend.collectSoon();
  }

  /** A new function, or a new version: the previous version's image goes once nothing uses it. */
  private onFunctionRegistered(fn: FunctionRecord): void {
    this.functions?.set(fn.functionName, fn);
    void this.preload(fn, this.runtimes.get(fn.runtimeName));
    this.backend.collectSoon();
  }

  private onFunctionRemoved(name: string): void {
    this.functions?.delete(name);
    this.pool.retireFunction(name);
    this.backend.collectSoon();
  }

  /** The api decides how often its workers beat; the value is kept within sane bounds. */
  private setHeartbeat(requestedMs: number): void {
    const ms = Math.min(MAX_HEARTBEAT_MS, Math.max(MIN_HEARTBEAT_MS, requestedMs));
    if (ms === this.heartbeatMs || this.closing) return;
    this.heartbeatMs = ms;
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => this.beat(), ms);
  }

  private hello(): void {
    // The api has three beats to answer before the next hello.
    this.lastHeardFromApi = Date.now();
    this.send('hello', { nodeId: this.config.nodeId, capacity: this.config.capacity, pid: process.pid, inflight: [...this.holding] });
  }

  private beat(): void {
    // The container healthcheck reads this file's age: fresh while the api is heard.
    if (Date.now() - this.lastApiMessage < this.heartbeatMs * 3) {
      const now = new Date();
      void utimes(this.aliveFile, now, now).catch(() => writeFile(this.aliveFile, '').catch(() => undefined));
    }
    this.send('heartbeat', { load: this.pool.busy, queued: this.ready.length + this.preparing, warm: this.pool.warmCounts(), inflight: [...this.holding] });
    // An api that went silent may have restarted: say hello again, it costs nothing.
    if (Date.now() - this.lastHeardFromApi > this.heartbeatMs * 3) this.hello();
  }

  private async accept(invocation: Invocation): Promise<void> {
    if (this.holding.has(invocation.call.callNum)) {
      this.log.warn({ callNum: invocation.call.callNum }, 'dropped a second invoke of a call this worker holds');
      return;
    }
    if (this.closing) {
      this.handBack(invocation.call.callNum);
      return;
    }
    this.holding.add(invocation.call.callNum);
    this.preparing += 1;
    let image: FunctionImage;
    let packagePath: string;
    try {
      image = await this.backend.prepareFunction(invocation.fn, invocation.runtime);
      packagePath = await this.packages.get(invocation.fn.version);
    } catch (err) {
      const prepare = err instanceof PrepareError ? err : new PrepareError(String(err), 'docker_error');
      this.log.warn({ callNum: invocation.call.callNum, reason: prepare.reason, err: prepare.message }, 'function could not be prepared');
      await this.fail(invocation, { reason: prepare.reason, error: prepare.message, stderr: prepare.log || undefined });
      return;
    } finally {
      this.preparing -= 1;
    }
    if (this.closing) {
      this.handBack(invocation.call.callNum);
      return;
    }
    this.callImages.set(invocation.call.callNum, image.ref);
    const keepWarm = (invocation.fn.preload ?? this.config.preload) !== 'none';
    this.ready.push({
      job: {
        ...invocation,
        image: image.ref,
        // A stem cell is made with the node's defaults and receives code over its channel: a function
        // with its own container limits or environment, or too large a package, gets a container of its own.
        injectable: image.injectable && !changesContainer(invocation.fn.limits) && !invocation.fn.env && !invocation.fn.outputs && invocation.fn.size <= INLINE_PACKAGE_BYTES,
        packagePath,
        keepWarm,
        timeoutMs: invocation.fn.limits?.timeoutMs ?? this.config.callTimeoutMs,
        sandbox: this.sandboxFor(invocation.fn),
      },
      at: Date.now(),
    });
    this.pump();
  }

  private pump(): void {
    if (this.closing) return;
    // db-service is slow or away: no more calls run until their outcomes can be written.
    if (this.finals.pending >= MAX_WAITING_FINALS) return;
    while (this.ready.length > 0 && this.pool.assign(this.ready[0]!.job)) this.started(this.ready.shift()!.job.call.callNum);
    if (this.ready.length === 0) return;
    // A new miniworker (and container) costs hundreds of milliseconds; a busy one is usually free
    // again in a few. Grow only for calls that have waited a while.
    const waited = Date.now() - this.ready[0]!.at;
    if (this.pool.size === 0 || (waited >= this.config.scaleUpAfterMs && this.growthHelps())) this.pool.grow(this.ready.length);
    else if (!this.scaleTimer) {
      this.scaleTimer = setTimeout(
        () => {
          this.scaleTimer = undefined;
          this.pump();
        },
        Math.max(10, this.config.scaleUpAfterMs - waited),
      );
    }
  }

  /**
   * Whether another miniworker (a process and a container) would run waiting calls sooner: when the
   * processors have room, or when no busy miniworker is turning warm calls over (each is starting a
   * container, or has held its warm call for a second). Calls that wait because the processors are
   * busy turning short warm calls over (a busy slot then looks slow too) would only wait longer
   * behind the new miniworkers' start-up.
   */
  private growthHelps(): boolean {
    return this.cpu.idleFraction() >= MIN_IDLE_TO_GROW || this.pool.youngestWarmCallMs() >= Math.max(LONG_CALL_MS, this.config.scaleUpAfterMs);
  }

  /**
   * A runtime whose image is not here is pulled at once, before its first call. Under the runtime
   * policy each handler-mode runtime then keeps stem cells: started, without code.
   */
  private learnRuntime(runtime: Runtime): void {
    this.runtimes.set(runtime.name, runtime);
    void this.backend.prepareRuntime(runtime.image).then(
      () => {
        if (runtime.mode !== 'handler' || this.config.preload !== 'runtime' || this.closing) return;
        if (this.runtimes.get(runtime.name)?.image !== runtime.image) return;
        this.pool.setStems({ runtime, sandbox: this.sandboxFor() }, this.config.prewarm);
      },
      (err) => this.log.warn({ runtime: runtime.name, err: err instanceof Error ? err.message : String(err) }, 'runtime image unavailable'),
    ).catch((err) => this.log.warn({ runtime: runtime.name, err: String(err) }, 'starting stem cells failed'));
  }

  /**
   * On registration: under the function policy a handler-mode function gets warm containers before
   * its first call; under the runtime policy its image (dependencies included) is made ready, so
   * that the first call only puts its code into a stem cell.
   */
  private async preload(fn: FunctionRecord, runtime: Runtime | undefined): Promise<void> {
    const policy = fn.preload ?? this.config.preload;
    if (!runtime || runtime.mode !== 'handler' || policy === 'none' || this.config.prewarm === 0) return;
    try {
      const image = await this.backend.prepareFunction(fn, runtime);
      await this.packages.get(fn.version);
      if (this.closing || policy !== 'function') return;
      this.pool.prewarm({ fn, runtime, image: image.ref, sandbox: this.sandboxFor(fn) }, this.config.prewarm);
    } catch (err) {
      this.log.warn({ function: fn.functionName, err: String(err) }, 'preloading failed');
    }
  }

  /** The node's sandbox settings with the function's own limits applied. */
  private sandboxFor(fn?: FunctionRecord): Sandbox {
    const limits = fn?.limits ?? {};
    return {
      memoryBytes: (limits.memoryMb ?? this.config.memoryMb) * 1024 * 1024,
      nanoCpus: Math.round((limits.cpus ?? this.config.cpus) * 1e9),
      pidsLimit: this.config.pidsLimit,
      nofile: this.config.nofile,
      tmpfsBytes: this.config.tmpfsMb * 1024 * 1024,
      user: this.config.functionUser,
      network: limits.network ? 'bridge' : 'none',
      maxResultBytes: this.config.maxResultBytes,
      maxLogBytes: this.config.maxLogBytes,
      outputs: fn?.outputs === true,
      maxOutputBytes: this.config.maxOutputBytes,
    };
  }

  /**
   * Tells the api a call ended. Calls that end in the same turn (the outcomes of one write, say) go
   * in one callsDone message; a call with large texts goes alone.
   */
  private report(call: Call): void {
    this.holding.delete(call.callNum);
    this.followed.delete(call.callNum);
    this.callImages.delete(call.callNum);
    const chars = (call.result?.length ?? 0) + (call.stdout?.length ?? 0) + (call.stderr?.length ?? 0) + (call.error?.length ?? 0);
    if (chars > MAX_BATCHED_CALL_CHARS) {
      this.send('callDone', { call });
      return;
    }
    this.ended.push(call);
    if (this.ended.length === 1) setImmediate(() => this.sendEnded());
  }

  /** A call handed to a miniworker: told to the api while it watches for starts; followed, if asked before. */
  private started(callNum: number): void {
    if (this.followed.has(callNum)) this.pool.follow(callNum, true);
    if (!this.watchStarts) return;
    this.starts.push({ callNum });
    if (this.starts.length === 1) setImmediate(() => this.sendStarts());
  }

  private sendStarts(): void {
    while (this.starts.length > 0) this.send('callsStarted', { calls: this.starts.splice(0, MAX_CALLS_DONE) });
  }

  /** The api asks for a held call's output as it is written (or no more): the miniworker running it sends it. */
  private followLogs(callNum: number, follow: boolean): void {
    if (!follow) {
      this.followed.delete(callNum);
      this.pool.follow(callNum, false);
      return;
    }
    if (!this.holding.has(callNum)) return;
    this.followed.add(callNum);
    // A call not yet with a miniworker is followed when it gets one (see started).
    this.pool.follow(callNum, true);
  }

  private sendEnded(): void {
    while (this.ended.length > 0) {
      const calls = this.ended.splice(0, MAX_CALLS_DONE);
      if (calls.length === 1) this.send('callDone', { call: calls[0]! });
      else this.send('callsDone', { calls });
    }
  }

  private handBack(callNum: number): void {
    this.holding.delete(callNum);
    this.callImages.delete(callNum);
    this.send('handBack', { callNum });
  }

  /**
   * The call of a miniworker that died ends ERROR, and the containers it drove are removed (found by
   * their miniworker label, warm ones included). A create request the miniworker sent just before
   * dying may still complete, so a second pass follows.
   */
  private async onMiniworkerLost(job: Job): Promise<void> {
    await this.fail(job, { reason: 'worker_lost', error: 'the miniworker running this call died' });
    const remove = () => this.reap().catch((err) => this.log.warn({ callNum: job.call.callNum, err: String(err) }, 'could not remove the containers of a lost miniworker'));
    await remove();
    setTimeout(() => void remove(), 2000).unref();
  }

  /**
   * Removes containers of this node that no live miniworker drives: what crashes left behind. A call
   * container is judged by its call, a warm or stem container by its miniworker.
   */
  private async reap(): Promise<void> {
    const active = this.pool.activeCalls();
    const live = this.pool.liveMiniworkers();
    const removed = await this.backend.cleanup(live, active);
    if (removed > 0) this.log.info({ removed }, 'removed containers no miniworker drives');
    // The channel folders of miniworkers that are gone (their containers are, above).
    if (this.config.channelDir) {
      const folders = await readdir(this.config.channelDir).catch(() => [] as string[]);
      const channelDir = this.config.channelDir;
      // Asked again now: a miniworker started since the listing above has a folder too.
      const alive = this.pool.liveMiniworkers();
      await Promise.all(folders.filter((name) => !alive.has(name)).map((name) => rm(path.join(channelDir, name), { recursive: true, force: true })));
    }
    // And their secrets' folders, which live on a tmpfs.
    const secretFolders = await readdir(this.config.secretsDir).catch(() => [] as string[]);
    const owners = this.pool.liveMiniworkers();
    await Promise.all(secretFolders.filter((name) => !owners.has(name)).map((name) => rm(path.join(this.config.secretsDir, name), { recursive: true, force: true })));
  }

  /**
   * Ends a call ERROR on the platform's behalf (its function could not be prepared, its miniworker
   * died). The write is retried while db-service is away — until it lands, or for the drain grace
   * once this worker is stopping — so the call does not stay unfinished because of an outage.
   */
  private async fail(invocation: Invocation, failure: { reason: FailCommand['reason']; error: string; stderr?: string }): Promise<void> {
    const { callNum } = invocation.call;
    const command: FailCommand = {
      callNum,
      by: 'worker',
      attempt: invocation.call.attempts ?? 1,
      node: this.config.nodeId,
      reason: failure.reason,
      error: failure.error,
      ...(failure.stderr ? { stderr: failure.stderr } : {}),
      ...(invocation.dispatchedAt ? { dispatchedAt: invocation.dispatchedAt } : {}),
    };
    let pause = 100;
    const stopBy = () => (this.closing ? this.closingSince + this.config.drainGraceMs : Number.POSITIVE_INFINITY);
    let attempt = command;
    for (;;) {
      try {
        const { call } = await this.db.failCall(attempt);
        this.report(call);
        return;
      } catch (err) {
        const retryable = err instanceof PlatformError && err.retryable;
        if (!retryable && attempt.stderr !== undefined) {
          // Refused as it stands (a log db-service will not store): the failure is recorded without it.
          attempt = { ...attempt, stderr: undefined, error: attempt.error.slice(0, 4000) };
          continue;
        }
        if (!retryable || Date.now() + pause > stopBy()) {
          this.log.error({ callNum, err: String(err) }, 'could not record a failed call');
          // Not held any more: the api's sweep settles it.
          this.holding.delete(callNum);
          this.callImages.delete(callNum);
          return;
        }
        await new Promise((r) => setTimeout(r, pause));
        pause = Math.min(pause * 2, 2000);
      }
    }
  }
}
