/**
 * Helpers for the per-process config modules: every env var is read in one place, with its default,
 * and a bad value refuses to start with a message that names the variable and what it accepts.
 */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

export function envString(env: Env, name: string, fallback: string): string {
  const raw = env[name];
  return raw === undefined || raw === '' ? fallback : raw;
}

export function envInt(env: Env, name: string, fallback: number, range: { min?: number; max?: number } = {}): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be an integer, got "${raw}"`);
  const value = Number(raw);
  if (range.min !== undefined && value < range.min) throw new ConfigError(`${name} must be at least ${range.min}, got ${value}`);
  if (range.max !== undefined && value > range.max) throw new ConfigError(`${name} must be at most ${range.max}, got ${value}`);
  return value;
}

export function envNumber(env: Env, name: string, fallback: number, range: { min: number; max: number }): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d{1,9}(\.\d{1,6})?$/.test(raw.trim())) throw new ConfigError(`${name} must be a number, got "${raw}"`);
  const value = Number(raw);
  if (value < range.min || value > range.max) throw new ConfigError(`${name} must be between ${range.min} and ${range.max}, got ${value}`);
  return value;
}

export function envEndpoint(env: Env, name: string, fallback: string): string {
  const value = envString(env, name, fallback);
  if (!/^(tcp|ipc|inproc):\/\/.+/.test(value)) {
    throw new ConfigError(`${name} must be a ZeroMQ endpoint such as tcp://127.0.0.1:5555, got "${value}"`);
  }
  return value;
}

export function envBool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

/** 127.0.0.0/8, ::1 (bracketed or not) and localhost: addresses only this machine reaches. */
/** Where a process on the same host connects to reach a socket bound at `endpoint` (0.0.0.0 and * become loopback). */
export function localEndpoint(endpoint: string): string {
  return endpoint.replace(/^tcp:\/\/(0\.0\.0\.0|\*|\[::\])(?=:)/, 'tcp://127.0.0.1');
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function envOneOf<T extends string>(env: Env, name: string, fallback: T, allowed: readonly T[]): T {
  const value = envString(env, name, fallback);
  if (!(allowed as readonly string[]).includes(value)) throw new ConfigError(`${name} must be one of ${allowed.join(', ')}, got "${value}"`);
  return value as T;
}

/** Runs a process's main, turning a ConfigError into one clear line and exit code 2. */
export function runMain(name: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`${name}: bad configuration: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`${name}: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
