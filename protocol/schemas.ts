import { z } from 'zod';
import { functionLimitsSchema, limitFieldsSchema } from './limits';
import { checkImageRef } from './image-ref';
import { NAME_PATTERN } from './names';

/** Schemas shared by the HTTP api and the db-service protocol; each object is validated where it enters. */
export const nameSchema = z.string().regex(NAME_PATTERN, 'must match ^[a-z0-9][a-z0-9_-]{0,62}$');

export const callStatusSchema = z.enum(['PENDING', 'RUNNING', 'DONE', 'ERROR', 'TIMEOUT']);

/** Why a call ended ERROR or TIMEOUT, when the platform rather than the function decided it. */
export const callReasonSchema = z.enum([
  'exit_code',
  'timeout',
  'dependencies_failed',
  'image_missing',
  'docker_error',
  'worker_lost',
  'node_lost',
  'orchestrator_restart',
  'out_of_memory',
  'handler_error',
  'handler_crashed',
  'load_failed',
  'function_missing',
  'result_too_large',
]);

export const runtimeSchema = z.object({
  name: nameSchema,
  image: z.string().min(1).max(256),
  path: z.string().regex(/^\/[^\0]*$/, 'must be an absolute path').max(256),
  dependencies: z.string().max(4096),
  run: z.string().min(1).max(4096),
  mode: z.enum(['process', 'handler']),
  registeredAt: z.string(),
});

/** What a user sends to registerRuntime: the seed's RUNTIME object, `name` optional. */
export const runtimeInputSchema = z.object({
  name: z.string().optional(),
  image: z.string({ required_error: 'image is required' }).min(1, 'image is required').superRefine(checkImageRef),
  path: z.string({ required_error: 'path is required' }).regex(/^\/[^\0]*$/, 'path must be an absolute path').max(256),
  dependencies: z.string().max(4096).default(''),
  run: z.string({ required_error: 'run is required' }).min(1, 'run is required').max(4096),
  mode: z.enum(['process', 'handler']).default('process'),
});

/** FAAS_ names belong to the platform; a function's own variables may not shadow them. */
export const envSchema = z
  .record(
    z.string().regex(/^(?!FAAS_)[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'names are letters, digits and _, not starting with a digit or FAAS_'),
    z.string().max(4096, 'a value is at most 4096 characters').regex(/^[^\0]*$/, 'a value may not hold NUL'),
  )
  .refine((env) => Object.keys(env).length <= 64, 'at most 64 variables');

/**
 * Variables that change how the dynamic loader, libc, a shell or an interpreter starts, before any
 * code of the function runs: the platform's own bootstraps and the runtime's run command read them.
 * HOME, PATH and TMPDIR are the sandbox's (HOME=/tmp on a read-only root; the run command and the
 * bootstraps find their interpreter on PATH).
 */
const DENIED_ENV = new Set([
  'NODE_OPTIONS', 'NODE_PATH', 'NODE_REPL_EXTERNAL_MODULE', 'NODE_EXTRA_CA_CERTS',
  'PERL5LIB', 'PERL5OPT', 'PERLLIB', 'PERL5DB', 'RUBYOPT', 'RUBYLIB',
  'BASH_ENV', 'ENV', 'SHELLOPTS', 'BASHOPTS', 'PS4', 'IFS', 'CDPATH',
  'JAVA_TOOL_OPTIONS', '_JAVA_OPTIONS', 'JDK_JAVA_OPTIONS', 'CLASSPATH',
  'GCONV_PATH', 'GLIBC_TUNABLES', 'LOCPATH', 'NLSPATH', 'HOSTALIASES', 'RES_OPTIONS', 'LOCALDOMAIN',
  'HOME', 'PATH', 'TMPDIR',
]);
const DENIED_ENV_PREFIXES = ['LD_', 'DYLD_', 'MALLOC_', 'PYTHON', 'BASH_FUNC_'];
/** PYTHON* variables that only set buffering, encoding or hashing. */
const ALLOWED_PYTHON_ENV = new Set(['PYTHONUNBUFFERED', 'PYTHONDONTWRITEBYTECODE', 'PYTHONIOENCODING', 'PYTHONHASHSEED', 'PYTHONUTF8']);

export function deniedEnvName(name: string): boolean {
  const upper = name.toUpperCase();
  if (ALLOWED_PYTHON_ENV.has(upper)) return false;
  return DENIED_ENV.has(upper) || DENIED_ENV_PREFIXES.some((prefix) => upper.startsWith(prefix));
}

/** A function's or a call's env as a user sends it: envSchema, without the loader and interpreter variables. */
export const userEnvSchema = envSchema.superRefine((env, ctx) => {
  const denied = Object.keys(env).filter(deniedEnvName);
  if (denied.length > 0) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message: `${denied.slice(0, 8).join(', ')} may not be set: loader, shell and interpreter variables (LD_*, DYLD_*, NODE_OPTIONS, PYTHON*, PERL5*, RUBY*, BASH_ENV, JAVA_TOOL_OPTIONS, GLIBC_TUNABLES, MALLOC_* and the like) and the sandbox's HOME, PATH and TMPDIR are the platform's`,
    });
  }
});

