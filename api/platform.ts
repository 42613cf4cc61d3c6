import { DbClient } from '../protocol/db-client';
import { PlatformError } from '../protocol/errors';
import type { Logger } from '../protocol/log';
import { isFinal, type Call, type FunctionRecord, type Runtime } from '../protocol/types';
import type { Invocation } from '../protocol/worker-messages';
import { CallWaiters } from './call-waiters';
import type { ApiConfig } from './config';
import { PackageStore } from './package-store';
import { PlatformMetrics } from './metrics';
import { CallRecovery } from './recovery';
import { WorkerHub, type WorkerNode } from './worker-hub';
import { describeWarmCounts } from '../protocol/warm-key';

export interface Health {
  status: 'ok' | 'degraded';
  /** Why the platform is degraded (or what it is doing that users may notice). */
  reasons?: string[];
  db: { connected: boolean; writable: boolean; error?: string; calls?: number; lateResults?: number };
  workers: { connected: number; nodes: string[]; freeSlots: number };
  queue: number;
}

/** The api's state and actions, apart from HTTP: the routes call these. */
export class Platform {
  readonly db: DbClient;
  readonly packages: PackageStore;
  readonly hub: WorkerHub;
  readonly metrics: PlatformMetrics;
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
      liveness: 3,
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
    });
    this.hub.on('dispatched', (invocation: Invocation) => this.metrics.dispatched(invocation.call, invocation.dispatchedAt));
    this.hub.on('callDone', (call: Call) => {
      // A call this api already ended (its node was lost) and then reported late is not counted twice.
      if (this.endedHere.delete(call.callNum)) return this.waiters.settle(call);
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
    this.hub.on('workerJoined', (worker: WorkerNode) => void this.db.putNode(worker.nodeId).catch((err) => log.warn({ node: worker.nodeId, err: String(err) }, 'could not record a node')));
    this.hub.on('workerLeft', (worker: WorkerNode) => void this.db.deleteNode(worker.nodeId).catch(() => undefined));
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
    return endpoint;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.recovery.stop();
    await this.hub.close();
    this.db.close();
  }

  async registerRuntime(runtime: Runtime): Promise<{ created: boolean }> {
    const { created } = await this.db.putRuntime(runtime);
    this.runtimes.set(runtime.name, runtime);
    this.hub.broadcast('runtimeRegistered', { runtime });
    return { created };
  }

  async registerFunction(fn: FunctionRecord): Promise<{ created: boolean }> {
    const { created } = await this.db.putFunction(fn);
    this.functions.set(fn.functionName, fn);
    this.functionNames.add(fn.functionName);
    this.hub.broadcast('functionRegistered', { fn });
    return { created };
  }

  /** Removes a runtime that no function uses (RUNTIME_IN_USE otherwise). */
  async removeRuntime(name: string): Promise<void> {
    const { deleted } = await this.db.deleteRuntime(name);
    this.runtimes.delete(name);
    if (!deleted) throw new PlatformError('RUNTIME_NOT_FOUND', `no runtime named "${name}"`);
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
    options: { args?: string[]; env?: Record<string, string> } = {},
  ): Promise<{ call: Call; done?: Promise<Call | null>; replayed: boolean }> {
    const fn = typeof funcName === 'string' && funcName.length <= 64 ? await this.lookupFunction(funcName) : null;
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
    extra: { idempotencyKey?: string; rerunOf?: number; args?: string[]; env?: Record<string, string> },
  ): Promise<{ call: Call; done?: Promise<Call | null>; replayed: boolean }> {
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
    };
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
    this.metrics.invoked(funcName);
    if (this.log.isLevelEnabled('debug')) this.log.debug({ callNum: call.callNum, function: funcName, version: fn.version.slice(0, 12), rerunOf: extra.rerunOf }, 'call accepted');
    this.hub.dispatch({ call, fn, runtime });
    return { call, done, replayed: false };
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

  workers(): unknown[] {
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

  /** A call this api ended (its node was lost, say): counted once, and whoever waits for it is told. */
  private endedByApi(call: Call): void {
    this.metrics.ended(call);
    this.endedHere.add(call.callNum);
    if (this.endedHere.size > 10_000) this.endedHere.delete(this.endedHere.values().next().value as number);
    this.waiters.settle(call);
  }
}
