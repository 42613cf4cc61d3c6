import { createHash } from 'node:crypto';
import { limitsTag, type Sandbox } from './limits';
import type { Call, FunctionRecord, Runtime } from './types';

/**
 * The api–worker channel (api ROUTER, worker DEALER) and the worker–miniworker channel (worker
 * ROUTER, miniworker DEALER). All messages are one-way events in the common envelope.
 */

/** What a worker needs to run one call: the call and the records it refers to, as they were at invoke time. */
export interface Invocation {
  call: Call;
  fn: FunctionRecord;
  runtime: Runtime;
  /** Set by the api when it sends the call to a worker (ISO 8601); the call's final write records it. */
  dispatchedAt?: string;
}

export interface WorkerToApi {
  /** `inflight`: the calls this worker holds (accepted, not yet reported), so that a restarted api knows their owner. */
  hello: { nodeId: string; capacity: number; pid: number; inflight?: number[] };
  heartbeat: { load: number; queued: number; warm?: Record<string, number>; inflight?: number[] };
  callDone: { call: Call };
  /** The worker is stopping: send it nothing more; its calls in flight still end normally. */
  draining: Record<string, never>;
  /** A call the worker will not run (it is stopping): queue it for another worker. */
  handBack: { callNum: number };
  bye: Record<string, never>;
}

export interface ApiToWorker {
  welcome: { runtimes: Runtime[]; functions: FunctionRecord[]; heartbeatMs: number };
  heartbeat: Record<string, never>;
  /** Sent to a worker the api does not know (after an api restart or an expiry): say hello again. */
  reregister: Record<string, never>;
  invoke: Invocation;
  runtimeRegistered: { runtime: Runtime };
  functionRegistered: { fn: FunctionRecord };
  /** The function was removed: its idle warm containers are stopped. */
  functionRemoved: { name: string };
}

/** A job handed to a miniworker: the invocation plus what the worker decided for it. */
export interface Job extends Invocation {
  image: string;
  timeoutMs: number;
  sandbox: Sandbox;
  /** Handler mode: keep the container for the next call of this function version. */
  keepWarm: boolean;
  /** The function can run in a stem cell of its runtime (its dependencies step changed nothing outside its folder). */
  injectable: boolean;
  /** The package on this node, for putting it into a stem cell. */
  packagePath?: string;
}

/** A stem cell: a started container of a handler-mode runtime, without code yet. */
export interface Stem {
  runtime: Runtime;
  sandbox: Sandbox;
}

export function stemKey(runtimeName: string): string {
  return `stem:${runtimeName}`;
}

/**
 * A warm container is known by function name, version and, when set, the function's own limits and
 * environment: re-registering with other settings never reuses a container made with the old ones.
 */
export function warmKey(fn: Pick<FunctionRecord, 'functionName' | 'version' | 'limits' | 'env' | 'outputs'>): string {
  let key = `${fn.functionName}@${fn.version}`;
  if (fn.outputs) key += '+out';
  if (fn.limits && Object.keys(fn.limits).length > 0) key += `~${limitsTag(fn.limits)}`;
  if (fn.env && Object.keys(fn.env).length > 0) key += `#${envTag(fn.env)}`;
  return key;
}

function envTag(env: Record<string, string>): string {
  const sorted = Object.keys(env)
    .sort()
    .map((k) => [k, env[k]]);
  return createHash('sha1').update(JSON.stringify(sorted)).digest('hex').slice(0, 12);
}

/**
 * The function's own variables (and a call's, over them) as container Env entries; the platform's
 * FAAS_ ones come after them.
 */
export function functionEnv(fn: Pick<FunctionRecord, 'env'>, call?: Pick<Call, 'env'>): string[] {
  return Object.entries({ ...fn.env, ...call?.env }).map(([k, v]) => `${k}=${v}`);
}

export interface Prewarm {
  fn: FunctionRecord;
  runtime: Runtime;
  image: string;
  sandbox: Sandbox;
}

export interface MiniworkerToWorker {
  ready: { pid: number };
  /** A call ended; `warm` is the key of the container this miniworker now keeps, if any. */
  done: { call: Call; warm: string | null };
  /** Answer to prewarm and retire. */
  warmed: { warm: string | null; error?: string };
}

export interface WorkerToMiniworker {
  job: Job;
  /** Start (handler mode) a container of this function version and keep it. */
  prewarm: Prewarm;
  /** Start a stem cell of this runtime and keep it. */
  stem: Stem;
  /** Stop the warm container. */
  retire: Record<string, never>;
}