/**
 * A cron trigger as given at POST /v1/triggers: a schedule of 5 fields (minute hour day month weekday)
 * or 6 (seconds first), in `timezone` (IANA, default UTC), calling `function` with `params` at each tick.
 * `catchUp`: a tick missed while the platform was down fires once when it is back (else it is skipped).
 */
export const cronTriggerInputSchema = z
  .object({
    name: nameSchema,
    schedule: z
      .string()
      .max(200)
      .refine((s) => [5, 6].includes(s.trim().split(/\s+/).length), 'must have 5 fields (minute hour day month weekday), or 6 with seconds first'),
    function: nameSchema,
    params: z.unknown().optional(),
    timezone: z.string().min(1).max(64).optional(),
    catchUp: z.boolean().optional(),
  })
  .strict();

/** A cron trigger as stored: `lastTick` is the last tick it fired (or its creation), written with that tick's call. */
export const cronTriggerSchema = cronTriggerInputSchema.extend({ createdAt: z.string(), lastTick: z.string() });
export type CronTrigger = z.infer<typeof cronTriggerSchema>;

/** A secret as given at POST /v1/secrets; its value never comes back out of any route. */
export const secretInputSchema = z.object({ name: nameSchema, value: z.string().max(64 * 1024, 'a secret is at most 64 KiB') }).strict();
/** What is told of a secret: never its value. */
export const secretInfoSchema = z.object({ name: z.string(), createdAt: z.string(), updatedAt: z.string() });
export type SecretInfo = z.infer<typeof secretInfoSchema>;
/** The secrets a function uses (names), listed at registration. */
export const secretNamesSchema = z.array(nameSchema).max(32, 'at most 32 secrets');

/** One delivery of a call's callback: when, and the HTTP status or the error (no answer, refused...). */
export const callbackAttemptSchema = z.object({ at: z.string(), status: z.number().int().optional(), error: z.string().max(200).optional(), ms: z.number().nonnegative() });
export type CallbackAttempt = z.infer<typeof callbackAttemptSchema>;

/** A call's callback: where its end goes, and how the deliveries went (`failed`: given up after FAAS_CALLBACK_MAX_MS). */
export const callbackRecordSchema = z.object({
  callNum: z.number().int().positive(),
  url: z.string().max(2048),
  /** superseded: the call failed and a retry carries the callback on. */
  state: z.enum(['pending', 'delivered', 'failed', 'superseded']),
  /** The first attempt and the latest ones (at most MAX_KEPT_ATTEMPTS); `tries` counts them all. */
  attempts: z.array(callbackAttemptSchema).max(100),
  tries: z.number().int().nonnegative().optional(),
});
export type CallbackRecord = z.infer<typeof callbackRecordSchema>;

/** What made a call besides the call API: `http` (GET/POST… /function/:name), or `cron:<trigger name>`. */
export const triggerSchema = z.string().regex(/^(?:http|cron:[a-z0-9][a-z0-9_-]{0,62})$/, 'must be http or cron:<trigger name>');

/** Extra arguments for a process-mode run command; each is passed as one shell word. */
export const argsSchema = z
  .array(z.string().max(4096, 'an argument is at most 4096 characters').regex(/^[^\0]*$/, 'an argument may not hold NUL'))
  .max(64, 'at most 64 arguments');

