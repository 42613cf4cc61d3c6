import { z } from 'zod';
import { ERROR_CODES } from '../protocol/errors';
import { isValidName } from '../protocol/names';
import { argsSchema, callPatchSchema, callStatusSchema, envSchema, functionSchema, invokeInputSchema, runtimeInputSchema, runtimeSchema, userEnvSchema } from '../protocol/schemas';

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
  db: z.object({ connected: z.boolean(), error: z.string().optional(), calls: z.number().optional(), lateResults: z.number().optional() }),
  workers: z.object({ connected: z.number().int(), nodes: z.array(z.string()) }),
  queue: z.number().int(),
});

/** The registerFunction multipart form as sent (every field a string); `module` is the package. */
export const registerFunctionFormSchema = z.object({
  module: z.string().describe('the package: a .tar.gz or .zip with the code at its root (binary)'),
  handler: z.string().optional().describe('handler mode: module.attribute, default handler.handle'),
  preload: z.enum(['none', 'runtime', 'function']).optional(),
  idempotent: z.enum(['true', 'false']).optional(),
  outputs: z.enum(['true', 'false']).optional().describe('keep what each call writes to /out'),
  env: z.string().optional().describe('a JSON object of environment variables; FAAS_ names and loader, shell and interpreter variables (LD_*, NODE_OPTIONS, PYTHONPATH...) are refused'),
  args: z.string().optional().describe('a JSON array of extra run-command arguments (process mode)'),
  timeout: z.string().optional().describe('ms'),
  memory: z.string().optional().describe('MB'),
  cpus: z.string().optional(),
  concurrency: z.string().optional(),
  network: z.enum(['true', 'false']).optional(),
});
