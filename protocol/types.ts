import type { FunctionLimits } from './limits';

/** The objects the platform stores, as in the seed: RUNTIME, FUNCTION and CALL. */

export type CallStatus = 'PENDING' | 'RUNNING' | 'DONE' | 'ERROR' | 'TIMEOUT';
export const FINAL_STATUSES: ReadonlySet<CallStatus> = new Set<CallStatus>(['DONE', 'ERROR', 'TIMEOUT']);

export function isFinal(status: CallStatus): boolean {
  return FINAL_STATUSES.has(status);
}

export type RuntimeMode = 'process' | 'handler';
export type PreloadPolicy = 'none' | 'runtime' | 'function';

export interface Runtime {
  name: string;
  image: string;
  /** Folder inside the container where the function's files are put. */
  path: string;
  /** Shell command run once per function version to install its dependencies. */
  dependencies: string;
  /** Shell command run for each invocation (process mode). */
  run: string;
  /**
   * `process`: the seed's contract, `run` once per call with params on stdin, result on stdout.
   * `handler`: `run` starts a bootstrap that loads the function once and serves many calls.
   */
  mode: RuntimeMode;
  registeredAt: string;
}

export interface FunctionRecord {
  functionName: string;
  runtimeName: string;
  /** sha256 of the canonical package (.tar.gz) that the api serves to workers. */
  version: string;
  size: number;
  format: 'tar.gz' | 'zip';
  registeredAt: string;
  /** Handler mode: module.attribute to call, default "handler.handle". */
  handler?: string;
  /** Overrides the worker's preload policy for this function. */
  preload?: PreloadPolicy;
  /** Safe to run twice: a call that loses its node is queued once more instead of ending ERROR. */
  idempotent?: boolean;
  /** Its HTTP endpoint (/function/<name>) answers without credentials, on a platform with users. */
  public?: boolean;
  /** Secrets it uses: files /run/secrets/<name> in its containers. */
  secrets?: string[];
  /** Retries of its async calls (idempotent functions only). */
  retries?: { max: number; backoffMs?: number; on?: 'platform' | 'any'; timeouts?: boolean };
  /** Limits set at registration; what is not set takes the node's default. */
  limits?: FunctionLimits;
  /** Environment variables of the function's containers, set at registration. */
  env?: Record<string, string>;
  /** Extra arguments appended to the runtime's run command (process mode). */
  args?: string[];
  /** Keep the files each call writes to /out (GET /v1/calls/:n/outputs). */
  outputs?: boolean;
}

/** Why a call ended ERROR, when the platform rather than the function decided it. */
export type CallReason =
  | 'exit_code'
  | 'timeout'
  | 'dependencies_failed'
  | 'image_missing'
  | 'docker_error'
  | 'worker_lost'
  | 'node_lost'
  | 'orchestrator_restart'
  | 'out_of_memory'
  | 'handler_error'
  | 'handler_crashed'
  | 'load_failed'
  | 'function_missing'
  | 'result_too_large';

export interface Call {
  callNum: number;
  funcName: string;
  params: unknown;
  status: CallStatus;
  result: string;
  createdAt: string;
  functionVersion?: string;
  runtimeName?: string;
  node?: string;
  /** When the api handed the call to a worker: queue wait is dispatchedAt − createdAt. */
  dispatchedAt?: string;
  startedAt?: string;
  endedAt?: string;
  durationMs?: number;
  exitCode?: number;
  /** Logs of the call: what the function wrote while it ran. */
  stdout?: string;
  stderr?: string;
  reason?: CallReason;
  error?: string;
  truncated?: boolean;
  /** Runs started for this call: 2 when it was queued again after losing its node. */
  attempts?: number;
  /** Extra run-command arguments of this call, after the function's own (process mode). */
  args?: string[];
  /** Environment variables of this call, over the function's own. */
  env?: Record<string, string>;
  /** The call this one runs again (POST /v1/calls/:n/rerun): same function version, same params. */
  rerunOf?: number;
  /** What made the call besides the call API: `http` (its function's endpoint) or `cron:<trigger name>`. */
  trigger?: string;
  /** Where its final state is POSTed when it ends (X-Callback-Url, callbackUrl). */
  callbackUrl?: string;
  /** Made without a waiting client (202): such a call may be retried. */
  async?: boolean;
  /** The call this one retries, and which attempt of the chain it is (2 for the first retry). */
  retryOf?: number;
  retryAttempt?: number;
  /** What the call left in its output folder: the archive is stored beside the call. */
  outputs?: { bytes: number; truncated?: boolean };
  /** The call started a container (every process-mode call; a handler-mode call without a warm one). */
  coldStart?: boolean;
}

/** The fields a worker or miniworker may change on a call. */
export type CallPatch = Partial<
  Pick<
    Call,
    | 'status'
    | 'result'
    | 'node'
    | 'dispatchedAt'
    | 'startedAt'
    | 'endedAt'
    | 'durationMs'
    | 'exitCode'
    | 'stdout'
    | 'stderr'
    | 'reason'
    | 'error'
    | 'truncated'
    | 'attempts'
    | 'coldStart'
    | 'outputs'
  >
>;
