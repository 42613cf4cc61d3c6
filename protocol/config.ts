import { readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * The pieces of the per-process config schemas. Each process describes its environment once, as a
 * zod object of variables built here (each with its default), and parses it at start-up with
 * `parseEnv`: a bad value refuses to start with a message that names the variable and what it
 * accepts. The README's configuration table is checked against these schemas by a test.
 */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/** The default of each variable as the README writes it (undefined: unset). */
const documented = new WeakMap<z.ZodTypeAny, string | undefined>();

/** What the README's table should say for this variable's default; undefined means "unset". */
export function documentedDefault(schema: z.ZodTypeAny): string | undefined {
  return documented.get(schema);
}

/**
 * A variable: unset or empty takes the fallback (a function is asked only when needed), then
 * `inner` checks the string. `doc` is the default as written in the README when it is computed.
 */
function variable<T>(inner: z.ZodType<T, z.ZodTypeDef, string>, fallback: string | (() => string), doc?: string): z.ZodType<T, z.ZodTypeDef, unknown> {
  const schema = z.preprocess((raw) => (raw === undefined || raw === '' ? (typeof fallback === 'function' ? fallback() : fallback) : raw), inner);
  documented.set(schema, doc ?? (typeof fallback === 'string' ? fallback : undefined));
  return schema;
}

/** A variable without a default: unset (or empty) stays undefined, and `doc` says what that means. */
function optionalVariable<T>(inner: z.ZodType<T, z.ZodTypeDef, string>, doc?: string): z.ZodType<T | undefined, z.ZodTypeDef, unknown> {
  const schema = z.preprocess((raw) => (raw === '' ? undefined : raw), inner.optional());
  documented.set(schema, doc);
  return schema;
}

const string = (params: { required_error?: string } = {}) => z.string({ invalid_type_error: 'must be a string', ...params });

/** Free text (a name, a path), with an optional pattern it must match. */
export function text(fallback: string | (() => string), options: { pattern?: RegExp; hint?: string; doc?: string } = {}) {
  const { pattern, hint } = options;
  return variable(pattern ? string().regex(pattern, hint ?? `must match ${pattern.source}`) : string(), fallback, options.doc);
}

/** Text with no default; `doc` is what the README says when it is unset and the process works one out. */
export function optionalText(options: { pattern?: RegExp; hint?: string; doc?: string } = {}) {
  const { pattern, hint } = options;
  return optionalVariable(pattern ? string().regex(pattern, hint ?? `must match ${pattern.source}`) : string(), options.doc);
}

/** Text that must be set (by the parent process, say); `doc` is what the README says of it. */
export function requiredText(doc: string, options: { pattern?: RegExp; hint?: string } = {}) {
  const { pattern, hint } = options;
  const inner = string({ required_error: `is not set (${doc})` });
  const schema = z.preprocess((raw) => (raw === '' ? undefined : raw), pattern ? inner.regex(pattern, hint ?? `must match ${pattern.source}`) : inner);
  documented.set(schema, doc);
  return schema;
}

/** A whole number in a range. */
export function int(fallback: number, range: { min?: number; max?: number } = {}) {
  let number = z.number();
  if (range.min !== undefined) number = number.min(range.min, `must be at least ${range.min}`);
  if (range.max !== undefined) number = number.max(range.max, `must be at most ${range.max}`);
  return variable(
    string()
      .trim()
      .regex(/^-?\d{1,15}$/, 'must be an integer')
      .transform(Number)
      .pipe(number),
    String(fallback),
  );
}

/** A number with up to six decimals, in a range. */
export function decimal(fallback: number, range: { min: number; max: number }) {
  return variable(
    string()
      .trim()
      .regex(/^\d{1,9}(\.\d{1,6})?$/, 'must be a number')
      .transform(Number)
      .pipe(z.number().min(range.min, `must be between ${range.min} and ${range.max}`).max(range.max, `must be between ${range.min} and ${range.max}`)),
    String(fallback),
  );
}

/** A ZeroMQ endpoint. */
export function endpoint(fallback: string) {
  return variable(string().regex(ENDPOINT, ENDPOINT_HINT), fallback);
}

export const ENDPOINT = /^(tcp|ipc|inproc):\/\/.+/;
export const ENDPOINT_HINT = 'must be a ZeroMQ endpoint such as tcp://127.0.0.1:5555';

/** true/1 or false/0. */
export function flag(fallback: boolean) {
  return variable(
    z.enum(['true', '1', 'false', '0'], { errorMap: () => ({ message: 'must be true or false' }) }).transform((raw) => raw === 'true' || raw === '1'),
    String(fallback),
  );
}

/** One of a few words. */
export function oneOf<const T extends readonly [string, ...string[]]>(fallback: T[number], allowed: T) {
  return variable(z.enum(allowed, { errorMap: () => ({ message: `must be one of ${allowed.join(', ')}` }) }), fallback);
}

/** Variables every process reads. */
export const commonEnv = z.object({
  /** pino's level of the JSON logs on stdout. */
  FAAS_LOG_LEVEL: oneOf('info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
});

/**
 * Variables read outside the process schemas, by the module named, with their default as the README
 * writes it (undefined: unset). The README table test counts them as known.
 */
export const envReadElsewhere: Record<string, { readBy: string; default?: string }> = {
  FAAS_CURVE_PUBLIC_KEY: { readBy: 'protocol/curve.ts' },
  FAAS_CURVE_SECRET_KEY: { readBy: 'protocol/curve.ts' },
  FAAS_ALLOW_INSECURE_ZMQ: { readBy: 'protocol/curve.ts', default: 'false' },
  FAAS_CURVE_ALLOWED_KEYS: { readBy: 'protocol/curve.ts' },
  FAAS_CURVE_ALLOWED_KEYS_FILE: { readBy: 'protocol/curve.ts' },
  FAAS_CURVE_CLIENT_PUBLIC_KEY: { readBy: 'protocol/curve.ts' },
  FAAS_CURVE_CLIENT_SECRET_KEY: { readBy: 'protocol/curve.ts' },
  FAAS_BASE_IMAGE: { readBy: 'cli/actions/images.ts' },
  FAAS_API_PUBLISHED: { readBy: 'protocol/config.ts' },
  FAAS_WORKER_PUBLISHED: { readBy: 'protocol/config.ts' },
  FAAS_DB_PUBLISHED: { readBy: 'protocol/config.ts' },
};

/** Values that never appear in an error message. */
const SECRET = /PASSWORD|SECRET|AUTH_USERS$/;

/**
 * Parses `env` with a process's schema; the first problems become one ConfigError naming each
 * variable, what it accepts and what it was given.
 */
export function parseEnv<S extends z.ZodTypeAny>(schema: S, env: Env): z.output<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.slice(0, 5).map((issue) => {
    const name = issue.path.join('.');
    if (!name) return issue.message;
    const raw = env[name];
    const shown = raw === undefined || raw === '' || SECRET.test(name) ? '' : `, got "${raw.length > 100 ? `${raw.slice(0, 100)}…` : raw}"`;
    return `${name} ${issue.message}${shown}`;
  });
  throw new ConfigError(problems.join('; '));
}

/** One boolean variable, for modules that read a single setting outside a process schema. */
export function envBool(env: Env, name: string, fallback: boolean): boolean {
  return parseEnv(z.object({ [name]: flag(fallback) }), env)[name] as boolean;
}

/** Where a process on the same host connects to reach a socket bound at `endpoint` (0.0.0.0 and * become loopback). */
export function localEndpoint(endpoint: string): string {
  return endpoint.replace(/^tcp:\/\/(0\.0\.0\.0|\*|\[::\])(?=:)/, 'tcp://127.0.0.1');
}

/** 127.0.0.0/8, ::1 (bracketed or not) and localhost: addresses only this machine reaches. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * The host addresses of Docker port publications (`-p`, compose `ports`): `127.0.0.1:3000`,
 * `[::1]:3000`, `3000` (every interface), several separated by commas. Undefined when unset.
 */
export function publishedHosts(value: string | undefined): string[] | undefined {
  const specs = (value ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (specs.length === 0) return undefined;
  return specs.map((spec) => {
    const bracketed = /^\[([^\]]+)\]:/.exec(spec);
    if (bracketed) return bracketed[1]!;
    const at = spec.lastIndexOf(':');
    return at > 0 ? spec.slice(0, at) : '0.0.0.0';
  });
}

/**
 * Whether only this machine reaches a socket bound on `bindHost`. In a container the process binds
 * every interface of its own network namespace; what decides is where the engine publishes the port,
 * which the compose file passes in `publishedVar` (FAAS_API_PUBLISHED, FAAS_WORKER_PUBLISHED,
 * FAAS_DB_PUBLISHED). Publishing on every interface is as exposed as binding one.
 */
export function onlyLocal(bindHost: string, env: Env, publishedVar: string): boolean {
  const published = publishedHosts(env[publishedVar]);
  return published ? published.every(isLoopback) : isLoopback(bindHost);
}

/**
 * Variables whose `_FILE` form is a setting of its own, read by their module: the users file, the
 * allow-list file, the secrets key file (made on first start when missing).
 */
const OWN_FILE_SETTINGS = new Set(['FAAS_AUTH_USERS_FILE', 'FAAS_CURVE_ALLOWED_KEYS_FILE', 'FAAS_SECRETS_KEY_FILE']);

/**
 * Docker's convention for secrets: `FAAS_X_FILE=/run/secrets/x` gives FAAS_X the content of that file
 * (trailing line ends dropped), so that no credential has to be written in a compose file or a service's
 * environment. Done once, in `env` itself, before any module reads it; child processes then inherit the
 * values. FAAS_X set as well is refused: which one holds is not guessed. Variables that already read a
 * file of their own (OWN_FILE_SETTINGS) keep their meaning.
 */
export function loadEnvFiles(env: Env = process.env): void {
  for (const name of Object.keys(env)) {
    if (!/^FAAS_[A-Z0-9_]+_FILE$/.test(name) || OWN_FILE_SETTINGS.has(name)) continue;
    const file = env[name];
    if (!file) continue;
    const target = name.slice(0, -'_FILE'.length);
    if (env[target]) throw new ConfigError(`${target} and ${name} are both set: give the value one way`);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`${name}=${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    env[target] = text.replace(/[\r\n]+$/, '');
    delete env[name];
  }
}

/**
 * Runs a process's main, turning a ConfigError into one clear line and exit code 2. Values given as
 * files (loadEnvFiles) are read first.
 */
export function runMain(name: string, main: () => Promise<void>): void {
  Promise.resolve()
    .then(() => {
      loadEnvFiles(process.env);
      return main();
    })
    .catch((err: unknown) => {
      if (err instanceof ConfigError) {
        process.stderr.write(`${name}: bad configuration: ${err.message}\n`);
        process.exit(2);
      }
      process.stderr.write(`${name}: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
}
