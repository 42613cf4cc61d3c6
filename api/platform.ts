import { DbClient } from '../protocol/db-client';
import { PlatformError } from '../protocol/errors';
import type { Logger } from '../protocol/log';
import { isFinal, type Call, type FunctionRecord, type Runtime } from '../protocol/types';
import { CallWaiters } from './call-waiters';
import type { ApiConfig } from './config';
import { PackageStore } from './package-store';
import { PlatformMetrics } from './metrics';
import { WorkerHub } from './worker-hub';
import { describeWarmCounts } from '../protocol/warm-key';

export interface Health {
  status: 'ok' | 'degraded';
  db: { connected: boolean; error?: string; calls?: number; lateResults?: number };
  workers: { connected: number; nodes: string[] };
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
  private recovery?: NodeJS.Timeout;
  /**
   * Functions and runtimes as last registered through this api, so that an invocation does not ask
   * db-service for them each time; a miss falls back to db-service.
   */
  private readonly functions = new Map<string, FunctionRecord>();
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
      log,
      snapshot: async () => ({ runtimes: await this.db.listRuntimes(), functions: await this.db.listFunctions() }),
    });
    this.metrics = new PlatformMetrics({ queueDepth: () => this.hub.queueDepth, workers: () => this.hub.list() });
    this.hub.on('callDone', (call: Call) => {
      // A call this api already ended (its node was lost) and then reported late is not counted twice.
      if (this.endedHere.delete(call.callNum)) return this.waiters.settle(call);
      // Debug lines are built only when asked for: this is the path of every call.
      if (this.log.isLevelEnabled('debug')) this.log.debug({ callNum: call.callNum, function: call.funcName, status: call.status, reason: call.reason, durationMs: call.durationMs, node: call.node, coldStart: call.coldStart }, 'call ended');
      this.metrics.ended(call);
      this.waiters.settle(call);
    });
    this.hub.on('lost', (callNum: number) => void this.onLost(callNum));
  }

  async start(): Promise<string> {
    await this.packages.init();
    this.db.start();
    const endpoint = await this.hub.bind(this.config.workerEndpoint);
    // Calls made before this start are recovered once the workers have had time to say what they hold.
    const before = await this.db.ping().then((p) => p.calls).catch(() => Number.MAX_SAFE_INTEGER);
    this.recovery = setTimeout(() => void this.recover(before), this.config.heartbeatMs * 4);
    return endpoint;
  }

  async close(): Promise<void> {
    if (this.recovery) clearTimeout(this.recovery);
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
    const current = await this.lookupFunction(old.funcName);
    const fn =
      current && (!old.functionVersion || current.version === old.functionVersion)
        ? current
        : old.functionVersion
          ? await this.db.getFunctionVersion(old.funcName, old.functionVersion)
          : null;
    if (!fn) throw new PlatformError('FUNCTION_NOT_FOUND', `call ${callNum} ran a version of "${old.funcName}" that is no longer registered`);
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

  async health(): Promise<Health> {
    let db: Health['db'];
    try {
      const ping = await this.db.ping(1000);
      db = { connected: true, calls: ping.calls, lateResults: ping.lateResults };
    } catch (err) {
      db = { connected: false, error: err instanceof Error ? err.message : String(err) };
    }
    const nodes = this.hub.list().map((w) => w.nodeId);
    return {
      status: db.connected && nodes.length > 0 ? 'ok' : 'degraded',
      db,
      workers: { connected: nodes.length, nodes },
      queue: this.hub.queueDepth,
    };
  }

  /** A call of an idempotent function is queued once more when its node is lost; any other ends ERROR. */
  private async onLost(callNum: number): Promise<void> {
    try {
      const call = await this.db.getCall(callNum);
      const fn = call ? await this.lookupFunction(call.funcName) : null;
      const runtime = fn ? await this.lookupRuntime(fn.runtimeName) : null;
      if (call && fn?.idempotent && runtime && fn.version === call.functionVersion && (call.attempts ?? 1) < 2 && !isFinal(call.status)) {
        const again = await this.db.updateCall(callNum, { status: 'PENDING', attempts: 2 });
        this.log.info({ callNum }, 'call of an idempotent function queued again after its node was lost');
        this.hub.dispatch({ call: again, fn, runtime });
        return;
      }
    } catch (err) {
      if (err instanceof PlatformError && err.code === 'CALL_ALREADY_FINAL') return;
      this.log.warn({ callNum, err: String(err) }, 'could not queue a lost call again');
    }
    await this.failLost(callNum, 'node_lost', 'the worker running this call stopped answering');
  }

  /** A call whose owner vanished ends ERROR; the first final state wins, so a late result is ignored. */
  private async failLost(callNum: number, reason: 'node_lost' | 'orchestrator_restart', error: string): Promise<void> {
    try {
      const call = await this.db.updateCall(callNum, { status: 'ERROR', reason, error, endedAt: new Date().toISOString() });
      this.metrics.ended(call);
      this.endedHere.add(callNum);
      if (this.endedHere.size > 10_000) this.endedHere.delete(this.endedHere.values().next().value as number);
      this.waiters.settle(call);
    } catch (err) {
      if (err instanceof PlatformError && err.code === 'CALL_ALREADY_FINAL') return;
      this.log.error({ callNum, err: String(err) }, 'could not end a lost call');
    }
  }

  /**
   * After a restart: calls made before it that no connected worker holds are either queued again
   * (PENDING: they never started) or ended ERROR orchestrator_restart (RUNNING: their owner is gone).
   */
  private async recover(before: number): Promise<void> {
    try {
      const owned = this.hub.ownedCalls();
      const orphaned = (await this.db.listCalls({ status: 'RUNNING' })).filter((c) => c.callNum <= before && !owned.has(c.callNum));
      for (const call of orphaned) await this.failLost(call.callNum, 'orchestrator_restart', 'the call was running when the api restarted, and no worker holds it');
      const pending = (await this.db.listCalls({ status: 'PENDING' })).filter((c) => c.callNum <= before && !owned.has(c.callNum));
      for (const call of pending) {
        const current = await this.db.getFunction(call.funcName);
        const fn = current && call.functionVersion && current.version !== call.functionVersion ? await this.db.getFunctionVersion(call.funcName, call.functionVersion) : current;
        const runtime = fn ? await this.db.getRuntime(fn.runtimeName) : null;
        if (!fn || !runtime) {
          await this.db.updateCall(call.callNum, {
            status: 'ERROR',
            reason: 'function_missing',
            error: 'the function version of this call is no longer registered',
            endedAt: new Date().toISOString(),
          });
          continue;
        }
        this.hub.dispatch({ call, fn, runtime });
      }
      if (pending.length + orphaned.length > 0) this.log.info({ requeued: pending.length, ended: orphaned.length }, 'calls recovered after a restart');
    } catch (err) {
      this.log.warn({ err: String(err) }, 'could not recover the calls of before the restart');
    }
  }
}
