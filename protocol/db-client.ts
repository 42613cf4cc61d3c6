import type { ChannelStats } from './channel';
import type { CallPage, DbMsgType, DbRequest, ListedCall } from './db-messages';
import type { ErrorShape } from './errors';
import type { Logger } from './log';
import { RpcClient } from './rpc-client';
import type { CommandResult, FailCommand, FinishCommand, RequeueCommand, StartCommand } from './call-lifecycle';
import type { Call, FunctionRecord, Runtime } from './types';
import type { CallbackRecord, CronTrigger, SecretInfo } from './schemas';

/** One command's answer in a finishCalls request. */
export type FinishOutcome = { ok: true; result: CommandResult } | { ok: false; error: ErrorShape };

/** The typed client of db-service that the api, workers and miniworkers share. */
export class DbClient {
  private readonly rpc: RpcClient;

  constructor(endpoint: string, options: { timeoutMs?: number; log?: Logger } = {}) {
    this.rpc = new RpcClient(endpoint, { timeoutMs: options.timeoutMs ?? 5000, timeoutCode: 'DB_UNAVAILABLE', log: options.log });
  }

  start(): this {
    this.rpc.start();
    return this;
  }

  close(): void {
    this.rpc.close();
  }

  /** Frames received, handled and dropped on the channel to db-service. */
  channelStats(): ChannelStats {
    return this.rpc.channelStats();
  }

  private call<K extends DbMsgType, T>(msgType: K, content: DbRequest<K>, timeoutMs?: number): Promise<T> {
    return this.rpc.request<T>(msgType, content, timeoutMs);
  }

  ping(timeoutMs?: number): Promise<{ ok: true; calls: number; lateResults: number; writable: boolean; writeError?: string }> {
    return this.call('ping', {}, timeoutMs);
  }

  putRuntime(runtime: Runtime): Promise<{ created: boolean; runtime: Runtime }> {
    return this.call('putRuntime', { runtime });
  }

  getRuntime(name: string): Promise<Runtime | null> {
    return this.call('getRuntime', { name });
  }

  listRuntimes(): Promise<Runtime[]> {
    return this.call('listRuntimes', {});
  }

  deleteRuntime(name: string): Promise<{ deleted: boolean }> {
    return this.call('deleteRuntime', { name });
  }

  putFunction(fn: FunctionRecord): Promise<{ created: boolean; fn: FunctionRecord }> {
    return this.call('putFunction', { fn });
  }

  getFunction(name: string): Promise<FunctionRecord | null> {
    return this.call('getFunction', { name });
  }

  listFunctions(): Promise<FunctionRecord[]> {
    return this.call('listFunctions', {});
  }

  deleteFunction(name: string): Promise<{ deleted: boolean }> {
    return this.call('deleteFunction', { name });
  }

  listFunctionVersions(name: string): Promise<FunctionRecord[]> {
    return this.call('listFunctionVersions', { name });
  }

  getFunctionVersion(name: string, version: string): Promise<FunctionRecord | null> {
    return this.call('getFunctionVersion', { name, version });
  }

  createCall(input: DbRequest<'createCall'>): Promise<Call> {
    return this.call('createCall', input);
  }

  /** Sealed by db-service; the answer never holds the value. */
  putSecret(name: string, value: string): Promise<{ created: boolean; secret: SecretInfo }> {
    return this.call('putSecret', { name, value });
  }

  listSecrets(): Promise<SecretInfo[]> {
    return this.call('listSecrets', {});
  }

  getSecret(name: string): Promise<SecretInfo | null> {
    return this.call('getSecret', { name });
  }

  deleteSecret(name: string): Promise<{ deleted: boolean }> {
    return this.call('deleteSecret', { name });
  }

  /** For a node starting a container of a function that uses these secrets. */
  getSecretValues(names: string[]): Promise<Record<string, string>> {
    return this.call('getSecretValues', { names });
  }

  putDeadLetter(callNum: number): Promise<{ ok: true }> {
    return this.call('putDeadLetter', { callNum });
  }

  putCallback(record: CallbackRecord): Promise<{ ok: true }> {
    return this.call('putCallback', { record });
  }

  getCallback(callNum: number): Promise<CallbackRecord | null> {
    return this.call('getCallback', { callNum });
  }

