import { z } from 'zod';
import { failCommandSchema, finishCommandSchema, requeueCommandSchema, startCommandSchema } from './call-lifecycle';
import { argsSchema, callbackRecordSchema, callStatusSchema, cronTriggerSchema, envSchema, functionSchema, nameSchema, runtimeSchema, triggerSchema } from './schemas';
import type { Call } from './types';

/** At most this many finish commands travel in one finishCalls request. */
export const MAX_FINISH_BATCH = 256;

/** A new call as the api asks db-service to store it. */
const createCallSchema = z.object({
  funcName: z.string(),
  params: z.unknown(),
  functionVersion: z.string().optional(),
  runtimeName: z.string().optional(),
  /**
   * false: not fsynced before the answer (it survives a crash of db-service, not of the machine).
   * For synchronous calls, whose caller is acknowledged only by the final, synced write.
   */
  durable: z.boolean().optional(),
  rerunOf: z.number().int().positive().optional(),
  args: argsSchema.optional(),
  env: envSchema.optional(),
  trigger: triggerSchema.optional(),
  /** Where the call's end is POSTed: its callback record is written with the call. */
  callbackUrl: z.string().max(2048).optional(),
  async: z.boolean().optional(),
  retryOf: z.number().int().positive().optional(),
  retryAttempt: z.number().int().min(2).max(11).optional(),
});

/** The operations db-service answers, with the schema of each one's `content`. */
export const dbRequestSchemas = {
  ping: z.object({}).passthrough(),
  putRuntime: z.object({ runtime: runtimeSchema }),
  getRuntime: z.object({ name: z.string() }),
  listRuntimes: z.object({}).passthrough(),
  deleteRuntime: z.object({ name: z.string() }),
  putFunction: z.object({ fn: functionSchema }),
  getFunction: z.object({ name: z.string() }),
  listFunctions: z.object({}).passthrough(),
  deleteFunction: z.object({ name: z.string() }),
  listFunctionVersions: z.object({ name: z.string() }),
  getFunctionVersion: z.object({ name: z.string(), version: z.string() }),
  createCall: createCallSchema,
  /** A secret's value, sealed by db-service before it is written; answers what is told of it, never the value. */
  putSecret: z.object({ name: nameSchema, value: z.string().max(64 * 1024) }),
  listSecrets: z.object({}).passthrough(),
  getSecret: z.object({ name: z.string() }),
  deleteSecret: z.object({ name: z.string() }),
  /** The values of the secrets a function uses, for the node that starts its container (workers may ask). */
  getSecretValues: z.object({ names: z.array(z.string()).max(32) }),
  putCallback: z.object({ record: callbackRecordSchema }),
  getCallback: z.object({ callNum: z.number().int().positive() }),
  /** Callbacks not yet delivered nor given up, oldest call first. */
  pendingCallbacks: z.object({ limit: z.number().int().positive().max(10_000).optional() }),
  putTrigger: z.object({ trigger: cronTriggerSchema }),
  getTrigger: z.object({ name: z.string() }),
  listTriggers: z.object({}).passthrough(),
  deleteTrigger: z.object({ name: z.string() }),
  /**
   * A cron trigger's tick: the call is created and the tick recorded as the trigger's last in one write,
   * only when the tick is later than the last one recorded, so that a tick fires one call at most,
   * whoever asks and however often.
   */
  fireTrigger: z.object({ name: z.string(), tick: z.string(), call: createCallSchema }),
  /** createCall under an idempotency key: the same key gives back the call it made the first time. */
  createCallOnce: createCallSchema.extend({ key: z.string().min(1).max(256) }),
  /** The call lifecycle's commands (protocol/call-lifecycle.ts): the only writes of a call after its creation. */
  startCall: startCommandSchema,
  finishCall: finishCommandSchema,
  /**
   * Several finish commands at once, as a worker writes the outcomes its miniworkers report: each is
   * applied as if sent alone (its own answer), and they share one synced write.
   */
  finishCalls: z.object({ commands: z.array(finishCommandSchema).min(1).max(MAX_FINISH_BATCH) }),
  failCall: failCommandSchema,
  requeueCall: requeueCommandSchema,
  /** Calls not yet final, oldest first: for recovery. */
  unfinishedCalls: z.object({ limit: z.number().int().positive().max(100_000).optional() }),
  /** Nodes registered with the api: after an api restart it waits for these before judging their calls. */
  putNode: z.object({ nodeId: z.string().min(1).max(128) }),
  deleteNode: z.object({ nodeId: z.string().min(1).max(128) }),
  listNodes: z.object({}).passthrough(),
  getCall: z.object({ callNum: z.number().int().positive() }),
  /** A call's output files, a zip in base64, written before the call's final state. */
  putOutputs: z.object({ callNum: z.number().int().positive(), zip: z.string().max(14 * 1024 * 1024) }),
  getOutputs: z.object({ callNum: z.number().int().positive() }),
  /**
   * One page of calls, without their logs (a CallPage): at most `limit` (default 1000) and a few MiB
   * of them; `next` is the cursor to pass as beforeCallNum (newest first) or afterCallNum.
   */
  listCalls: z.object({
    afterCallNum: z.number().int().nonnegative().optional(),
    beforeCallNum: z.number().int().positive().optional(),
    newestFirst: z.boolean().optional(),
    limit: z.number().int().positive().max(100_000).optional(),
    status: callStatusSchema.optional(),
    funcName: z.string().optional(),
    /** createdAt bounds, ISO 8601: since inclusive, until exclusive. */
    since: z.string().optional(),
    until: z.string().optional(),
    /** Only calls whose retries ran out (dead letters). */
    deadLetter: z.boolean().optional(),
  }),
  /** A call whose retries ran out: listed with listCalls { deadLetter: true }. */
  putDeadLetter: z.object({ callNum: z.number().int().positive() }),
} as const;

/** A call as lists show it: its logs (stdout, stderr) are left out. */
export type ListedCall = Omit<Call, 'stdout' | 'stderr'>;

/** What listCalls answers. */
export interface CallPage {
  calls: ListedCall[];
  /** The call number to continue from, null on the last page. */
  next: number | null;
}

export type DbMsgType = keyof typeof dbRequestSchemas;
export type DbRequest<K extends DbMsgType> = z.infer<(typeof dbRequestSchemas)[K]>;

export function isDbMsgType(value: string): value is DbMsgType {
  return Object.prototype.hasOwnProperty.call(dbRequestSchemas, value);
}
