import { DbClient } from '../protocol/db-client';
import { PlatformError } from '../protocol/errors';
import type { Logger } from '../protocol/log';
import { isFinal, type Call, type FunctionRecord, type Runtime } from '../protocol/types';
import type { Invocation, LogPiece } from '../protocol/worker-messages';
import type { CronTrigger, SecretInfo } from '../protocol/schemas';
import { CallWaiters } from './call-waiters';
import { CronScheduler, cronOf } from './cron-triggers';
import { CallbackSender } from './callbacks';
import { EventHub } from './event-hub';
import { LogFollowers } from './log-followers';
import type { ApiConfig } from './config';
import { PackageStore } from './package-store';
import { PlatformMetrics } from './metrics';
import { CallRecovery } from './recovery';
import { WorkerHub, type WorkerNode } from './worker-hub';
import { describeWarmCounts } from '../protocol/warm-key';
import type { Health, Worker } from './schemas';


/** What a new call carries beside its function and params. */
interface CallExtra {
  rerunOf?: number;
  args?: string[];
  env?: Record<string, string>;
  trigger?: string;
  callbackUrl?: string;
  async?: boolean;
  retryOf?: number;
  retryAttempt?: number;
}

/** Ends of a call that the platform decided, not the function: its node, worker or container lost. */
const PLATFORM_REASONS = new Set(['worker_lost', 'node_lost', 'orchestrator_restart', 'docker_error']);

/** Whether a function's retries cover this end. */
export function retriesOn(call: Call, retries: NonNullable<FunctionRecord['retries']>): boolean {
  if (call.status === 'TIMEOUT') return retries.on === 'any' || retries.timeouts === true;
  if (call.status !== 'ERROR') return false;
  return retries.on === 'any' || (call.reason !== undefined && PLATFORM_REASONS.has(call.reason));
}

/** The api's state and actions, apart from HTTP: the routes call these. */
export class Platform {
  readonly db: DbClient;
  readonly packages: PackageStore;
  readonly hub: WorkerHub;
  readonly metrics: PlatformMetrics;
  /** The live events of GET /v1/events. */
  readonly events: EventHub;
  /** The streams of GET /v1/calls/:n/logs?follow=true. */
  readonly logs: LogFollowers;
  /** The clock of the cron triggers. */
  readonly cron: CronScheduler;
  /** Deliveries of the calls' callbacks. */
  readonly callbacks: CallbackSender;
  private callbackSweep?: NodeJS.Timeout;
  /** Calls this api ended itself (lost nodes, restarts), so that a late report is not counted again. */
  private readonly endedHere = new Set<number>();
  private readonly waiters = new CallWaiters();
  private readonly recovery: CallRecovery;
  private closed = false;
  /**
   * Functions and runtimes as last registered through this api, so that an invocation does not ask
   * db-service for them each time; a miss falls back to db-service.
   */
  private readonly functions = new Map<string, FunctionRecord>();
  /** The names of every registered function, for metric labels (a call of another name is not a label value). */
  private readonly functionNames = new Set<string>();
  /** Functions removed through this api since it started: a listing read before the removal does not bring them back. */
  private readonly removedHere = new Set<string>();
  private readonly runtimes = new Map<string, Runtime>();