  pendingCallbacks(limit?: number): Promise<CallbackRecord[]> {
    return this.call('pendingCallbacks', limit === undefined ? {} : { limit });
  }

  putTrigger(trigger: CronTrigger): Promise<{ created: boolean; trigger: CronTrigger }> {
    return this.call('putTrigger', { trigger });
  }

  getTrigger(name: string): Promise<CronTrigger | null> {
    return this.call('getTrigger', { name });
  }

  listTriggers(): Promise<CronTrigger[]> {
    return this.call('listTriggers', {});
  }

  deleteTrigger(name: string): Promise<{ deleted: boolean }> {
    return this.call('deleteTrigger', { name });
  }

  /** A tick's call and the tick, in one write; `fired` false when the tick (or a later one) fired already. */
  fireTrigger(name: string, tick: string, call: DbRequest<'createCall'>): Promise<{ fired: boolean; call?: Call; trigger?: CronTrigger }> {
    return this.call('fireTrigger', { name, tick, call });
  }

  createCallOnce(input: DbRequest<'createCallOnce'>): Promise<{ call: Call; created: boolean }> {
    return this.call('createCallOnce', input);
  }

  /** Lifecycle commands: each answers whether it applied and the call as it now is. */
  startCall(command: StartCommand): Promise<CommandResult> {
    return this.call('startCall', command);
  }

  finishCall(command: FinishCommand): Promise<CommandResult> {
    return this.call('finishCall', command);
  }

  /** Several finish commands in one request and one synced write; each answers on its own. */
  finishCalls(commands: FinishCommand[]): Promise<FinishOutcome[]> {
    return this.call('finishCalls', { commands });
  }

  failCall(command: FailCommand): Promise<CommandResult> {
    return this.call('failCall', command);
  }

  requeueCall(command: RequeueCommand): Promise<CommandResult> {
    return this.call('requeueCall', command);
  }

  unfinishedCalls(limit?: number): Promise<Call[]> {
    return this.call('unfinishedCalls', limit ? { limit } : {}, 30_000);
  }

  putNode(nodeId: string): Promise<{ ok: true }> {
    return this.call('putNode', { nodeId });
  }

  deleteNode(nodeId: string): Promise<{ ok: true }> {
    return this.call('deleteNode', { nodeId });
  }

  listNodes(): Promise<Array<{ nodeId: string; joinedAt: string }>> {
    return this.call('listNodes', {});
  }

  /** A call's outputs, a zip. */
  putOutputs(callNum: number, zip: Buffer): Promise<{ ok: true }> {
    return this.call('putOutputs', { callNum, zip: zip.toString('base64') });
  }

  async getOutputs(callNum: number): Promise<Buffer | null> {
    const zip = await this.call<'getOutputs', string | null>('getOutputs', { callNum });
    return zip === null ? null : Buffer.from(zip, 'base64');
  }

  getCall(callNum: number): Promise<Call | null> {
    return this.call('getCall', { callNum });
  }

  /** One page of calls without their logs; `next` continues it (beforeCallNum newest first, else afterCallNum). */
  listCallPage(query: DbRequest<'listCalls'> = {}): Promise<CallPage> {
    return this.call('listCalls', query, 30_000);
  }

  /** Every call that matches, page after page: only one page is held at a time. */
  async *iterateCalls(query: Omit<DbRequest<'listCalls'>, 'afterCallNum' | 'beforeCallNum'> = {}): AsyncGenerator<ListedCall[]> {
    let cursor: number | null = null;
    do {
      const page: CallPage = await this.listCallPage({ ...query, ...(cursor === null ? {} : query.newestFirst ? { beforeCallNum: cursor } : { afterCallNum: cursor }) });
      yield page.calls;
      cursor = page.next;
    } while (cursor !== null);
  }

  /** Every call that matches, gathered from pages: for short lists (such as the calls not yet ended). */
  async listCalls(query: Omit<DbRequest<'listCalls'>, 'afterCallNum' | 'beforeCallNum'> = {}): Promise<ListedCall[]> {
    const calls: ListedCall[] = [];
    for await (const page of this.iterateCalls(query)) calls.push(...page);
    return calls;
  }
}

/** What a miniworker asks of db-service: RUNNING and a call's outputs (its worker writes the rest). */
export type MiniworkerDb = Pick<DbClient, 'startCall' | 'putOutputs' | 'getSecretValues'>;
