import { mkdirSync } from 'node:fs';
import { Level } from 'level';
import { applyCommand, type CallCommand, type CommandResult } from '../protocol/call-lifecycle';
import type { CallPage, DbRequest } from '../protocol/db-messages';
import { PlatformError } from '../protocol/errors';
import type { CallbackRecord, CronTrigger, SecretInfo } from '../protocol/schemas';
import { SecretBox, type SealedValue } from './secret-box';

interface StoredSecret extends SecretInfo {
  sealed: SealedValue;
}
import { isFinal, type Call, type FunctionRecord, type Runtime } from '../protocol/types';
import { DEAD_LETTER, indexOps, listCallPage, padCallNum, rebuildIndexes, unindexOps } from './call-index';
import { GroupCommit, type BatchOp } from './group-commit';

const SEQ_KEY = 'meta:callSeq';
const RUNTIME = 'rt:';
const FUNCTION = 'fn:';
/** Every version a function has had: `fnv:<name>:<sha256>`, the record as last registered with that package. */
const FUNCTION_VERSION = 'fnv:';
const CALL = 'call:';
const IDEMPOTENCY = 'idem:';
/** A call's outputs (zip, base64), beside the call: `out:<padded callNum>`. */
const OUTPUTS = 'out:';
/** Nodes registered with the api and not seen leave: `node:<nodeId>`. */
const NODE = 'node:';
/** Callbacks of calls: `cb:<padded callNum>`, where the end goes and how its deliveries went. */
const CALLBACK = 'cb:';
/** Callbacks still to deliver: `cbp:<padded callNum>`, removed when the delivery ends. */
const CALLBACK_PENDING = 'cbp:';
/** Secrets: `sec:<name>`, the value sealed (SecretBox), never stored in clear. */
const SECRET = 'sec:';
/** Cron triggers: `trg:<name>`, with the last tick each fired. */
const TRIGGER = 'trg:';
const PROBE_KEY = 'meta:writeProbe';

function callbackKey(callNum: number): string {
  return CALLBACK + String(callNum).padStart(12, '0');
}

function outputsKey(callNum: number): string {
  return OUTPUTS + String(callNum).padStart(12, '0');
}

/** Calls are keyed by a zero-padded number so that the store iterates them in callNum order. */
function callKey(callNum: number): string {
  return CALL + String(callNum).padStart(12, '0');
}

/**
 * The platform's state in LevelDB: runtimes, functions and calls. Every write is synced before it
 * is acknowledged; callNum is strictly increasing and never reused, also across restarts.
 */
export class PlatformStore {
  private readonly commits: GroupCommit;
  private lastCallNum = 0;
  /** Per-key chains that serialize read-modify-writes of one call or one idempotency key. */
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Calls not yet final, as last written: an update does not read them back from disk. */
  private readonly live = new Map<number, Call>();
  private static readonly MAX_LIVE = 200_000;

  private constructor(
    private readonly db: Level<string, unknown>,
    private readonly secrets: SecretBox,
  ) {
    this.commits = new GroupCommit(db);
  }

  /** `secrets`: the box that seals secrets' values; by default its key file beside the store's folder. */
  static async open(dir: string, secrets?: SecretBox): Promise<PlatformStore> {
    mkdirSync(dir, { recursive: true });
    const box = secrets ?? SecretBox.load(undefined, `${dir.replace(/\/+$/, '')}.secrets.key`);
    const db = new Level<string, unknown>(dir, { valueEncoding: 'json' });
    await db.open();
    const store = new PlatformStore(db, box);
    await store.loadSequence();
    // A store written before the indexes (or by another version of them) is indexed once, here.
    await rebuildIndexes(db, (ops, sync) => store.commits.write(ops, sync));
    return store;
  }

  /** The sequence is the larger of the stored counter and the highest stored call. */
  private async loadSequence(): Promise<void> {
    const stored = (await this.db.get(SEQ_KEY)) as number | undefined;
    let highest = 0;
    for await (const key of this.db.keys({ gte: CALL, lt: CALL + '\xff', reverse: true, limit: 1 })) {
      highest = Number(key.slice(CALL.length));
    }
    this.lastCallNum = Math.max(stored ?? 0, highest);
  }

  get callCount(): number {
    return this.lastCallNum;
  }