  constructor(
    private readonly config: ApiConfig,
    readonly log: Logger,
  ) {
    this.db = new DbClient(config.dbEndpoint, { log });
    this.packages = new PackageStore(config.dataDir);
    this.hub = new WorkerHub({
      heartbeatMs: config.heartbeatMs,
      liveness: config.livenessBeats,
      policy: config.scheduler,
      maxBodyBytes: config.maxBodyBytes,
      log,
      snapshot: async () => ({ runtimes: await this.db.listRuntimes(), functions: await this.db.listFunctions() }),
    });
    this.metrics = new PlatformMetrics({
      queueDepth: () => this.hub.queueDepth,
      workers: () => this.hub.list(),
      registered: (name) => this.functionNames.has(name),
      droppedFrames: () => ({ workers: this.hub.channelStats().dropped, db: this.db.channelStats().dropped }),
      streams: () => ({ events: this.events.subscriberCount, logs: this.logs.followerCount }),
    });
    this.events = new EventHub({ bufferSize: config.eventsBuffer, maxSubscribers: config.eventsMaxSubscribers });
    this.events.onWantsStarts = (wanted) => this.hub.watchStarts(wanted);
    this.logs = new LogFollowers({ maxFollowers: config.eventsMaxSubscribers, follow: (callNum, on) => this.hub.followLogs(callNum, on) });
    this.cron = new CronScheduler({ fire: (trigger, tick) => this.fireTrigger(trigger, tick), log });
    this.callbacks = new CallbackSender({ log, maxMs: config.callbackMaxMs, save: async (record) => void (await this.db.putCallback(record)) });
    this.hub.on('dispatched', (invocation: Invocation) => this.metrics.dispatched(invocation.call, invocation.dispatchedAt));
    this.hub.on('started', (call: Call, worker: WorkerNode) => {
      this.events.publish('call.started', { callNum: call.callNum, funcName: call.funcName, status: 'RUNNING', node: worker.nodeId }, call.funcName);
    });
    this.hub.on('callLogs', (piece: LogPiece) => this.logs.piece(piece));
    this.hub.on('workerJoined', (worker: WorkerNode, isNew: boolean) => {
      if (isNew) this.events.publish('worker.joined', { nodeId: worker.nodeId, capacity: worker.capacity });
    });
    this.hub.on('workerLeft', (worker: WorkerNode) => this.events.publish('worker.left', { nodeId: worker.nodeId }));
    this.hub.on('workerDraining', (worker: WorkerNode) => this.events.publish('worker.draining', { nodeId: worker.nodeId }));
    this.hub.on('callDone', (call: Call) => {
      // A call this api already ended (its node was lost) and then reported late is not counted twice.
      if (this.endedHere.delete(call.callNum)) return this.waiters.settle(call);
      this.ended(call);
      // Debug lines are built only when asked for: this is the path of every call.
      if (this.log.isLevelEnabled('debug')) this.log.debug({ callNum: call.callNum, function: call.funcName, status: call.status, reason: call.reason, durationMs: call.durationMs, node: call.node, coldStart: call.coldStart }, 'call ended');
      this.metrics.ended(call);
      this.waiters.settle(call);
    });
    this.recovery = new CallRecovery({
      db: this.db,
      hub: this.hub,
      log,
      graceMs: config.recoveryGraceMs,
      sweepIntervalMs: config.sweepIntervalMs,
      minAgeMs: Math.max(config.sweepIntervalMs, 30_000),
      lookup: (call) => this.versionOf(call),
      ended: (call) => this.endedByApi(call),
    });
    this.hub.on('lost', (callNum: number) => void this.recovery.lost(callNum));
    this.hub.on('unheld', (callNum: number) => void this.recovery.unheld(callNum));
    // The nodes registered now are the ones a restarted api waits for before it recovers their calls.
    // A hello repeated by a node already recorded writes nothing (a fleet saying hello again while
    // db-service is slow would add to what makes it slow); one whose record failed is tried again.
    const recorded = new Set<string>();
    this.hub.on('workerJoined', (worker: WorkerNode) => {
      if (recorded.has(worker.nodeId)) return;
      recorded.add(worker.nodeId);
      this.db.putNode(worker.nodeId).catch((err) => {
        recorded.delete(worker.nodeId);
        log.warn({ node: worker.nodeId, err: String(err) }, 'could not record a node');
      });
    });
    this.hub.on('workerLeft', (worker: WorkerNode) => {
      recorded.delete(worker.nodeId);
      void this.db.deleteNode(worker.nodeId).catch(() => undefined);
    });
  }

