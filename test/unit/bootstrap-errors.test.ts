import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { BOOTSTRAP_ENV, MAX_ERROR_CHARS, bootstrapCommand, decodeFrameLine, encodeRequest, type BootstrapFrame, type ResultFrame } from '../../protocol/bootstrap-frames';
import { errorHead, handlerPatch } from '../../miniworker/runner';
import { until } from '../helpers/until';

/**
 * What a failing handler's call says, from both bootstraps run as local processes: the exception
 * line first, then the function's own frames (not the bootstrap's), cut from the oldest frame only
 * when the whole passes the error's size limit.
 */

const ROOT = path.resolve(__dirname, '..', '..');
const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'handlers', 'errors');
const RUNTIMES = [
  { name: 'python', run: `python3 ${path.join(ROOT, 'runtimes', 'python', 'bootstrap', 'handler.py')}`, bootstrapFile: 'handler.py' },
  { name: 'node', run: `node ${path.join(ROOT, 'runtimes', 'node', 'bootstrap', 'handler.js')}`, bootstrapFile: 'handler.js' },
] as const;

class Bootstrap {
  readonly token = randomBytes(12).toString('hex');
  readonly frames: BootstrapFrame[] = [];
  private readonly child: ChildProcess;
  private pending = '';
  private nextId = 1;

  constructor(run: string) {
    const [cmd, ...args] = bootstrapCommand(run);
    const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', PYTHONDONTWRITEBYTECODE: '1', FAAS_FRAME_TOKEN: this.token, FAAS_WORKDIR: FIXTURE };
    for (const pair of BOOTSTRAP_ENV) env[pair.slice(0, pair.indexOf('='))] = pair.slice(pair.indexOf('=') + 1);
    this.child = spawn(cmd!, args, { cwd: FIXTURE, env, stdio: ['pipe', 'pipe', 'ignore'] });
    this.child.stdout!.on('data', (chunk: Buffer) => {
      const lines = (this.pending + chunk.toString('utf8')).split('\n');
      this.pending = lines.pop()!;
      for (const line of lines) {
        const decoded = decodeFrameLine(line, this.token);
        if (decoded.kind === 'frame') this.frames.push(decoded.frame);
      }
    });
    this.child.stdin!.on('error', () => undefined);
  }

  async take(match: (f: BootstrapFrame) => boolean, what: string): Promise<BootstrapFrame> {
    await until(async () => this.frames.some(match), (found) => found, 15_000, what);
    return this.frames.splice(this.frames.findIndex(match), 1)[0]!;
  }

  async load(): Promise<void> {
    await this.take((f) => f.type === 'ready', 'the ready frame');
    this.child.stdin!.write(encodeRequest({ type: 'load', handler: 'handler.handle' }));
    const loaded = await this.take((f) => f.type === 'loaded', 'the loaded frame');
    expect(loaded).not.toHaveProperty('error');
  }

  /** The error of one call that must fail. */
  async error(params: unknown): Promise<string> {
    const id = this.nextId++;
    this.child.stdin!.write(encodeRequest({ type: 'call', id, params: JSON.stringify(params) }));
    const frame = (await this.take((f) => f.type === 'result' && f.id === id, `the result of call ${id}`)) as ResultFrame;
    expect(frame.ok).toBe(false);
    return frame.error!;
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }
}

describe.each(RUNTIMES)('the $name bootstrap: the error of a failing handler', ({ name, run, bootstrapFile }) => {
  let bootstrap: Bootstrap;
  beforeAll(async () => {
    bootstrap = new Bootstrap(run);
    await bootstrap.load();
  });
  afterAll(() => bootstrap?.stop());

  test('starts with the exception line, then the traceback of the function alone', async () => {
    const error = await bootstrap.error({ do: 'nested' });
    const lines = error.split('\n');
    expect(lines[0]).toMatch(name === 'python' ? /^json\.decoder\.JSONDecodeError: Expecting property name/ : /^SyntaxError: .*JSON/);
    if (name === 'python') expect(lines[1]).toBe('Traceback (most recent call last):');
    // The function's frames are there, the bootstrap's are not.
    expect(error).toMatch(name === 'python' ? /File ".*errors\/handler\.py", line \d+, in handle/ : /at (async )?exports\.handle .*errors\/handler\.js/);
    expect(error).toMatch(name === 'python' ? /in parse/ : /at parse /);
    expect(error).not.toContain(`bootstrap/${bootstrapFile}`);
    expect(error.length).toBeLessThanOrEqual(MAX_ERROR_CHARS);
  });

  test('a traceback past the limit loses its oldest frames, never the exception line', async () => {
    const error = await bootstrap.error({ do: 'deep', n: 400, message: 'at the bottom' });
    const lines = error.split('\n');
    expect(lines[0]).toBe(name === 'python' ? 'ValueError: at the bottom' : 'RangeError: at the bottom');
    expect(error.length).toBeLessThanOrEqual(MAX_ERROR_CHARS);
    if (name === 'python') {
      // Most recent call last: the cut is at the start of the traceback, the innermost frame stays.
      expect(lines[2]).toMatch(/^ {2}… \d+ earlier frames cut$/);
      expect(lines[lines.length - 1]).toMatch(/raise ValueError\(message\)|\^+/);
      expect(error).toMatch(/in deep\n\s+raise ValueError\(message\)/);
    } else {
      // Most recent call first, as node prints it: the innermost frame follows the message.
      expect(lines[1]).toMatch(/^\s+at deep /);
    }
  });

  test('the cause of a chained exception is named after the exception line', async () => {
    const error = await bootstrap.error({ do: 'chained' });
    const lines = error.split('\n');
    expect(lines[0]).toBe(name === 'python' ? 'RuntimeError: lookup failed' : 'Error: lookup failed');
    expect(lines[1]).toMatch(name === 'python' ? /^\(raised from KeyError: 'missing'\)$/ : /^\(caused by TypeError: Cannot read properties of undefined/);
  });

  test('a message past half the limit is cut at its end, and the frames still fit', async () => {
    const error = await bootstrap.error({ do: 'long-message', n: 50_000 });
    expect(error.startsWith(name === 'python' ? 'ValueError: mmmm' : 'Error: mmmm')).toBe(true);
    expect(error.length).toBeLessThanOrEqual(MAX_ERROR_CHARS);
    expect(error.split('\n')[0]).toMatch(/m …$/);
    expect(error).toMatch(name === 'python' ? /in handle/ : /exports\.handle/);
  });
});

describe("the miniworker's handling of a handler's error", () => {
  test('within the limit it is kept whole; past it the exception line stays and the rest is cut from its start', () => {
    const error = ['ValueError: at the bottom', 'Traceback (most recent call last):', ...Array.from({ length: 300 }, (_, i) => `  File "/ws/handler.py", line ${i}, in deep`)].join('\n');
    const kept = handlerPatch({ kind: 'error', error, stdout: '', stderr: '', truncated: false, exited: false }, 1000, { maxResultBytes: 1000 });
    expect(kept).toMatchObject({ status: 'ERROR', reason: 'handler_error' });
    expect(kept.error!.length).toBe(4000);
    expect(kept.error!.split('\n')[0]).toBe('ValueError: at the bottom');
    expect(kept.error!.endsWith('line 299, in deep')).toBe(true);
    expect(errorHead('short\nerror', 4000)).toBe('short\nerror');
  });
});