/**
 * Retries of a function's async calls (idempotent functions only): up to `max` more calls, the n-th
 * after backoffMs × 2^(n-1) (± a random half), when a call ends ERROR for a platform reason (its node,
 * worker or container lost), or for a timeout with `timeouts`, or for any error with `on: "any"`.
 */
export const retriesSchema = z
  .object({
    max: z.number().int().min(1).max(10),
    backoffMs: z.number().int().min(100).max(3_600_000).optional(),
    on: z.enum(['platform', 'any']).optional(),
    timeouts: z.boolean().optional(),
  })
  .strict();
export type Retries = z.infer<typeof retriesSchema>;

export const functionSchema = z.object({
  functionName: nameSchema,
  runtimeName: nameSchema,
  version: z.string().regex(/^[a-f0-9]{64}$/),
  size: z.number().int().nonnegative(),
  format: z.enum(['tar.gz', 'zip']),
  registeredAt: z.string(),
  handler: z.string().optional(),
  preload: z.enum(['none', 'runtime', 'function']).optional(),
  idempotent: z.boolean().optional(),
  public: z.boolean().optional(),
  retries: retriesSchema.optional(),
  secrets: secretNamesSchema.optional(),
  limits: functionLimitsSchema.optional(),
  env: envSchema.optional(),
  args: argsSchema.optional(),
  outputs: z.boolean().optional(),
});

/** A multipart field holding JSON: parsed, then checked with `schema`. */
function jsonField<T extends z.ZodTypeAny>(schema: T, notJson: string) {
  return z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: notJson });
        return z.NEVER;
      }
    })
    .pipe(schema);
}

/** Optional fields of the registerFunction multipart form, beside the `module` file. */
export const functionOptionsSchema = z.object({
  handler: z.string().regex(/^[A-Za-z_][A-Za-z0-9_./-]{0,127}$/, 'must look like module.attribute').optional().describe('handler mode: module.attribute, default handler.handle'),
  preload: z.enum(['none', 'runtime', 'function']).optional().describe('what is made ready before the first call: nothing, the image, or warm containers'),
  idempotent: z.enum(['true', 'false']).optional().describe('a call lost with its node may run again'),
  public: z.enum(['true', 'false']).optional().describe('its HTTP endpoint /function/<name> answers without credentials on a platform with users'),
  secrets: jsonField(secretNamesSchema, 'must be a JSON array of secret names such as ["db-password"]')
    .optional()
    .describe('a JSON array of the secrets it uses: each is the file /run/secrets/<name> in its containers'),
  retries: jsonField(retriesSchema, 'must be a JSON object such as {"max": 3, "backoffMs": 1000}')
    .optional()
    .describe('retries of its async calls, for idempotent functions: a JSON object {max, backoffMs, on: "platform" | "any", timeouts}'),
  outputs: z.enum(['true', 'false']).optional().describe('keep what each call writes to /out'),
  env: jsonField(userEnvSchema, 'must be a JSON object such as {"NAME":"value"}')
    .optional()
    .describe('a JSON object of environment variables; FAAS_ names and loader, shell and interpreter variables (LD_*, NODE_OPTIONS, PYTHONPATH...) are refused'),
  args: jsonField(argsSchema, 'must be a JSON array such as ["--verbose"]').optional().describe('a JSON array of extra run-command arguments (process mode)'),
}).merge(limitFieldsSchema);

export const callPatchSchema = z
  .object({
    status: callStatusSchema,
    result: z.string(),
    node: z.string(),
    dispatchedAt: z.string(),
    startedAt: z.string(),
    endedAt: z.string(),
    durationMs: z.number(),
    exitCode: z.number().int(),
    stdout: z.string(),
    stderr: z.string(),
    reason: callReasonSchema,
    error: z.string(),
    truncated: z.boolean(),
    attempts: z.number().int().min(1).max(10),
    coldStart: z.boolean(),
    outputs: z.object({ bytes: z.number().int().nonnegative(), truncated: z.boolean().optional() }).strict(),
  })
  .partial()
  .strict();

export const invokeInputSchema = z.object({
  funcName: z.string({ required_error: 'funcName is required' }),
  params: z.unknown().optional(),
  wait: z.boolean().optional(),
  /** Where the call's final state is POSTed when it ends (or the X-Callback-Url header). */
  callbackUrl: z.string().max(2048).optional(),
});