  async start(): Promise<string> {
    await this.packages.init();
    this.db.start();
    const endpoint = await this.hub.bind(this.config.workerEndpoint);
    // Calls made before this start are recovered once the nodes registered before it are back; the
    // names of the functions registered before it are learnt first, for the metrics of those calls.
    this.recovery.start(async () => {
      for (const fn of await this.db.listFunctions()) if (!this.removedHere.has(fn.functionName)) this.functionNames.add(fn.functionName);
      return (await this.db.ping()).calls;
    });
    void this.loadTriggers();
    // Callbacks of calls that ended while no api heard it (or before a restart) are looked for now and then.
    this.callbackSweep = setInterval(() => void this.sweepCallbacks(), Math.min(this.config.sweepIntervalMs, 30_000));
    this.callbackSweep.unref();
    void this.sweepCallbacks();
    return endpoint;
  }

  /** Starts delivering a final call's callback, as its record stands. */
  private async sendCallback(call: Call): Promise<void> {
    const record = await this.db.getCallback(call.callNum);
    if (record) this.callbacks.deliver(call, record);
  }

  /** Pending callbacks whose calls are final and that no delivery here is working on. */
  private async sweepCallbacks(): Promise<void> {
    try {
      for (const record of await this.db.pendingCallbacks(1000)) {
        const call = await this.db.getCall(record.callNum);
        if (call && isFinal(call.status)) this.callbacks.deliver(call, record);
      }
    } catch (err) {
      this.log.debug({ err: err instanceof Error ? err.message : String(err) }, 'callbacks not swept this time');
    }
  }

