import { z } from 'zod';
import { finishCommandSchema } from './call-lifecycle';
import { MAX_FRAME_BYTES } from './envelope';
import { imageRefSchema } from './image-ref';
import { argsSchema, callReasonSchema, callStatusSchema, envSchema, functionSchema, nameSchema, runtimeSchema, triggerSchema } from './schemas';
import type { Sandbox } from './limits';
import type { Call, FunctionRecord, Runtime } from './types';
import { warmCountsSchema, warmKeySchema } from './warm-key';

export { describeWarmKey, stemKey, warmKey, type WarmCounts, type WarmKey } from './warm-key';

/**
 * The api–worker channel (api ROUTER, worker DEALER) and the worker–miniworker channel (worker
 * ROUTER, miniworker DEALER). All messages are one-way events in the common envelope; each
 * direction has one schema per msgType, checked on receipt by protocol/channel.ts, and the types
 * below are inferred from them.
 */

/** Logs, results and errors are bounded by the frame itself; the other strings are short. */
const text = z.string().max(MAX_FRAME_BYTES);
const isoTime = z.string().max(64);
const count = z.number().int().nonnegative().max(1_000_000);
export const callNumSchema = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
/** The calls a worker says it holds: a worker holds at most its capacity (1024), with some calls waiting. */
const callNumList = z.array(callNumSchema).max(10_000);
/** A node id becomes part of a routing id and of log lines. */
export const nodeIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'letters, digits and . _ : -, at most 128');


/**
 * A CALL record as it travels between processes. Unknown keys are stripped; numbers are finite
 * (JSON.parse turns 1e999 into Infinity).
 */
/** At most this many invocations in one invokes message. */
export const MAX_INVOKES = 64;
/** At most this many calls in one callsDone message. */
export const MAX_CALLS_DONE = 256;
/** A call whose texts (result, logs, error) pass this many characters is reported alone. */
export const MAX_BATCHED_CALL_CHARS = 64 * 1024;
/** The most text one piece of a followed call's logs carries (a longer increment goes in several). */
export const MAX_LOG_PIECE_CHARS = 256 * 1024;

export const callSchema = z
  .object({
    callNum: callNumSchema,
    funcName: nameSchema,
    params: z.unknown(),
    status: callStatusSchema,
    result: text,
    createdAt: isoTime,
    functionVersion: z.string().max(64).optional(),
    runtimeName: nameSchema.optional(),
    node: z.string().max(128).optional(),
    dispatchedAt: isoTime.optional(),
    startedAt: isoTime.optional(),
    endedAt: isoTime.optional(),
    durationMs: z.number().finite().nonnegative().optional(),
    exitCode: z.number().int().min(-(2 ** 31)).max(2 ** 32).optional(),
    stdout: text.optional(),
    stderr: text.optional(),
    reason: callReasonSchema.optional(),
    error: text.optional(),
    truncated: z.boolean().optional(),
    attempts: z.number().int().min(1).max(10).optional(),
    args: argsSchema.optional(),
    env: envSchema.optional(),
    rerunOf: callNumSchema.optional(),
    trigger: triggerSchema.optional(),
    callbackUrl: z.string().max(2048).optional(),
    async: z.boolean().optional(),
    retryOf: callNumSchema.optional(),
    retryAttempt: z.number().int().min(2).max(11).optional(),
    outputs: z.object({ bytes: z.number().int().nonnegative().finite(), truncated: z.boolean().optional() }).strict().optional(),
    coldStart: z.boolean().optional(),
  })
  // zod makes a field of type unknown optional; a call always has params (null at least).
  .transform((call) => call as typeof call & { params: unknown });

