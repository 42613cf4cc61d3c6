import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { FunctionRecord } from '../../protocol/types';
import { UsageError, type Context } from '../context';
import { formatTime } from '../output';
import { archiveFor } from './pack';

/** Above this size a person watching gets an upload progress line. */
const PROGRESS_FROM_BYTES = 1024 * 1024;

export interface DeployOptions {
  runtime: string;
  name?: string;
  timeout?: string;
  memory?: string;
  cpus?: string;
  concurrency?: string;
  env: string[];
  arg?: string[];
  outputs?: boolean;
  handler?: string;
  preload?: string;
  idempotent?: boolean;
  public?: boolean;
  secret?: string[];
  retries?: string;
  retryBackoff?: string;
  retryOn?: string;
  retryTimeouts?: boolean;
  network?: boolean;
}

/** "1500ms", "30s", "2m" → milliseconds. A bare number is refused: its unit would be a guess. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text.trim());
  if (!m) throw new UsageError(`${flag} takes a duration with its unit, such as 1500ms, 30s or 2m; got "${text}"`);
  const factor = { ms: 1, s: 1000, m: 60_000 }[m[2] as 'ms' | 's' | 'm'];
  return Math.round(Number(m[1]) * factor);
}

/** "128", "128m", "128Mi", "128MB", "1g", "1Gi" → megabytes. */
export function parseMemory(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(m|mi|mb|g|gi|gb)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`${flag} takes a size such as 128m or 1g; got "${text}"`);
  const giga = /^g/i.test(m[2] ?? '');
  return Math.round(Number(m[1]) * (giga ? 1024 : 1));
}

/** KEY=value pairs, repeatable; the value may hold "=". */
export function parseEnv(pairs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at < 1) throw new UsageError(`--env takes KEY=value, got "${pair}"`);
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return env;
}

/** The multipart fields registerFunction takes beside the package. */
export function deployFields(o: DeployOptions): Record<string, string> {
  const fields: Record<string, string> = {};
  if (o.timeout !== undefined) fields.timeout = String(parseDuration(o.timeout, '--timeout'));
  if (o.memory !== undefined) fields.memory = String(parseMemory(o.memory, '--memory'));
  if (o.cpus !== undefined) fields.cpus = o.cpus;
  if (o.concurrency !== undefined) fields.concurrency = o.concurrency;
  if (o.handler !== undefined) fields.handler = o.handler;
  if (o.preload !== undefined) fields.preload = o.preload;
  if (o.idempotent) fields.idempotent = 'true';
  if (o.public) fields.public = 'true';
  if (o.secret?.length) fields.secrets = JSON.stringify(o.secret);
  if (o.retries !== undefined) {
    if (!/^\d{1,2}$/.test(o.retries)) throw new UsageError(`--retries takes how many more attempts, 1 to 10; got "${o.retries}"`);
    if (o.retryOn !== undefined && o.retryOn !== 'platform' && o.retryOn !== 'any') throw new UsageError('--retry-on is platform (lost nodes, workers, containers) or any (every error)');
    fields.retries = JSON.stringify({
      max: Number(o.retries),
      ...(o.retryBackoff !== undefined ? { backoffMs: parseDuration(o.retryBackoff, '--retry-backoff') } : {}),
      ...(o.retryOn ? { on: o.retryOn } : {}),
      ...(o.retryTimeouts ? { timeouts: true } : {}),
    });
  } else if (o.retryBackoff !== undefined || o.retryOn !== undefined || o.retryTimeouts) {
    throw new UsageError('--retry-backoff, --retry-on and --retry-timeouts go with --retries N');
  }
  if (o.network) fields.network = 'true';
  if (o.env.length > 0) fields.env = JSON.stringify(parseEnv(o.env));
  if (o.arg?.length) fields.args = JSON.stringify(o.arg);
  if (o.outputs) fields.outputs = 'true';
  return fields;
}