  /** The stored triggers, once db-service answers (it may start after the api). */
  private async loadTriggers(): Promise<void> {
    while (!this.closed) {
      try {
        this.cron.load(await this.db.listTriggers());
        return;
      } catch (err) {
        this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'triggers not loaded yet; trying again');
        await new Promise((resolve) => setTimeout(resolve, 1000).unref());
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cron.close();
    if (this.callbackSweep) clearInterval(this.callbackSweep);
    this.callbacks.close();
    this.recovery.stop();
    this.events.close();
    this.logs.close();
    await this.hub.close();
    this.db.close();
  }

  async registerRuntime(runtime: Runtime): Promise<{ created: boolean }> {
    const { created } = await this.db.putRuntime(runtime);
    this.runtimes.set(runtime.name, runtime);
    this.hub.broadcast('runtimeRegistered', { runtime });
    this.events.publish('runtime.registered', { name: runtime.name, image: runtime.image, mode: runtime.mode });
    return { created };
  }

  async registerFunction(fn: FunctionRecord): Promise<{ created: boolean }> {
    const { created } = await this.db.putFunction(fn);
    this.functions.set(fn.functionName, fn);
    this.functionNames.add(fn.functionName);
    this.hub.broadcast('functionRegistered', { fn });
    this.events.publish('function.registered', { functionName: fn.functionName, runtimeName: fn.runtimeName, version: fn.version }, fn.functionName);
    return { created };
  }

  /** Removes a runtime that no function uses (RUNTIME_IN_USE otherwise). */
  async removeRuntime(name: string): Promise<void> {
    const { deleted } = await this.db.deleteRuntime(name);
    this.runtimes.delete(name);
    if (!deleted) throw new PlatformError('RUNTIME_NOT_FOUND', `no runtime named "${name}"`);
    this.events.publish('runtime.removed', { name });
  }

  /** Removes a function and its versions; calls already queued still run, its idle warm containers stop. */
  async removeFunction(name: string): Promise<void> {
    const { deleted } = await this.db.deleteFunction(name);
    this.functions.delete(name);
    this.functionNames.delete(name);
    this.removedHere.add(name);
    this.metrics.removed(name);
    if (!deleted) throw new PlatformError('FUNCTION_NOT_FOUND', `no function named "${name}"`);
    this.hub.broadcast('functionRemoved', { name });
    this.events.publish('function.removed', { functionName: name }, name);
  }

  /**
   * Persists the call before answering, then queues it; with `wait`, also returns its end. With an
   * idempotency key, a repeated request gets the call the first one made, and nothing runs again.
   */
  async invoke(
    funcName: string,
    params: unknown,
    wait: boolean,
    idempotencyKey?: string,
    options: Pick<CallExtra, 'args' | 'env' | 'trigger' | 'callbackUrl'> = {},
  ): Promise<{ call: Call; done?: Promise<Call | null>; replayed: boolean }> {
    const fn = await this.findFunction(funcName);
    if (!fn) throw new PlatformError('FUNCTION_NOT_FOUND', `no function named "${String(funcName).slice(0, 64)}"`);
    return this.startCall(fn, params, wait, { idempotencyKey, ...options });
  }

  /**
   * Runs a call again: the same function version (even when a newer one is registered since) and the
   * same params, as a new call that names the old one in `rerunOf`.
   */
  async rerun(callNum: number, wait: boolean, idempotencyKey?: string): Promise<{ call: Call; done?: Promise<Call | null>; replayed: boolean }> {
    const old = await this.currentCall(callNum);
    const found = await this.versionOf(old);
    if (!found) throw new PlatformError('FUNCTION_NOT_FOUND', `call ${callNum} ran a version of "${old.funcName}" that is no longer registered`);
    const { fn } = found;
    return this.startCall(fn, old.params, wait, { rerunOf: callNum, args: old.args, env: old.env, idempotencyKey });
  }

  private async startCall(
    fn: FunctionRecord,
    params: unknown,
    wait: boolean,
    extra: Pick<CallExtra, 'rerunOf' | 'args' | 'env' | 'trigger' | 'callbackUrl'> & { idempotencyKey?: string },
  ): Promise<{ call: Call; done?: Promise<Call | null>; replayed: boolean }> {
    const { runtime, input } = await this.callInput(fn, params, { ...extra, ...(wait ? {} : { async: true }) });
    let call: Call;
    if (extra.idempotencyKey) {
      const once = await this.db.createCallOnce({ ...input, key: extra.idempotencyKey, durable: true });
      call = once.call;
      if (!once.created) {
        const done = wait ? (isFinal(call.status) ? Promise.resolve(call) : this.waiters.wait(call.callNum, this.config.waitTimeoutMs)) : undefined;
        return { call, done, replayed: true };
      }
    } else {
      // A synchronous call is acknowledged by its final (synced) write, so its first write skips the fsync.
      call = await this.db.createCall({ ...input, durable: !wait });
    }
    // The waiter is in place before the call can end.
    const done = wait ? this.waiters.wait(call.callNum, this.config.waitTimeoutMs) : undefined;
    this.accepted(call, fn, runtime, extra);
    return { call, done, replayed: false };
  }

  /** What db-service stores for a new call of `fn`; refused when its runtime is gone or the queue is full. */
  private async callInput(fn: FunctionRecord, params: unknown, extra: CallExtra) {
    const funcName = fn.functionName;
    const runtime = await this.lookupRuntime(fn.runtimeName);
    if (!runtime) throw new PlatformError('RUNTIME_NOT_FOUND', `function "${funcName}" uses runtime "${fn.runtimeName}", which is not registered`);
    if (extra.args?.length && runtime.mode !== 'process') {
      throw new PlatformError('BAD_REQUEST', `args extend a run command: runtime "${runtime.name}" is in ${runtime.mode} mode, which has none per call`);
    }
    if (this.hub.queueDepth >= this.config.maxQueue || this.hub.queuedFor(funcName) >= this.config.maxQueuePerFunction) {
      throw new PlatformError('QUEUE_FULL', `too many calls wait${this.hub.queueDepth >= this.config.maxQueue ? '' : ` for "${funcName}"`}`, { retryAfterSeconds: 1 });
    }
    const input = {
      funcName,
      params,
      functionVersion: fn.version,
      runtimeName: runtime.name,
      ...(extra.rerunOf ? { rerunOf: extra.rerunOf } : {}),
      ...(extra.args?.length ? { args: extra.args } : {}),
      ...(extra.env && Object.keys(extra.env).length > 0 ? { env: extra.env } : {}),
      ...(extra.trigger ? { trigger: extra.trigger } : {}),
      ...(extra.callbackUrl ? { callbackUrl: extra.callbackUrl } : {}),
      ...(extra.async ? { async: true } : {}),
      ...(extra.retryOf ? { retryOf: extra.retryOf, retryAttempt: extra.retryAttempt } : {}),
    };
    return { runtime, input };
  }

  /** A call stored: counted, told to the event stream and queued for a worker. */
  private accepted(call: Call, fn: FunctionRecord, runtime: Runtime, extra: CallExtra, delayMs = 0): void {
    const funcName = fn.functionName;
    this.metrics.invoked(funcName);
    this.events.publish(
      'call.accepted',
      { callNum: call.callNum, funcName, status: call.status, ...(extra.rerunOf ? { rerunOf: extra.rerunOf } : {}), ...(extra.trigger ? { trigger: extra.trigger } : {}), ...(extra.retryOf ? { retryOf: extra.retryOf } : {}) },
      funcName,
    );
    if (this.log.isLevelEnabled('debug')) this.log.debug({ callNum: call.callNum, function: funcName, version: fn.version.slice(0, 12), rerunOf: extra.rerunOf, trigger: extra.trigger, retryOf: extra.retryOf }, 'call accepted');
    if (delayMs > 0) this.hub.dispatchLater({ call, fn, runtime }, delayMs);
    else this.hub.dispatch({ call, fn, runtime });
  }

  /**
   * An async call of a function with retries ended ERROR or TIMEOUT: when its end is one the function
   * retries on, the next attempt is made (once: under an idempotency key of the ended call) and queued
   * after its backoff; when the attempts have run out, the call is a dead letter.
   */
  private async afterFailure(call: Call): Promise<boolean> {
    if (!call.async || call.status === 'DONE') return false;
    const found = await this.versionOf(call);
    const retries = found?.fn.idempotent ? found.fn.retries : undefined;
    if (!found || !retries || !retriesOn(call, retries)) return false;
    const attempt = call.retryAttempt ?? 1;
    if (attempt > retries.max) {
      await this.deadLetter(call, attempt, 'it ran out of retries');
      return false;
    }
    const extra: CallExtra = { args: call.args, env: call.env, callbackUrl: call.callbackUrl, trigger: call.trigger, async: true, retryOf: call.callNum, retryAttempt: attempt + 1 };
    let made: { call: Call; created: boolean; runtime: Runtime };
    try {
      const { runtime, input } = await this.callInput(found.fn, call.params, extra);
      made = { ...(await this.db.createCallOnce({ ...input, key: `retry of ${call.callNum}`, durable: true })), runtime };
    } catch (err) {
      // A retry that cannot be made (the queue full, its runtime gone) leaves the call where a person sees it.
      await this.deadLetter(call, attempt, `its retry could not be made: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    }
    // The retry carries the callback on: the failed call's own is not delivered.
    if (call.callbackUrl) await this.db.putCallback({ callNum: call.callNum, url: call.callbackUrl, state: 'superseded', attempts: [] }).catch(() => undefined);
    if (!made.created) return true;
    const base = (retries.backoffMs ?? 1000) * 2 ** (attempt - 1);
    this.accepted(made.call, found.fn, made.runtime, extra, Math.round(base / 2 + (Math.random() * base) / 2));
    return true;
  }

  private async deadLetter(call: Call, attempts: number, why: string): Promise<void> {
    await this.db.putDeadLetter(call.callNum);
    this.log.warn({ callNum: call.callNum, function: call.funcName, attempts, why }, 'a dead letter');
    this.events.publish('call.deadLettered', { callNum: call.callNum, funcName: call.funcName, attempts }, call.funcName);
  }

  /**
   * A cron trigger's tick: its call and the tick are written together by db-service, which refuses a
   * tick already fired, so a tick makes one call at most. A tick whose function is gone or whose queue
   * is full makes none (logged).
   */
  async fireTrigger(trigger: CronTrigger, tick: Date): Promise<void> {
    const fn = await this.lookupFunction(trigger.function);
    if (!fn) {
      this.log.warn({ trigger: trigger.name, function: trigger.function }, 'a tick of a trigger whose function is not registered made no call');
      return;
    }
    const extra = { trigger: `cron:${trigger.name}`, async: true };
    const { runtime, input } = await this.callInput(fn, trigger.params ?? {}, extra);
    const fired = await this.db.fireTrigger(trigger.name, tick.toISOString(), input);
    if (!fired.fired || !fired.call) return;
    this.accepted(fired.call, fn, runtime, extra);
  }

  /**
   * Creates or replaces a secret (db-service seals it). Replaced, the functions that use it get new
   * containers: their workers retire the ones that hold the old value.
   */
  async putSecret(name: string, value: string): Promise<{ created: boolean; secret: SecretInfo }> {
    const result = await this.db.putSecret(name, value);
    if (!result.created) {
      const functions = (await this.db.listFunctions()).filter((f) => f.secrets?.includes(name)).map((f) => f.functionName);
      if (functions.length > 0) this.hub.broadcast('secretChanged', { functions });
    }
    return result;
  }

  /** Creates or replaces a trigger: its ticks count from now (none before it is caught up with). */
  async putTrigger(input: Omit<CronTrigger, 'createdAt' | 'lastTick'>): Promise<{ created: boolean; trigger: CronTrigger }> {
    cronOf(input.schedule, input.timezone);
    if (!(await this.lookupFunction(input.function))) throw new PlatformError('FUNCTION_NOT_FOUND', `no function named "${input.function}"`);
    const now = new Date().toISOString();
    const result = await this.db.putTrigger({ ...input, createdAt: now, lastTick: now });
    this.cron.set(result.trigger);
    return result;
  }

  async removeTrigger(name: string): Promise<void> {
    const { deleted } = await this.db.deleteTrigger(name);
    this.cron.remove(name);
    if (!deleted) throw new PlatformError('TRIGGER_NOT_FOUND', `no trigger named "${name.slice(0, 64)}"`);
  }

  /** A trigger as answered: its record and its next tick. */
  describeTrigger(trigger: CronTrigger): CronTrigger & { nextTick?: string } {
    const next = this.cron.nextTick(trigger.name);
    return { ...trigger, ...(next ? { nextTick: next.toISOString() } : {}) };
  }

  /** Whether a function of this name is registered, as this api knows (no database request). */
  hasFunction(name: string): boolean {
    return this.functionNames.has(name);
  }

  /** The registered function of this name (its current version), or null. */
  async findFunction(name: string): Promise<FunctionRecord | null> {
    return typeof name === 'string' && name.length <= 64 ? this.lookupFunction(name) : null;
  }

  private async lookupFunction(name: string): Promise<FunctionRecord | null> {
    const cached = this.functions.get(name);
    if (cached) return cached;
    const fn = await this.db.getFunction(name);
    if (fn) this.functions.set(name, fn);
    return fn;
  }

  private async lookupRuntime(name: string): Promise<Runtime | null> {
    const cached = this.runtimes.get(name);
    if (cached) return cached;
    const runtime = await this.db.getRuntime(name);
    if (runtime) this.runtimes.set(name, runtime);
    return runtime;
  }

  async currentCall(callNum: number): Promise<Call> {
    const call = await this.db.getCall(callNum);
    if (!call) throw new PlatformError('CALL_NOT_FOUND', `no call ${callNum}`);
    return call;
  }

  workers(): Worker[] {
    return this.hub.list().map((w) => ({
      nodeId: w.nodeId,
      routingId: w.routingId,
      state: w.draining ? 'draining' : 'ready',
      capacity: w.capacity,
      load: w.inflight.size,
      queued: w.queued,
      ...describeWarmCounts(w.warm),
      connectedAt: new Date(w.connectedAt).toISOString(),
      lastSeen: new Date(w.lastSeen).toISOString(),
    }));
  }

  /**
   * `ok` while calls can run: db-service answers and takes writes, a worker is connected, and calls
   * do not wait with every slot taken.
   * Otherwise `degraded`, with the reasons.
   */
  async health(): Promise<Health> {
    let db: Health['db'];
    try {
      const ping = await this.db.ping(1000);
      db = { connected: true, writable: ping.writable !== false, calls: ping.calls, lateResults: ping.lateResults, ...(ping.writeError ? { error: ping.writeError } : {}) };
    } catch (err) {
      db = { connected: false, writable: false, error: err instanceof Error ? err.message : String(err) };
    }
    const workers = this.hub.list();
    const nodes = workers.map((w) => w.nodeId);
    const free = workers.reduce((sum, w) => sum + (w.draining ? 0 : Math.max(0, w.capacity - w.inflight.size)), 0);
    const reasons: string[] = [];
    if (!db.connected) reasons.push('db-service does not answer');
    else if (!db.writable) reasons.push('db-service refuses writes');
    if (nodes.length === 0) reasons.push('no worker is connected');
    else if (free === 0 && this.hub.queueDepth > 0) reasons.push('calls wait and no worker has a free slot');
    if (!this.recovery.ready) reasons.push('calls of before the last restart are being recovered');
    return {
      status: reasons.length === 0 || (reasons.length === 1 && !this.recovery.ready) ? 'ok' : 'degraded',
      ...(reasons.length > 0 ? { reasons } : {}),
      db,
      workers: { connected: nodes.length, nodes, freeSlots: free },
      queue: this.hub.queueDepth,
    };
  }

  /** The function version and runtime a call runs (a re-run may name an older version), or null. */
  private async versionOf(call: Call): Promise<{ fn: FunctionRecord; runtime: Runtime } | null> {
    const current = await this.lookupFunction(call.funcName);
    const fn =
      current && (!call.functionVersion || current.version === call.functionVersion)
        ? current
        : call.functionVersion
          ? await this.db.getFunctionVersion(call.funcName, call.functionVersion)
          : null;
    const runtime = fn ? await this.lookupRuntime(fn.runtimeName) : null;
    return fn && runtime ? { fn, runtime } : null;
  }

  /** A call's end, for the event stream and for whoever follows its logs. */
  private ended(call: Call): void {
    this.events.publish(
      'call.ended',
      {
        callNum: call.callNum,
        funcName: call.funcName,
        status: call.status,
        ...(call.reason ? { reason: call.reason } : {}),
        ...(call.error ? { error: call.error.slice(0, 512) } : {}),
        ...(call.durationMs !== undefined ? { durationMs: call.durationMs } : {}),
        ...(call.node ? { node: call.node } : {}),
        ...(call.coldStart !== undefined ? { coldStart: call.coldStart } : {}),
      },
      call.funcName,
    );
    this.logs.ended(call);
    if ((call.async && call.status !== 'DONE') || call.callbackUrl) void this.afterEnd(call);
  }

  /** A retry when the call's function asks for one; else its callback, if it has one. */
  private async afterEnd(call: Call): Promise<void> {
    let retried = false;
    try {
      retried = await this.afterFailure(call);
    } catch (err) {
      this.log.warn({ callNum: call.callNum, err: err instanceof Error ? err.message : String(err) }, 'a retry could not be made');
    }
    if (!call.callbackUrl || retried) return;
    await this.sendCallback(call).catch((err: unknown) => this.log.warn({ callNum: call.callNum, err: err instanceof Error ? err.message : String(err) }, 'a callback could not start; the sweep retries it'));
  }

  /** A call this api ended (its node was lost, say): counted once, and whoever waits for it is told. */
  private endedByApi(call: Call): void {
    this.ended(call);
    this.metrics.ended(call);
    this.endedHere.add(call.callNum);
    if (this.endedHere.size > 10_000) this.endedHere.delete(this.endedHere.values().next().value as number);
    this.waiters.settle(call);
  }
}