export type WireCall = z.output<typeof callSchema>;
/** true when A and B are the same type. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
// The wire types and the stored records agree, field for field: a field added to one and not to the
// other stops this compiling, instead of being stripped from (or refused in) every frame.
const agrees: [(call: WireCall) => Call, (call: Call) => WireCall, (fn: FunctionRecord) => z.output<typeof functionSchema>] = [(c) => c, (c) => c, (f) => f];
const sameKeys: [Same<keyof Call, keyof WireCall>, Same<keyof FunctionRecord, keyof z.output<typeof functionSchema>>] = [true, true];
void agrees;
void sameKeys;

export const sandboxSchema = z
  .object({
    memoryBytes: z.number().int().positive(),
    nanoCpus: z.number().int().positive(),
    pidsLimit: z.number().int().positive(),
    nofile: z.number().int().positive(),
    tmpfsBytes: z.number().int().nonnegative(),
    user: z.string().min(1).max(64),
    network: z.enum(['none', 'bridge']),
    maxResultBytes: z.number().int().nonnegative(),
    maxLogBytes: z.number().int().nonnegative(),
    outputs: z.boolean(),
    maxOutputBytes: z.number().int().nonnegative(),
  })
  .strict() satisfies z.ZodType<Sandbox>;
const sameSandbox: Same<keyof Sandbox, keyof z.output<typeof sandboxSchema>> = true;
void sameSandbox;

/** What a worker needs to run one call: the call and the records it refers to, as they were at invoke time. */
export const invocationSchema = z.object({
  call: callSchema,
  fn: functionSchema,
  runtime: runtimeSchema,
  /** Set by the api when it sends the call to a worker (ISO 8601); the call's final write records it. */
  dispatchedAt: isoTime.optional(),
});
export type Invocation = z.output<typeof invocationSchema>;

/** A job handed to a miniworker: the invocation plus what the worker decided for it. */
export const jobSchema = invocationSchema.extend({
  image: z.string().min(1).max(512),
  timeoutMs: z.number().int().positive().max(24 * 3600 * 1000),
  sandbox: sandboxSchema,
  /** Handler mode: keep the container for the next call of this function version. */
  keepWarm: z.boolean(),
  /** The function can run in a stem cell of its runtime (its dependencies step changed nothing outside its folder). */
  injectable: z.boolean(),
  /** The package on this node, for putting it into a stem cell. */
  packagePath: z.string().max(4096).optional(),
});
export type Job = z.output<typeof jobSchema>;

export const prewarmSchema = z.object({ fn: functionSchema, runtime: runtimeSchema, image: z.string().min(1).max(512), sandbox: sandboxSchema });
export type Prewarm = z.output<typeof prewarmSchema>;

/** A stem cell: a started container of a handler-mode runtime, without code yet. */
export const stemSchema = z.object({ runtime: runtimeSchema, sandbox: sandboxSchema });
export type Stem = z.output<typeof stemSchema>;

const empty = z.object({}).strip();

/** A piece of a running call's output: what it wrote since the previous piece. */
export const logPieceSchema = z
  .object({ callNum: callNumSchema, stdout: z.string().max(MAX_LOG_PIECE_CHARS).optional(), stderr: z.string().max(MAX_LOG_PIECE_CHARS).optional() })
  .strict();
export type LogPiece = z.output<typeof logPieceSchema>;

export const workerToApiSchemas = {
  /** `inflight`: the calls this worker holds (accepted, not yet reported), so that a restarted api knows their owner. */
  hello: z.object({ nodeId: nodeIdSchema, capacity: z.number().int().min(1).max(1024), pid: z.number().int().nonnegative().max(2 ** 32), inflight: callNumList.optional() }).strict(),
  heartbeat: z
    .object({
      load: count,
      queued: count,
      /** Warm containers on the node, by warm key. */
      warm: warmCountsSchema.optional(),
      inflight: callNumList.optional(),
    })
    .strict(),
  callDone: z.object({ call: callSchema }),
  /** Several calls that ended, small ones (a large one goes alone as callDone): one message when many end at once. */
  callsDone: z.object({ calls: z.array(callSchema).min(1).max(MAX_CALLS_DONE) }),
  /** The worker is stopping: send it nothing more; its calls in flight still end normally. */
  draining: empty,
  /** A call the worker will not run (it is stopping): queue it for another worker. */
  handBack: z.object({ callNum: callNumSchema }).strict(),
  bye: empty,
  /** Calls handed to a miniworker (sent only while the api asks for them, see `watch`). */
  callsStarted: z.object({ calls: z.array(z.object({ callNum: callNumSchema }).strict()).min(1).max(MAX_CALLS_DONE) }).strict(),
  /** What a followed call wrote since the last piece (see `followLogs`). */
  callLogs: logPieceSchema,
};

/**
 * A runtime as a worker takes it: its image must be an image reference, since the worker's requests
 * to Docker carry it in their paths. Records stored by an older version may hold any string.
 */
export const workerRuntimeSchema = runtimeSchema.extend({ image: imageRefSchema });

