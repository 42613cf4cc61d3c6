import { z } from 'zod';
import { ERROR_CODES } from '../protocol/errors';
import { isValidName } from '../protocol/names';
import { argsSchema, callPatchSchema, callStatusSchema, envSchema, functionOptionsSchema, functionSchema, invokeInputSchema, runtimeInputSchema, runtimeSchema, triggerSchema, userEnvSchema, cronTriggerInputSchema, cronTriggerSchema, callbackRecordSchema } from '../protocol/schemas';

/**
 * The HTTP api's payloads: what requests are validated with, and what /openapi.json describes.
 * Objects the db-service protocol shares live in protocol/schemas.ts and are re-exported here.
 */
export { functionSchema, invokeInputSchema, runtimeInputSchema, runtimeSchema };

export const MAX_PAGE = 1000;

const isoDate = z
  .string()
  .refine((s) => !Number.isNaN(Date.parse(s)), 'must be a date such as 2026-01-31T12:00:00Z')
  .transform((s) => new Date(s).toISOString());

/** GET /v1/calls query: filters and the page. */
export const callQuerySchema = z
  .object({
    function: z.string().refine(isValidName, 'is not a function name').optional(),
    status: callStatusSchema.optional(),
    since: isoDate.optional(),
    until: isoDate.optional(),
    limit: z
      .string()
      .regex(/^\d{1,4}$/, 'must be a whole number')
      .transform(Number)
      .refine((n) => n >= 1 && n <= MAX_PAGE, `must be between 1 and ${MAX_PAGE}`)
      .optional(),
    cursor: z.string().regex(/^\d{1,15}$/, 'is not a cursor given by this api').transform(Number).optional(),
    /** true: only calls whose retries ran out. */
    deadLetter: z.enum(['true', 'false']).optional(),
  })
  .strict();

/** GET /v1/events query: `types` is checked by the event hub (types or families). */
export const eventQuerySchema = z
  .object({
    types: z.string().max(1000).optional(),
    function: z.string().refine(isValidName, 'is not a function name').optional(),
    /** For clients that cannot set the Last-Event-ID header; the header wins. */
    lastEventId: z.string().max(64).optional(),
  })
  .strict();

/** POST /v1/functions/:name/calls body. */
export const v1InvokeBodySchema = z
  .object({
    params: z.unknown().optional(),
    wait: z.boolean().optional(),
    /** Extra run-command arguments of this call (process mode), after the function's own. */
    args: argsSchema.optional(),
    /** Environment variables of this call, over the function's own. */
    env: userEnvSchema.optional(),
    /** Where the call's final state is POSTed when it ends (or the X-Callback-Url header). */
    callbackUrl: z.string().max(2048).optional(),
  })
  .strict();

/** A CALL as stored and answered. */
export const callSchema = callPatchSchema.extend({
  callNum: z.number().int().positive(),
  funcName: z.string(),
  params: z.unknown(),
  status: callStatusSchema,
  result: z.string(),
  createdAt: z.string(),
  functionVersion: z.string().optional(),
  runtimeName: z.string().optional(),
  args: argsSchema.optional(),
  env: envSchema.optional(),
  rerunOf: z.number().int().positive().optional(),
  trigger: triggerSchema.optional(),
  callbackUrl: z.string().optional(),
  async: z.boolean().optional(),
  retryOf: z.number().int().positive().optional(),
  retryAttempt: z.number().int().optional(),
  /** The deliveries of its callback (GET /v1/calls/:n only). */
  callback: callbackRecordSchema.omit({ callNum: true, url: true }).optional(),
});

/** A CALL as lists show it: without stdout and stderr (GET /v1/calls/:n/logs has them). */
export const listedCallSchema = callSchema.omit({ stdout: true, stderr: true });

/** A page may hold fewer than `limit` calls when they are large (a page stays under a few MiB): follow `next`. */
export const callPageSchema = z.object({ calls: z.array(listedCallSchema), next: z.string().nullable() });

export const callLogsSchema = z.object({
  callNum: z.number().int().positive(),
  status: callStatusSchema,
  stdout: z.string(),
  stderr: z.string(),
  truncated: z.boolean(),
});

export const functionVersionSchema = functionSchema.extend({ current: z.boolean() });

export const errorSchema = z.object({
  error: z.object({ code: z.enum(Object.keys(ERROR_CODES) as [keyof typeof ERROR_CODES, ...(keyof typeof ERROR_CODES)[]]), message: z.string() }),
});

export const workerSchema = z.object({
  nodeId: z.string(),
  routingId: z.string(),
  state: z.enum(['ready', 'draining']),
  capacity: z.number().int(),
  load: z.number().int(),
  queued: z.number().int(),
  warm: z.array(z.object({ function: z.string(), version: z.string(), containers: z.number().int() })),
  stems: z.array(z.object({ runtime: z.string(), containers: z.number().int() })),
  connectedAt: z.string(),
  lastSeen: z.string(),
});

export const healthSchema = z.object({
  status: z.enum(['ok', 'degraded']),
  /** Why the platform is degraded (or what it is doing that users may notice). */
  reasons: z.array(z.string()).optional(),
  db: z.object({
    connected: z.boolean(),
    writable: z.boolean(),
    error: z.string().optional(),
    calls: z.number().optional(),
    lateResults: z.number().optional(),
  }),
  workers: z.object({ connected: z.number().int(), nodes: z.array(z.string()), freeSlots: z.number().int() }),
  queue: z.number().int(),
});
export type Health = z.output<typeof healthSchema>;
export type Worker = z.output<typeof workerSchema>;
export type CallLogs = z.output<typeof callLogsSchema>;
export type FunctionVersion = z.output<typeof functionVersionSchema>;
export type CallPage = z.output<typeof callPageSchema>;
/** A call as the api answers it. */
export type ApiCall = z.output<typeof callSchema>;
/** A cron trigger as given, and as answered (with its next tick). */
export type TriggerInput = z.input<typeof cronTriggerInputSchema>;
export type Trigger = z.output<typeof cronTriggerSchema> & { nextTick?: string };

/**
 * The registerFunction multipart form: the fields the route validates (every one a string, as forms
 * send them), and `module`, the package.
 */
export const registerFunctionFormSchema = functionOptionsSchema.extend({
  module: z.string().describe('the package: a .tar.gz or .zip with the code at its root (binary)'),
});
