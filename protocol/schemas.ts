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

/** Extra arguments for a process-mode run command; each is passed as one shell word. */
export const argsSchema = z
  .array(z.string().max(4096, 'an argument is at most 4096 characters').regex(/^[^\0]*$/, 'an argument may not hold NUL'))
  .max(64, 'at most 64 arguments');

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
  handler: z.string().regex(/^[A-Za-z_][A-Za-z0-9_./-]{0,127}$/, 'must look like module.attribute').optional(),
  preload: z.enum(['none', 'runtime', 'function']).optional(),
  idempotent: z.enum(['true', 'false']).optional(),
  /** Keep what each call writes to /out. */
  outputs: z.enum(['true', 'false']).optional(),
  /** A JSON object of environment variables, {"NAME": "value"}. */
  env: jsonField(userEnvSchema, 'must be a JSON object such as {"NAME":"value"}').optional(),
  /** A JSON array of extra arguments for the run command (process mode). */
  args: jsonField(argsSchema, 'must be a JSON array such as ["--verbose"]').optional(),
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
});