/** A runtime of a welcome that the worker will not use, and why. */
export interface RefusedRuntime {
  name: string;
  error: string;
}

/** The runtimes of a welcome, each checked on its own: a bad record costs only itself. */
function takeRuntimes(items: unknown[]): { runtimes: Runtime[]; refusedRuntimes?: RefusedRuntime[] } {
  const runtimes: Runtime[] = [];
  const refused: RefusedRuntime[] = [];
  for (const item of items) {
    const parsed = workerRuntimeSchema.safeParse(item);
    if (parsed.success) runtimes.push(parsed.data);
    else {
      const name = (item as { name?: unknown } | null)?.name;
      refused.push({ name: typeof name === 'string' ? name.slice(0, 64) : '?', error: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ').slice(0, 1000) });
    }
  }
  return refused.length > 0 ? { runtimes, refusedRuntimes: refused } : { runtimes };
}

export const apiToWorkerSchemas = {
  welcome: z
    .object({ runtimes: z.array(z.unknown()).max(100_000), functions: z.array(functionSchema).max(1_000_000), heartbeatMs: z.number().int().positive().max(3_600_000) })
    .transform(({ runtimes, ...rest }) => ({ ...rest, ...takeRuntimes(runtimes) })),
  heartbeat: empty,
  /** Sent to a worker the api does not know (after an api restart or an expiry): say hello again. */
  reregister: empty,
  invoke: invocationSchema,
  /** Several invocations for one worker, made in the same turn: one message when many calls come at once. */
  invokes: z.object({ invocations: z.array(invocationSchema).min(1).max(MAX_INVOKES) }),
  runtimeRegistered: z.object({ runtime: workerRuntimeSchema }),
  functionRegistered: z.object({ fn: functionSchema }),
  /** The function was removed: its idle warm containers are stopped. */
  functionRemoved: z.object({ name: nameSchema }),
  /** A secret these functions use changed: their containers holding the old value are retired. */
  secretChanged: z.object({ functions: z.array(nameSchema).max(10_000) }),
  /** What the api wants to hear besides the calls' ends: `callStarts`, a callsStarted per batch of calls handed to miniworkers. */
  watch: z.object({ callStarts: z.boolean() }).strict(),
  /** Send (or stop sending) what this call writes as it writes it, as callLogs. */
  followLogs: z.object({ callNum: callNumSchema, follow: z.boolean() }).strict(),
};

export const miniworkerToWorkerSchemas = {
  ready: z.object({ pid: z.number().int().nonnegative().max(2 ** 32) }),
  /** A call ended; `warm` is the key of the container this miniworker now keeps, if any. */
  /** A call's outcome, for the worker to write: the container is free again when this is sent. */
  done: z.object({ finish: finishCommandSchema, warm: warmKeySchema.nullable() }),
  /** Answer to prewarm and retire. */
  warmed: z.object({ warm: warmKeySchema.nullable(), error: z.string().max(65_536).optional() }),
  /** What the followed call in hand wrote since the last piece. */
  logs: logPieceSchema,
};

export const workerToMiniworkerSchemas = {
  job: jobSchema,
  /** Start (handler mode) a container of this function version and keep it. */
  prewarm: prewarmSchema,
  /** Start a stem cell of this runtime and keep it. */
  stem: stemSchema,
  /** Stop the warm container. */
  retire: empty,
  /** Send (or stop sending) what this call writes while it runs, as logs; taken at once, even during a job. */
  follow: z.object({ callNum: callNumSchema, follow: z.boolean() }).strict(),
};

/** The content type of each message, by msgType. */
export type Contents<S extends Record<string, z.ZodTypeAny>> = { [K in keyof S]: z.output<S[K]> };
export type WorkerToApi = Contents<typeof workerToApiSchemas>;
export type ApiToWorker = Contents<typeof apiToWorkerSchemas>;
export type MiniworkerToWorker = Contents<typeof miniworkerToWorkerSchemas>;
export type WorkerToMiniworker = Contents<typeof workerToMiniworkerSchemas>;

/**
 * The function's own variables (and a call's, over them) as container Env entries; the platform's
 * FAAS_ ones come after them.
 */
export function functionEnv(fn: Pick<FunctionRecord, 'env'>, call?: Pick<Call, 'env'>): string[] {
  return Object.entries({ ...fn.env, ...call?.env }).map(([k, v]) => `${k}=${v}`);
}