/** Packs a folder itself (or takes an archive as it is) and uploads it, with progress for large ones. */
export async function deployFunction(ctx: Context, target: string, o: DeployOptions): Promise<void> {
  const info = await stat(target).catch(() => null);
  if (!info) throw new UsageError(`${target}: no such folder or archive`);
  const fields = deployFields(o);
  const name = o.name ?? path.basename(path.resolve(target)).replace(/\.(tar\.gz|tgz|zip)$/, '').toLowerCase();
  const archive = await archiveFor(target);
  try {
    const size = (await stat(archive)).size;
    const started = Date.now();
    const onProgress =
      size >= PROGRESS_FROM_BYTES
        ? (sent: number, total: number) => ctx.out.progress(`uploading ${name}: ${((100 * sent) / total).toFixed(0)}% of ${(total / 1e6).toFixed(1)} MB`)
        : undefined;
    let fn: FunctionRecord;
    try {
      fn = await ctx.client.registerFunction(o.runtime, name, archive, fields, onProgress);
    } finally {
      ctx.out.endProgress();
    }
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    ctx.out.result(fn, () => `function ${fn.functionName} deployed on ${fn.runtimeName}, version ${fn.version.slice(0, 12)} (${formatBytes(fn.size)}, ${seconds} s)`, () => fn.functionName);
  } finally {
    if (archive !== target) await rm(path.dirname(archive), { recursive: true, force: true });
  }
}

export async function listFunctions(ctx: Context): Promise<void> {
  const fns = (await ctx.client.listFunctions()).sort((a, b) => a.functionName.localeCompare(b.functionName));
  ctx.out.table(
    fns,
    [
      { header: 'NAME', value: (f) => f.functionName },
      { header: 'RUNTIME', value: (f) => f.runtimeName },
      { header: 'VERSION', value: (f) => f.version.slice(0, 12) },
      { header: 'SIZE', value: (f) => formatBytes(f.size) },
      { header: 'LIMITS', value: (f) => limitsText(f) || '-' },
      { header: 'REGISTERED', value: (f) => formatTime(f.registeredAt) },
    ],
    'no functions yet: `faas fn deploy FOLDER --runtime RUNTIME` adds one',
  );
}

export async function showFunction(ctx: Context, name: string): Promise<void> {
  const f = await ctx.client.getFunction(name);
  ctx.out.result(
    f,
    () =>
      [
        `name:        ${f.functionName}`,
        `runtime:     ${f.runtimeName}`,
        `version:     ${f.version}`,
        `package:     ${f.format}, ${formatBytes(f.size)}`,
        `registered:  ${formatTime(f.registeredAt, true)}`,
        ...(f.handler ? [`handler:     ${f.handler}`] : []),
        ...(f.preload ? [`preload:     ${f.preload}`] : []),
        ...(f.idempotent ? ['idempotent:  yes'] : []),
        ...(f.secrets?.length ? [`secrets:     ${f.secrets.join(', ')} (files in /run/secrets)`] : []),
        ...(f.retries ? [`retries:     ${f.retries.max} more, from ${f.retries.backoffMs ?? 1000} ms apart, on ${f.retries.on ?? 'platform'} errors${f.retries.timeouts ? ' and timeouts' : ''}`] : []),
        ...(f.public ? ['public:      yes: /function/' + f.functionName + ' answers without credentials'] : []),
        `limits:      ${limitsText(f) || 'the platform defaults'}`,
        ...(f.env ? [`env:         ${Object.keys(f.env).sort().join(', ')}`] : []),
        ...(f.args ? [`args:        ${JSON.stringify(f.args)}`] : []),
        ...(f.outputs ? ['outputs:     kept (faas outputs N)'] : []),
      ].join('\n'),
    () => f.functionName,
  );
}

export async function removeFunction(ctx: Context, name: string): Promise<void> {
  await ctx.client.removeFunction(name);
  ctx.out.result({ removed: name }, () => `function ${name} removed (its calls are kept)`);
}

export async function listVersions(ctx: Context, name: string): Promise<void> {
  const versions = await ctx.client.functionVersions(name);
  ctx.out.table(
    versions,
    [
      { header: 'VERSION', value: (v) => v.version.slice(0, 12) },
      { header: 'CURRENT', value: (v) => (v.current ? '*' : '') },
      { header: 'SIZE', value: (v) => formatBytes(v.size) },
      { header: 'FORMAT', value: (v) => v.format },
      { header: 'REGISTERED', value: (v) => formatTime(v.registeredAt) },
    ],
    `function ${name} has no recorded versions`,
  );
}

function limitsText(f: FunctionRecord): string {
  const l = f.limits ?? {};
  return [
    l.timeoutMs !== undefined ? `timeout=${l.timeoutMs / 1000}s` : '',
    l.memoryMb !== undefined ? `memory=${l.memoryMb}m` : '',
    l.cpus !== undefined ? `cpus=${l.cpus}` : '',
    l.concurrency !== undefined ? `concurrency=${l.concurrency}` : '',
    l.network ? 'network' : '',
  ]
    .filter(Boolean)
    .join(' ');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
