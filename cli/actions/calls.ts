import { readFile } from 'node:fs/promises';
import { isFinal, type Call, type CallStatus } from '../../protocol/types';
import { CommandFailed, UsageError, type Context } from '../context';
import { formatTime, paintStatus } from '../output';
import { parseEnv } from './fn';

export interface InvokeOptions {
  param: string[];
  data?: string;
  wait?: boolean;
  async?: boolean;
  /** This call's extra run-command arguments (process mode). */
  arg: string[];
  /** This call's environment variables, KEY=value. */
  env: string[];
  /** Where the call's end is POSTed. */
  callback?: string;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** --data JSON, @file or @- (stdin), then each -p key=value on top. */
export async function invokeParams(o: Pick<InvokeOptions, 'param' | 'data'>): Promise<Record<string, unknown>> {
  let params: Record<string, unknown> = {};
  if (o.data !== undefined) {
    let text = o.data;
    if (text === '@-') text = await readStdin();
    else if (text.startsWith('@')) {
      try {
        text = await readFile(text.slice(1), 'utf8');
      } catch (err) {
        throw new UsageError(`--data ${o.data}: ${(err as Error).message}`);
      }
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new UsageError('--data is not valid JSON');
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError('--data must be a JSON object such as {"roll":"2d6"}');
    params = parsed as Record<string, unknown>;
  }
  for (const pair of o.param) {
    const at = pair.indexOf('=');
    if (at < 1) throw new UsageError(`-p takes key=value, got "${pair}"`);
    params[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return params;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Invokes a function. By default (or with --wait) it waits for the end and prints the result; a call
 * outlasting the platform's wait bound is polled until it ends. With --async it prints the call number.
 */
export async function invoke(ctx: Context, name: string, o: InvokeOptions): Promise<void> {
  const params = await invokeParams(o);
  const extra = { args: o.arg ?? [], env: parseEnv(o.env ?? []), ...(o.callback ? { callbackUrl: o.callback } : {}) };
  await follow(ctx, o, (wait) => ctx.client.invoke(name, params, wait, extra));
}

/** Runs a call again (same function version, params, args and env), waiting for it unless --async. */
export async function rerun(ctx: Context, n: string, o: Pick<InvokeOptions, 'wait' | 'async'>): Promise<void> {
  const callNum = parseCallNum(n);
  await follow(ctx, o, (wait) => ctx.client.rerun(callNum, wait));
}

/** Starts a call; with --async prints its number, else waits for its end and prints the result. */
async function follow(ctx: Context, o: Pick<InvokeOptions, 'wait' | 'async'>, start: (wait: boolean) => Promise<{ call: Call }>): Promise<void> {
  if (o.wait && o.async) throw new UsageError('--wait and --async exclude each other');
  if (o.async) {
    const { call } = await start(false);
    ctx.out.result(call, () => `call ${call.callNum} queued: \`faas call get ${call.callNum}\` shows it`, () => String(call.callNum));
    return;
  }
  const started = Date.now();
  let { call } = await start(true);
  const stopWatching = () => {
    process.stderr.write(`\ncall ${call.callNum} goes on without you: \`faas call get ${call.callNum}\` shows it\n`);
    process.exit(130);
  };
  process.once('SIGINT', stopWatching);
  try {
    for (let delay = 200; !isFinal(call.status); delay = Math.min(delay * 2, 2000)) {
      await sleep(delay);
      call = await ctx.client.getCall(call.callNum);
    }
  } finally {
    process.removeListener('SIGINT', stopWatching);
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(2);
  if (call.status === 'DONE') {
    ctx.out.result(call, () => call.result.replace(/\n$/, ''), () => call.result.replace(/\n$/, ''));
    if (ctx.out.stdoutIsTTY && !ctx.out.mode.json && !ctx.out.mode.quiet) ctx.out.note(ctx.out.color ? `\x1b[2mcall ${call.callNum} DONE in ${seconds} s\x1b[0m` : `call ${call.callNum} DONE in ${seconds} s`);
    return;
  }
  if (ctx.out.mode.json) ctx.out.result(call, () => '');
  else if (call.stdout) ctx.out.write(call.stdout);
  throw new CommandFailed(failureText(call));
}

/**
 * The start of an error (a handler's exception line, an exit code) says what went wrong: it is always
 * kept; past `maxLines` the lines after it are cut from their start (a traceback's outer frames go first).
 */
export function errorExcerpt(error: string, maxLines = 30): string {
  const lines = error.trim().split('\n');
  if (lines.length <= maxLines) return lines.join('\n');
  const rest = lines.slice(1 - maxLines);
  return [lines[0]!, `  … ${lines.length - 1 - rest.length} lines cut (\`faas call get\` shows the whole error)`, ...rest].join('\n');
}

function failureText(call: Call): string {
  const why = call.reason ? ` (${call.reason})` : '';
  const detail = errorExcerpt(call.error ?? '');
  return `call ${call.callNum} ended ${call.status}${why}${detail ? `: ${detail}` : ''}; \`faas logs ${call.callNum}\` shows its output`;
}

export function parseCallNum(text: string): number {
  if (!/^\d{1,15}$/.test(text) || Number(text) < 1) throw new UsageError(`"${text}" is not a call number`);
  return Number(text);
}

export async function showCall(ctx: Context, n: string): Promise<void> {
  const call = await ctx.client.getCall(parseCallNum(n));
  const status = ctx.out.color ? paintStatus(call.status, call.status) : call.status;
  ctx.out.result(
    call,
    () =>
      [
        `call:      ${call.callNum}`,
        `function:  ${call.funcName}${call.functionVersion ? ` @ ${call.functionVersion.slice(0, 12)}` : ''}`,
        `status:    ${status}${call.reason ? ` (${call.reason})` : ''}`,
        `params:    ${JSON.stringify(call.params)}`,
        `created:   ${formatTime(call.createdAt, true)}`,
        ...(call.startedAt ? [`started:   ${formatTime(call.startedAt, true)}`] : []),
        ...(call.endedAt ? [`ended:     ${formatTime(call.endedAt, true)}${call.durationMs !== undefined ? ` (${call.durationMs} ms)` : ''}`] : []),
        ...(call.node ? [`node:      ${call.node}`] : []),
        ...(call.exitCode !== undefined ? [`exit code: ${call.exitCode}`] : []),
        ...(call.error ? [`error:     ${call.error.trim().split('\n').join('\n           ')}`] : []),
        ...(call.rerunOf ? [`rerun of:  ${call.rerunOf}`] : []),
        ...(call.outputs ? [`outputs:   ${call.outputs.truncated ? 'past the size limit, not kept' : `${call.outputs.bytes} bytes: \`faas outputs ${call.callNum}\``}`] : []),
        ...(isFinal(call.status) ? [`result:    ${call.result.replace(/\n$/, '')}`] : []),
      ].join('\n'),
    () => call.status,
  );
}

export interface ListCallsOptions {
  fn?: string;
  status?: string;
  since?: string;
  until?: string;
  limit: string;
  cursor?: string;
  dead?: boolean;
}

const STATUSES: CallStatus[] = ['PENDING', 'RUNNING', 'DONE', 'ERROR', 'TIMEOUT'];

export async function listCalls(ctx: Context, o: ListCallsOptions): Promise<void> {
  const status = o.status?.toUpperCase();
  if (status && !STATUSES.includes(status as CallStatus)) throw new UsageError(`--status is one of ${STATUSES.join(', ').toLowerCase()}`);
  if (!/^\d{1,4}$/.test(o.limit) || Number(o.limit) < 1 || Number(o.limit) > 1000) throw new UsageError('--limit is a number from 1 to 1000');
  const page = await ctx.client.listCalls({
    function: o.fn,
    status: status as CallStatus | undefined,
    since: o.since,
    until: o.until,
    limit: Number(o.limit),
    cursor: o.cursor,
    ...(o.dead ? { deadLetter: true } : {}),
  });
  if (ctx.out.mode.json) return ctx.out.result(page, () => '');
  ctx.out.table(
    page.calls,
    [
      { header: 'CALL', value: (c) => String(c.callNum) },
      { header: 'FUNCTION', value: (c) => c.funcName },
      { header: 'STATUS', value: (c) => c.status + (c.reason && c.status !== 'DONE' ? ` ${c.reason}` : ''), paint: (text, c) => paintStatus(text, c.status) },
      { header: 'CREATED', value: (c) => formatTime(c.createdAt) },
      { header: 'DURATION', value: (c) => (c.durationMs !== undefined ? `${c.durationMs} ms` : '-') },
      { header: 'NODE', value: (c) => c.node ?? '-' },
    ],
    'no calls match',
  );
  if (page.next) ctx.out.note(`more: \`faas calls --cursor ${page.next}${o.fn ? ` --fn ${o.fn}` : ''}${status ? ` --status ${status.toLowerCase()}` : ''}\``);
}

/**
 * Whether what the call printed on stdout became its result (process mode): the runtime says so, or,
 * when it is gone, the call itself (process-mode calls keep no stdout of their own).
 */
async function stdoutIsResult(ctx: Context, call: Call): Promise<boolean> {
  const runtime = call.runtimeName ? await ctx.client.getRuntime(call.runtimeName).catch(() => undefined) : undefined;
  return runtime ? runtime.mode !== 'handler' : call.stdout === undefined;
}

/** The call's stdout on stdout and its stderr on stderr, as the function wrote them. */
export async function showLogs(ctx: Context, n: string): Promise<void> {
  const callNum = parseCallNum(n);
  const logs = await ctx.client.callLogs(callNum);
  if (ctx.out.mode.json) return ctx.out.result(logs, () => '');
  // In process mode a call's stdout is its result, not a log: say so rather than "wrote nothing".
  let intoResult: string | undefined;
  if (!logs.stdout && isFinal(logs.status)) {
    const call = await ctx.client.getCall(callNum);
    if (call.result && (await stdoutIsResult(ctx, call))) intoResult = call.result;
  }
  if (logs.stdout) process.stdout.write(logs.stdout.endsWith('\n') ? logs.stdout : `${logs.stdout}\n`);
  if (logs.stderr) process.stderr.write(logs.stderr.endsWith('\n') ? logs.stderr : `${logs.stderr}\n`);
  if (intoResult !== undefined) {
    const size = Buffer.byteLength(intoResult);
    ctx.out.note(`call ${callNum} printed ${size} byte${size === 1 ? '' : 's'} on stdout, which became its result: \`faas call get ${callNum}\` shows it${logs.stderr ? '' : '; it wrote nothing on stderr'}`);
  } else if (!logs.stdout && !logs.stderr) ctx.out.note(isFinal(logs.status) ? `call ${callNum} wrote nothing` : `call ${callNum} is ${logs.status}; its logs are kept when it ends`);
  if (logs.truncated) ctx.out.note(`(the platform cut these logs at its size limit)`);
}

/** Saves the zip of what call n wrote to /out: to a file (default call-N-outputs.zip) or, with -o -, to stdout. */
export async function saveOutputs(ctx: Context, n: string, o: { output?: string }): Promise<void> {
  const callNum = parseCallNum(n);
  const zip = await ctx.client.outputs(callNum);
  if (o.output === '-') {
    process.stdout.write(zip);
    return;
  }
  const file = o.output ?? `call-${callNum}-outputs.zip`;
  const { writeFile } = await import('node:fs/promises');
  await writeFile(file, zip);
  ctx.out.result({ callNum, file, bytes: zip.length }, () => `saved ${file} (${zip.length} bytes)`, () => file);
}