  /** Writes refused because their call had already ended (late results), since this start. */
  lateResults = 0;

  private closing = false;

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.db.close();
  }

  async putRuntime(runtime: Runtime): Promise<{ created: boolean; runtime: Runtime }> {
    const created = (await this.db.get(RUNTIME + runtime.name)) === undefined;
    await this.write([{ type: 'put', key: RUNTIME + runtime.name, value: runtime }]);
    return { created, runtime };
  }

  async getRuntime(name: string): Promise<Runtime | null> {
    return ((await this.db.get(RUNTIME + name)) as Runtime | undefined) ?? null;
  }

  listRuntimes(): Promise<Runtime[]> {
    return this.values<Runtime>(RUNTIME);
  }

  /** Seals and stores a secret's value; answers what is told of it. */
  async putSecret(name: string, value: string): Promise<{ created: boolean; secret: SecretInfo }> {
    return this.serialized(SECRET + name, async () => {
      const current = (await this.db.get(SECRET + name)) as StoredSecret | undefined;
      const now = new Date().toISOString();
      const stored: StoredSecret = { name, createdAt: current?.createdAt ?? now, updatedAt: now, sealed: this.secrets.seal(name, value) };
      await this.write([{ type: 'put', key: SECRET + name, value: stored }]);
      return { created: current === undefined, secret: { name, createdAt: stored.createdAt, updatedAt: now } };
    });
  }

  async listSecrets(): Promise<SecretInfo[]> {
    return (await this.values<StoredSecret>(SECRET)).map(({ name, createdAt, updatedAt }) => ({ name, createdAt, updatedAt }));
  }

  async getSecret(name: string): Promise<SecretInfo | null> {
    const stored = (await this.db.get(SECRET + name)) as StoredSecret | undefined;
    return stored ? { name: stored.name, createdAt: stored.createdAt, updatedAt: stored.updatedAt } : null;
  }

  /** Removes a secret no function uses; one in use is refused with the names of its functions. */
  async deleteSecret(name: string): Promise<{ deleted: boolean }> {
    return this.serialized(SECRET + name, async () => {
      if ((await this.db.get(SECRET + name)) === undefined) return { deleted: false };
      const users = (await this.listFunctions()).filter((f) => f.secrets?.includes(name)).map((f) => f.functionName);
      if (users.length > 0) throw new PlatformError('SECRET_IN_USE', `secret "${name}" is used by ${users.slice(0, 10).join(', ')}${users.length > 10 ? ` and ${users.length - 10} more` : ''}`, { functions: users });
      await this.write([{ type: 'del', key: SECRET + name }]);
      return { deleted: true };
    });
  }

  /** The values of these secrets, opened; a missing one is SECRET_NOT_FOUND. */
  async getSecretValues(names: string[]): Promise<Record<string, string>> {
    const values: Record<string, string> = {};
    for (const name of names) {
      const stored = (await this.db.get(SECRET + name)) as StoredSecret | undefined;
      if (!stored) throw new PlatformError('SECRET_NOT_FOUND', `no secret named "${name.slice(0, 64)}"`);
      values[name] = this.secrets.open(name, stored.sealed);
    }
    return values;
  }

  async putDeadLetter(callNum: number): Promise<{ ok: true }> {
    await this.write([{ type: 'put', key: DEAD_LETTER + padCallNum(callNum), value: Date.now() }]);
    return { ok: true };
  }

  /** A callback's deliveries so far; a record of a delivery that ended is not reopened. */
  async putCallback(record: CallbackRecord): Promise<{ ok: true }> {
    await this.serialized(callbackKey(record.callNum), async () => {
      const current = (await this.db.get(callbackKey(record.callNum))) as CallbackRecord | undefined;
      if (!current) throw new PlatformError('CALL_NOT_FOUND', `call ${record.callNum} has no callback`);
      if (current.state !== 'pending') return;
      await this.write([
        { type: 'put', key: callbackKey(record.callNum), value: { ...record, url: current.url } },
        ...(record.state === 'pending' ? [] : [{ type: 'del' as const, key: CALLBACK_PENDING + padCallNum(record.callNum) }]),
      ]);
    });
    return { ok: true };
  }

  async getCallback(callNum: number): Promise<CallbackRecord | null> {
    return ((await this.db.get(callbackKey(callNum))) as CallbackRecord | undefined) ?? null;
  }

  /** Pending callbacks whose calls have ended, oldest first: the ones a delivery may start on. */
  async pendingCallbacks(limit = 1000): Promise<CallbackRecord[]> {
    const found: CallbackRecord[] = [];
    for await (const key of this.db.keys({ gte: CALLBACK_PENDING, lt: CALLBACK_PENDING + '\xff' })) {
      const callNum = Number(key.slice(CALLBACK_PENDING.length));
      // Calls still running are in the live map; a call read from disk may have ended.
      if (this.live.has(callNum)) continue;
      const call = (await this.db.get(callKey(callNum))) as Call | undefined;
      const record = (await this.db.get(callbackKey(callNum))) as CallbackRecord | undefined;
      if (call && isFinal(call.status) && record?.state === 'pending') found.push(record);
      if (found.length >= limit) break;
    }
    return found;
  }

  async putTrigger(trigger: CronTrigger): Promise<{ created: boolean; trigger: CronTrigger }> {
    return this.serialized(TRIGGER + trigger.name, async () => {
      const created = (await this.db.get(TRIGGER + trigger.name)) === undefined;
      await this.write([{ type: 'put', key: TRIGGER + trigger.name, value: trigger }]);
      return { created, trigger };
    });
  }

  async getTrigger(name: string): Promise<CronTrigger | null> {
    return ((await this.db.get(TRIGGER + name)) as CronTrigger | undefined) ?? null;
  }

  listTriggers(): Promise<CronTrigger[]> {
    return this.values<CronTrigger>(TRIGGER);
  }

  async deleteTrigger(name: string): Promise<{ deleted: boolean }> {
    return this.serialized(TRIGGER + name, async () => {
      if ((await this.db.get(TRIGGER + name)) === undefined) return { deleted: false };
      await this.write([{ type: 'del', key: TRIGGER + name }]);
      return { deleted: true };
    });
  }

  /**
   * A trigger's tick: its call and the tick as its last, in one synced write, or nothing when the
   * trigger is gone or already fired this tick or a later one. So a tick makes one call at most,
   * even when asked twice (an api restarted in between), and a call is never made without its tick.
   */
  async fireTrigger(name: string, tick: string, input: DbRequest<'createCall'>): Promise<{ fired: boolean; call?: Call; trigger?: CronTrigger }> {
    return this.serialized(TRIGGER + name, async () => {
      const trigger = (await this.db.get(TRIGGER + name)) as CronTrigger | undefined;
      if (!trigger || Date.parse(trigger.lastTick) >= Date.parse(tick)) return { fired: false, ...(trigger ? { trigger } : {}) };
      const updated = { ...trigger, lastTick: tick };
      const call = await this.createCall({ ...input, durable: true }, () => [{ type: 'put', key: TRIGGER + name, value: updated }]);
      return { fired: true, call, trigger: updated };
    });
  }

  /** Removes a runtime no function uses; a runtime in use is refused with the names of its functions. */
  async deleteRuntime(name: string): Promise<{ deleted: boolean }> {
    if ((await this.db.get(RUNTIME + name)) === undefined) return { deleted: false };
    const users = (await this.listFunctions()).filter((f) => f.runtimeName === name).map((f) => f.functionName);
    if (users.length > 0) {
      throw new PlatformError('RUNTIME_IN_USE', `runtime "${name}" is used by ${users.slice(0, 10).join(', ')}${users.length > 10 ? ` and ${users.length - 10} more` : ''}; remove those functions first`, { functions: users });
    }
    await this.write([{ type: 'del', key: RUNTIME + name }]);
    return { deleted: true };
  }

  async putFunction(fn: FunctionRecord): Promise<{ created: boolean; fn: FunctionRecord }> {
    const created = (await this.db.get(FUNCTION + fn.functionName)) === undefined;
    await this.write([
      { type: 'put', key: FUNCTION + fn.functionName, value: fn },
      { type: 'put', key: `${FUNCTION_VERSION}${fn.functionName}:${fn.version}`, value: fn },
    ]);
    return { created, fn };
  }

  /** Removes a function and its version history; its calls stay. */
  async deleteFunction(name: string): Promise<{ deleted: boolean }> {
    if ((await this.db.get(FUNCTION + name)) === undefined) return { deleted: false };
    const prefix = `${FUNCTION_VERSION}${name}:`;
    const ops: Array<{ type: 'del'; key: string }> = [{ type: 'del', key: FUNCTION + name }];
    for await (const key of this.db.keys({ gte: prefix, lt: prefix + '\xff' })) ops.push({ type: 'del', key });
    await this.write(ops);
    return { deleted: true };
  }

  /** One version of a function, current or not, as it was last registered. */
  async getFunctionVersion(name: string, version: string): Promise<FunctionRecord | null> {
    return ((await this.db.get(`${FUNCTION_VERSION}${name}:${version}`)) as FunctionRecord | undefined) ?? null;
  }

  /** The versions a function has had, newest registration first. */
  async listFunctionVersions(name: string): Promise<FunctionRecord[]> {
    const versions = await this.values<FunctionRecord>(`${FUNCTION_VERSION}${name}:`);
    return versions.sort((a, b) => b.registeredAt.localeCompare(a.registeredAt));
  }

  async getFunction(name: string): Promise<FunctionRecord | null> {
    return ((await this.db.get(FUNCTION + name)) as FunctionRecord | undefined) ?? null;
  }

  listFunctions(): Promise<FunctionRecord[]> {
    return this.values<FunctionRecord>(FUNCTION);
  }

  /** The same key gives back the call it made the first time (checked and written under a per-key lock). */
  createCallOnce(input: DbRequest<'createCallOnce'>, deadline?: number): Promise<{ call: Call; created: boolean }> {
    const key = IDEMPOTENCY + input.key;
    return this.serialized(key, async () => {
      const existing = (await this.db.get(key)) as number | undefined;
      // A key whose call was pruned by retention has expired with it: it makes a new call.
      const earlier = existing !== undefined ? await this.getCall(existing) : null;
      if (earlier) {
        const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
        if (
          earlier.funcName !== input.funcName ||
          !same(earlier.params, input.params ?? {}) ||
          !same(earlier.args, input.args) ||
          !same(earlier.env, input.env) ||
          (earlier.rerunOf ?? null) !== (input.rerunOf ?? null)
        ) {
          const rerun = earlier.rerunOf ? ` (a rerun of call ${earlier.rerunOf})` : '';
          throw new PlatformError('IDEMPOTENCY_CONFLICT', `this Idempotency-Key made call ${existing}${rerun} of "${earlier.funcName}" with other params, args, env or rerun source`);
        }
        return { call: earlier, created: false };
      }
      const call = await this.createCall(input, (callNum) => [{ type: 'put', key, value: callNum }], deadline);
      return { call, created: true };
    });
  }

  /**
   * `deadline` (ms since the epoch): when the sender stops waiting. A create still queued for the disk
   * at that time is not written, so that a request answered with an error never becomes a call.
   */
  async createCall(input: DbRequest<'createCall'>, extra: (callNum: number) => BatchOp[] = () => [], deadline?: number): Promise<Call> {
    // The number is taken before the first await, so concurrent creates never share one; a number
    // whose write fails is skipped, never handed out again.
    const callNum = ++this.lastCallNum;
    const call: Call = {
      funcName: input.funcName,
      params: input.params ?? {},
      callNum,
      status: 'PENDING',
      result: '',
      createdAt: new Date().toISOString(),
    };
    if (input.functionVersion) call.functionVersion = input.functionVersion;
    if (input.runtimeName) call.runtimeName = input.runtimeName;
    if (input.rerunOf) call.rerunOf = input.rerunOf;
    if (input.trigger) call.trigger = input.trigger;
    if (input.callbackUrl) call.callbackUrl = input.callbackUrl;
    if (input.async) call.async = true;
    if (input.retryOf) call.retryOf = input.retryOf;
    if (input.retryAttempt) call.retryAttempt = input.retryAttempt;
    if (input.args?.length) call.args = input.args;
    if (input.env && Object.keys(input.env).length > 0) call.env = input.env;
    await this.write(
      [
        { type: 'put', key: callKey(callNum), value: call },
        ...indexOps(undefined, call),
        { type: 'put', key: SEQ_KEY, value: this.lastCallNum },
        ...extra(callNum),
        ...(input.callbackUrl
          ? [
              { type: 'put' as const, key: callbackKey(callNum), value: { callNum, url: input.callbackUrl, state: 'pending', attempts: [] } satisfies CallbackRecord },
              { type: 'put' as const, key: CALLBACK_PENDING + padCallNum(callNum), value: 0 },
            ]
          : []),
      ],
      input.durable !== false,
      deadline,
    );
    if (this.live.size < PlatformStore.MAX_LIVE) this.live.set(callNum, call);
    return call;
  }

  /**
   * The only way a stored call changes after it is created: a lifecycle command, checked against the
   * call's current state and the sender's role (protocol/call-lifecycle.ts), under a per-call lock.
   * A call that has moved on is not an error: the answer says so and carries the call as it is.
   */
  applyCall(command: CallCommand): Promise<CommandResult> {
    const { callNum } = command;
    return this.serialized(callKey(callNum), async () => {
      const current = this.live.get(callNum) ?? ((await this.db.get(callKey(callNum))) as Call | undefined);
      if (!current) throw new PlatformError('CALL_NOT_FOUND', `no call ${callNum}`);
      const result = applyCommand(current, command);
      if (!result.applied) {
        // A RUNNING that lands after the end (it is written beside the call, not before it) is no late result.
        if (result.refused === 'final' && command.command !== 'start') this.lateResults += 1;
        return result;
      }
      const updated = result.call;
      await this.write([{ type: 'put', key: callKey(callNum), value: updated }, ...indexOps(current, updated)]);
      if (isFinal(updated.status)) this.live.delete(callNum);
      else if (this.live.has(callNum) || this.live.size < PlatformStore.MAX_LIVE) this.live.set(callNum, updated);
      return result;
    });
  }

  /** Calls not yet final, oldest first (recovery and the periodic sweep read these). */
  async unfinishedCalls(limit = 10_000): Promise<Call[]> {
    const out: Call[] = [];
    for (const status of ['PENDING', 'RUNNING'] as const) {
      let after: number | undefined;
      do {
        const page = await this.listCalls({ status, limit: Math.min(1000, limit), ...(after ? { afterCallNum: after } : {}) });
        // Unfinished calls have no logs to leave out: the listed call is the whole call.
        out.push(...(page.calls as Call[]));
        after = page.next ?? undefined;
      } while (after !== undefined && out.length < limit);
    }
    return out.sort((a, b) => a.callNum - b.callNum).slice(0, limit);
  }

  /** The nodes the api has registered and not seen leave: after an api restart, the ones to wait for. */
  async putNode(nodeId: string): Promise<{ ok: true }> {
    await this.write([{ type: 'put', key: NODE + nodeId, value: { nodeId, joinedAt: new Date().toISOString() } }]);
    return { ok: true };
  }

  async deleteNode(nodeId: string): Promise<{ ok: true }> {
    await this.write([{ type: 'del', key: NODE + nodeId }]);
    return { ok: true };
  }

  async listNodes(): Promise<Array<{ nodeId: string; joinedAt: string }>> {
    return this.values(NODE);
  }

  /** Whether writes go through; false from a failed write until a probe write succeeds again. */
  get writable(): boolean {
    return this.writeFailure === undefined;
  }

  get writeError(): string | undefined {
    return this.writeFailure;
  }

  /**
   * Every write goes through here. A write that fails (a full or failing disk) is answered with the
   * retryable STORE_UNAVAILABLE, and the store is reopened and probed until writes go through again:
   * LevelDB refuses every write after one failure until it is reopened.
   */
  private async write(ops: BatchOp[], sync = true, deadline?: number): Promise<void> {
    if (this.writeFailure !== undefined) throw new PlatformError('STORE_UNAVAILABLE', `the store refuses writes: ${this.writeFailure}`);
    try {
      await this.commits.write(ops, sync, deadline);
    } catch (err) {
      if (err instanceof PlatformError) throw err;
      this.writeFailure = err instanceof Error ? err.message : String(err);
      this.onWriteFailure?.(this.writeFailure);
      void this.healWrites();
      throw new PlatformError('STORE_UNAVAILABLE', `the store refuses writes: ${this.writeFailure}`);
    }
  }

  private writeFailure?: string;
  private healing = false;
  /** Told when writes start failing, and when they work again (undefined). */
  onWriteFailure?: (error: string | undefined) => void;

  private async healWrites(): Promise<void> {
    if (this.healing) return;
    this.healing = true;
    let pause = 500;
    while (this.writeFailure !== undefined && !this.closing) {
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 5000);
      try {
        await this.db.close();
        await this.db.open();
        await this.db.batch([{ type: 'put', key: PROBE_KEY, value: Date.now() }], { sync: true });
        this.writeFailure = undefined;
        this.onWriteFailure?.(undefined);
      } catch (err) {
        this.writeFailure = err instanceof Error ? err.message : String(err);
      }
    }
    this.healing = false;
  }

  /** Runs `task` after every earlier task of the same key has settled, in arrival order. */
  private serialized<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(task);
    this.locks.set(key, next);
    void next
      .finally(() => {
        if (this.locks.get(key) === next) this.locks.delete(key);
      })
      .catch(() => undefined);
    return next;
  }

  async putOutputs(callNum: number, zip: string): Promise<{ ok: true }> {
    await this.write([{ type: 'put', key: outputsKey(callNum), value: zip }]);
    return { ok: true };
  }

  async getOutputs(callNum: number): Promise<string | null> {
    return ((await this.db.get(outputsKey(callNum))) as string | undefined) ?? null;
  }

  async getCall(callNum: number): Promise<Call | null> {
    return ((await this.db.get(callKey(callNum))) as Call | undefined) ?? null;
  }

  /**
   * One page of calls in callNum order (newest first with `newestFirst`), after or before a call
   * number, matching every filter given, without their logs; read through the index that fits.
   */
  listCalls(query: DbRequest<'listCalls'> = {}): Promise<CallPage> {
    return listCallPage(this.db, query);
  }

  /**
   * Retention: removes ended calls created before `olderThan`, and the oldest ended calls beyond
   * `maxCalls`, with their idempotency keys. Calls not yet ended are never removed.
   */
  async prune(options: { olderThan?: string; maxCalls?: number }): Promise<{ deleted: number }> {
    let stored = 0;
    for await (const _ of this.db.keys({ gte: CALL, lt: CALL + '\xff' })) stored += 1;
    let excess = options.maxCalls && options.maxCalls > 0 ? stored - options.maxCalls : 0;
    let deleted = 0;
    let highestDeleted = 0;
    let batch: Array<{ type: 'del'; key: string }> = [];
    const flush = async () => {
      if (batch.length === 0) return;
      await this.write(batch);
      batch = [];
    };
    for await (const [key, value] of this.db.iterator({ gte: CALL, lt: CALL + '\xff' })) {
      const call = value as Call;
      const tooOld = options.olderThan !== undefined && call.createdAt < options.olderThan;
      if (excess <= 0 && !tooOld) break;
      if (!isFinal(call.status) || this.live.has(call.callNum)) continue;
      batch.push(
        { type: 'del', key },
        { type: 'del', key: outputsKey(call.callNum) },
        { type: 'del', key: callbackKey(call.callNum) },
        { type: 'del', key: CALLBACK_PENDING + padCallNum(call.callNum) },
        { type: 'del', key: DEAD_LETTER + padCallNum(call.callNum) },
        ...unindexOps(call),
      );
      excess -= 1;
      deleted += 1;
      highestDeleted = call.callNum;
      if (batch.length >= 2000) await flush();
    }
    await flush();
    if (deleted > 0) {
      const stale: Array<{ key: string; callNum: number }> = [];
      for await (const [key, callNum] of this.db.iterator({ gte: IDEMPOTENCY, lt: IDEMPOTENCY + '\xff' })) {
        if ((callNum as number) <= highestDeleted) stale.push({ key, callNum: callNum as number });
      }
      // Each key is checked again under its own lock: a request may have reused it meanwhile.
      for (const { key, callNum } of stale) {
        await this.serialized(key, async () => {
          if ((await this.db.get(key)) === callNum && !(await this.getCall(callNum))) await this.write([{ type: 'del', key }]);
        });
      }
    }
    return { deleted };
  }

  private async values<T>(prefix: string): Promise<T[]> {
    const out: T[] = [];
    for await (const value of this.db.values({ gte: prefix, lt: prefix + '\xff' })) out.push(value as T);
    return out;
  }
}
