import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  BOOTSTRAP_ENV,
  BOOTSTRAP_PROTOCOL_VERSION,
  EndMarkScanner,
  FrameLineReader,
  bootstrapCommand,
  decodeFrameLine,
  encodeRequest,
  versionMismatchMessage,
  type BootstrapFrame,
  type BootstrapRequest,
  type ResultFrame,
} from '../../protocol/bootstrap-frames';
import { until } from '../helpers/until';

/**
 * Both handler-mode bootstraps, run as local processes with the container's descriptors (frames on
 * fd 3 = our stdout, fd 1 and fd 2 = our stderr), read through the host's own frame decoding,
 * against one table of cases.
 */

const ROOT = path.resolve(__dirname, '..', '..');
const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'handlers', 'conformance');
const RUNTIMES = [
  { name: 'python', run: `python3 ${path.join(ROOT, 'runtimes', 'python', 'bootstrap', 'handler.py')}` },
  { name: 'node', run: `node ${path.join(ROOT, 'runtimes', 'node', 'bootstrap', 'handler.js')}` },
] as const;
type RuntimeName = (typeof RUNTIMES)[number]['name'];
const CAPS = { log: 10_000, result: 10_000, params: 100_000 };
const WAIT_MS = 15_000;

/** What the host makes of one call: the result frame, and the stderr that came before its end mark. */
interface CallSeen {
  frame: ResultFrame;
  stderr: string;
}

class LocalBootstrap {
  readonly token = randomBytes(12).toString('hex');
  readonly frames: BootstrapFrame[] = [];
  /** Every frame, in the order it came (frames taken included). */
  readonly arrived: BootstrapFrame[] = [];
  /** Lines of the frame channel the host would drop, with the reason. */
  readonly dropped: string[] = [];
  /** End marks in the order they came, and the log that came before each. */
  readonly marks: number[] = [];
  readonly stderrBefore = new Map<number, string>();
  stderrAll = '';
  private logSinceMark = '';
  exitCode: number | null | undefined;
  private readonly child: ChildProcess;

  constructor(run: string, extraEnv: Record<string, string> = {}, withFrameFd = true, workdir = FIXTURE) {
    const [cmd, ...args] = bootstrapCommand(run);
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      PYTHONDONTWRITEBYTECODE: '1',
      FAAS_FRAME_TOKEN: this.token,
      FAAS_WORKDIR: workdir,
      FAAS_MAX_LOG_BYTES: String(CAPS.log),
      FAAS_MAX_RESULT_BYTES: String(CAPS.result),
      FAAS_MAX_PARAMS_BYTES: String(CAPS.params),
      BASE_VAR: 'base',
      ...extraEnv,
    };
    if (withFrameFd) for (const pair of BOOTSTRAP_ENV) env[pair.slice(0, pair.indexOf('='))] = pair.slice(pair.indexOf('=') + 1);
    this.child = spawn(cmd!, args, { cwd: workdir, env, stdio: ['pipe', 'pipe', 'pipe'] });
    const reader = new FrameLineReader(
      1 << 26,
      (line) => {
        const decoded = decodeFrameLine(line, this.token);
        if (decoded.kind === 'frame') {
          if (decoded.skipped > 0) this.dropped.push(`${decoded.skipped} characters before a frame`);
          this.frames.push(decoded.frame);
          this.arrived.push(decoded.frame);
        } else this.dropped.push(decoded.kind === 'bad' ? decoded.reason : `version ${String(decoded.version)}`);
      },
      () => this.dropped.push('oversized'),
    );
    const scanner = new EndMarkScanner(this.token);
    this.child.stdout!.on('data', (chunk: Buffer) => reader.push(chunk));
    this.child.stderr!.on('data', (chunk: Buffer) => {
      for (const event of scanner.push(chunk)) {
        if ('log' in event) {
          this.logSinceMark += event.log;
          this.stderrAll += event.log;
        } else {
          this.marks.push(event.mark);
          this.stderrBefore.set(event.mark, this.logSinceMark);
          this.logSinceMark = '';
        }
      }
    });
    this.child.on('exit', (code) => (this.exitCode = code));
    this.child.stdin!.on('error', () => undefined);
  }

  sendLine(line: string): void {
    this.child.stdin!.write(line.endsWith('\n') ? line : `${line}\n`);
  }

  send(request: BootstrapRequest): void {
    this.sendLine(encodeRequest(request));
  }

  /** The first frame of this type (and call id) not taken yet. */
  async take<T extends BootstrapFrame['type']>(type: T, id?: number): Promise<Extract<BootstrapFrame, { type: T }>> {
    const match = (f: BootstrapFrame) => f.type === type && (id === undefined || ('id' in f && f.id === id));
    await until(async () => this.frames.some(match), (found) => found, WAIT_MS, `a ${type} frame${id === undefined ? '' : ` for ${id}`}`);
    return this.frames.splice(this.frames.findIndex(match), 1)[0] as Extract<BootstrapFrame, { type: T }>;
  }

  private nextId = 1;
  /** One call as the host makes it; `params` as text is sent as it is. */
  async call(params: unknown, env?: Record<string, string>): Promise<CallSeen> {
    const id = this.nextId++;
    this.send({ type: 'call', id, params: typeof params === 'string' ? params : JSON.stringify(params), ...(env ? { env } : {}) });
    const frame = await this.take('result', id);
    await until(async () => this.stderrBefore.has(id), (has) => has, WAIT_MS, `the end mark of call ${id}`);
    return { frame, stderr: this.stderrBefore.get(id)! };
  }

  async exited(): Promise<number | null> {
    return until(async () => this.exitCode, (code) => code !== undefined, WAIT_MS, 'the bootstrap exiting') as Promise<number | null>;
  }

  stop(): void {
    if (this.exitCode === undefined) this.child.kill('SIGKILL');
  }
}

const nested = (depth: number): unknown => {
  let value: unknown = [];
  for (let i = 1; i < depth; i++) value = [value];
  return value;
};

interface Case {
  name: string;
  params: unknown;
  env?: Record<string, string>;
  /** What the call must show, per runtime where they differ by the language's own rules. */
  expect: (runtime: RuntimeName, seen: CallSeen) => void;
  /** What the host drops from the frame channel meanwhile (nothing unless said). */
  dropped?: string[];
}

const ok = (seen: CallSeen, result: unknown) => {
  expect({ ok: seen.frame.ok, error: seen.frame.error }).toEqual({ ok: true, error: undefined });
  expect(JSON.parse(seen.frame.result!)).toEqual(result);
};
const failed = (seen: CallSeen, error: RegExp) => {
  expect(seen.frame.ok).toBe(false);
  expect(seen.frame.error).toMatch(error);
  expect(seen.frame.result).toBeUndefined();
};

const CASES: Case[] = [
  {
    name: 'a call returns its result and its printed lines',
    params: { do: 'echo', say: 'one' },
    expect: (_r, seen) => {
      ok(seen, { echo: 'one', calls: 1 });
      expect(seen.frame.stdout).toBe('call 1 says one\n');
      expect(seen.stderr).toBe('');
    },
  },
  {
    name: 'a handler that raises ends that call ERROR with its message',
    params: { do: 'raise' },
    expect: (_r, seen) => {
      failed(seen, /asked to raise/);
      expect(seen.frame.exit).toBeUndefined();
    },
  },
  {
    name: 'partial lines: language stdout is captured, fd 1 is the log, and the end mark is found after them',
    params: { do: 'partial' },
    expect: (_r, seen) => {
      ok(seen, 'partial');
      expect(seen.frame.stdout).toBe('progress 50%');
      expect(seen.stderr).toBe('raw 25%');
    },
  },
  {
    name: 'a child process writing a partial line on fd 1 is the log',
    params: { do: 'child' },
    expect: (_r, seen) => {
      ok(seen, 'child');
      expect(seen.stderr).toBe('child 75%');
      expect(seen.frame.stdout).toBe('');
    },
  },
  {
    name: 'a child process does not get the frame descriptor',
    params: { do: 'frame-fd' },
    expect: (_r, seen) => {
      ok(seen, 'frame-fd');
      expect(seen.stderr).not.toContain('forged');
      expect(seen.stderr).toMatch(/3/);
    },
  },
  {
    name: 'the function writing to the frame descriptor itself costs that text only, not the result',
    params: { do: 'frame-write' },
    expect: (_r, seen) => ok(seen, 'frame-write'),
    dropped: ['4 characters before a frame'],
  },
  {
    name: 'binary output arrives as text with U+FFFD for what is not UTF-8',
    params: { do: 'binary' },
    expect: (_r, seen) => {
      ok(seen, 'binary');
      expect(seen.frame.stdout).toBe('\ufffd\ufffd bin \u0000');
      expect(seen.stderr).toBe('\ufffd\u0000err');
    },
  },
  {
    name: 'output past FAAS_MAX_LOG_BYTES is cut and said so; a long unfinished stderr line still ends with the mark',
    params: { do: 'huge-output', n: 25_000 },
    expect: (_r, seen) => {
      ok(seen, 'huge');
      expect(seen.frame.stdout).toBe('x'.repeat(CAPS.log));
      expect(seen.frame.stdoutTruncated).toBe(true);
      expect(seen.stderr).toBe('y'.repeat(25_000));
    },
  },
  {
    name: 'a result past FAAS_MAX_RESULT_BYTES is refused',
    params: { do: 'huge-result', n: 20_000 },
    expect: (_r, seen) => {
      failed(seen, new RegExp(`larger than ${CAPS.result} bytes`));
      expect(seen.frame.tooLarge).toBe(true);
    },
  },
  {
    name: 'params nested 1,500 deep: python cannot parse them and ends the call ERROR; node parses them',
    params: { do: 'depth', nested: nested(1500) },
    expect: (runtime, seen) => {
      if (runtime === 'python') failed(seen, /^params could not be read: nested deeper than the python runtime can parse/);
      else ok(seen, 1500);
    },
  },
  {
    name: 'params that are not JSON end the call ERROR',
    params: '{"do": "echo", oops',
    expect: (_r, seen) => failed(seen, /^params could not be read: not JSON/),
  },
  {
    name: 'params past FAAS_MAX_PARAMS_BYTES end the call ERROR',
    params: { do: 'echo', say: 'a'.repeat(150_000) },
    expect: (_r, seen) => failed(seen, new RegExp(`^params could not be read: \\d+ bytes, past the limit of ${CAPS.params} bytes`)),
  },
  {
    name: 'a result that is not JSON (python: a set; node: a BigInt) ends the call ERROR',
    params: { do: 'not-json' },
    expect: (_r, seen) => failed(seen, /^the result is not JSON: .*(set|BigInt)/),
  },
  {
    name: 'a circular result ends the call ERROR',
    params: { do: 'circular' },
    expect: (_r, seen) => failed(seen, /^the result is not JSON: .*[Cc]ircular/),
  },
  {
    name: 'NaN: python refuses it (it is not JSON); node turns it into null as JSON.stringify does',
    params: { do: 'nan' },
    expect: (runtime, seen) => {
      if (runtime === 'python') failed(seen, /^the result is not JSON: Out of range float/);
      else ok(seen, null);
    },
  },
  {
    name: 'a handler that calls sys.exit / process.exit ends that call ERROR, and the bootstrap goes on',
    params: { do: 'exit' },
    expect: (_r, seen) => {
      failed(seen, /^the function called (sys|process)\.exit\(4\)$/);
      expect(seen.frame.exit).toBe(true);
    },
  },
  {
    name: "a call's env is set for it; the frame token and descriptor are not in the function's env",
    params: { do: 'env' },
    env: { CALL_VAR: 'one', BASE_VAR: 'changed' },
    expect: (_r, seen) => ok(seen, { call: 'one', base: 'changed', protocol: [] }),
  },
  {
    name: "and restored after it: the next call sees the container's own",
    params: { do: 'env' },
    expect: (_r, seen) => ok(seen, { call: null, base: 'base', protocol: [] }),
  },
];

describe.each(RUNTIMES)('the $name bootstrap', ({ name, run }) => {
  let bootstrap: LocalBootstrap;
  beforeAll(async () => {
    bootstrap = new LocalBootstrap(run);
    const ready = await bootstrap.take('ready');
    expect(ready).toMatchObject({ v: BOOTSTRAP_PROTOCOL_VERSION, type: 'ready', runtime: name });
    bootstrap.send({ type: 'load', handler: 'handler.handle' });
    expect(await bootstrap.take('loaded')).toEqual({ v: BOOTSTRAP_PROTOCOL_VERSION, type: 'loaded' });
  });
  afterAll(() => bootstrap?.stop());
  afterEach(() => {
    // Nothing else reached the frame channel but frames.
    expect(bootstrap.dropped).toEqual([]);
  });

  test.each(CASES)('$name; the next call is still served', async ({ params, env, expect: check, dropped }) => {
    check(name, await bootstrap.call(params, env));
    expect(bootstrap.dropped.splice(0)).toEqual(dropped ?? []);
    const next = await bootstrap.call({ do: 'echo', say: 'next' });
    expect(next.frame.ok).toBe(true);
    expect(JSON.parse(next.frame.result!)).toMatchObject({ echo: 'next' });
    expect(bootstrap.exitCode).toBeUndefined();
  });

  test('a call that prints and goes on sends what it printed while it runs, in stdout frames before its result', async () => {
    const seen = await bootstrap.call({ do: 'ticks', n: 4, every: 0.3 });
    ok(seen, 'ticked');
    const ofCall = bootstrap.arrived.filter((f) => 'id' in f && f.id === seen.frame.id);
    const types = ofCall.map((f) => f.type);
    // Prints 300 ms apart, pieces at most every 100 ms: more than one piece, all before the result.
    expect(types.filter((t) => t === 'stdout').length).toBeGreaterThanOrEqual(2);
    expect(types.indexOf('result')).toBe(types.length - 1);
    const pieces = ofCall.flatMap((f) => (f.type === 'stdout' ? [f.text] : []));
    expect(pieces[0]).toMatch(/^tick 0\n/);
    // The pieces are the start of the stdout the result carries whole.
    expect(seen.frame.stdout).toBe('tick 0\ntick 1\ntick 2\ntick 3\n');
    expect(seen.frame.stdout.startsWith(pieces.join(''))).toBe(true);
  });

  test("each call's stderr is its own and the end marks come in call order", async () => {
    const seen: CallSeen[] = [];
    for (let n = 0; n < 5; n++) seen.push(await bootstrap.call({ do: 'stderr', n }));
    expect(seen.map((s) => s.stderr)).toEqual([0, 1, 2, 3, 4].map((n) => `err ${n}\n`));
    expect(seen.map((s) => JSON.parse(s.frame.result!))).toEqual([0, 1, 2, 3, 4]);
    const ids = seen.map((s) => s.frame.id);
    expect(bootstrap.marks.slice(-5)).toEqual(ids);
    expect(bootstrap.marks).toEqual([...bootstrap.marks].sort((a, b) => a - b));
  });

  test('bad request lines are refused with a frame each, and the bootstrap survives them', async () => {
    bootstrap.sendLine('this is not json');
    bootstrap.sendLine(JSON.stringify({ v: 1, type: 'call', id: 900, params: '{}' }));
    bootstrap.sendLine(JSON.stringify({ v: BOOTSTRAP_PROTOCOL_VERSION, type: 'dance' }));
    bootstrap.sendLine(JSON.stringify({ v: BOOTSTRAP_PROTOCOL_VERSION, type: 'call', id: 'x', params: '{}' }));
    bootstrap.sendLine(JSON.stringify({ v: BOOTSTRAP_PROTOCOL_VERSION, type: 'call', id: 901, params: '{}', env: { A: 1 } }));
    bootstrap.sendLine(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);
    const rejected = [];
    for (let i = 0; i < 6; i++) rejected.push(await bootstrap.take('rejected'));
    expect(rejected.map((r) => r.error)).toEqual([
      expect.stringMatching(/not JSON/),
      expect.stringMatching(/protocol version 1 is not 2/),
      expect.stringMatching(/unknown request type/),
      expect.stringMatching(/numeric id/),
      expect.stringMatching(/env is not an object of strings/),
      // python's parser gives up on the depth (not JSON); node parses it and finds an array.
      expect.stringMatching(/not JSON|not an object/),
    ]);
    expect(rejected.map((r) => r.id)).toEqual([undefined, 900, undefined, undefined, 901, undefined]);
    const next = await bootstrap.call({ do: 'echo', say: 'after' });
    expect(JSON.parse(next.frame.result!)).toMatchObject({ echo: 'after' });
  });
});

describe.each(RUNTIMES)('the $name bootstrap, starting', ({ run }) => {
  const started: LocalBootstrap[] = [];
  afterEach(() => started.splice(0).forEach((b) => b.stop()));

  test('a function that cannot be loaded is reported in the loaded frame, then the bootstrap exits 3', async () => {
    const bootstrap = new LocalBootstrap(run);
    started.push(bootstrap);
    await bootstrap.take('ready');
    bootstrap.send({ type: 'load', handler: 'nosuch.handle' });
    const loaded = await bootstrap.take('loaded');
    expect(loaded.error).toMatch(/nosuch/);
    expect(await bootstrap.exited()).toBe(3);
  });

  test('a call before any load ends ERROR and the bootstrap goes on', async () => {
    const bootstrap = new LocalBootstrap(run);
    started.push(bootstrap);
    await bootstrap.take('ready');
    failed(await bootstrap.call({ do: 'echo' }), /no function is loaded/);
    bootstrap.send({ type: 'load', handler: 'handler.handle' });
    await bootstrap.take('loaded');
    expect(JSON.parse((await bootstrap.call({ do: 'echo', say: 'late' })).frame.result!)).toMatchObject({ echo: 'late' });
  });

  test('a stem cell: the function arrives as files, is loaded and serves; a path out of the folder is refused', async () => {
    const workdir = mkdtempSync(path.join(os.tmpdir(), 'faas-stem-'));
    const bootstrap = new LocalBootstrap(run, {}, true, workdir);
    started.push(bootstrap);
    await bootstrap.take('ready');
    bootstrap.send({ type: 'files', files: [{ path: '../escape.py', mode: 0o644, data: '' }] });
    expect((await bootstrap.take('files')).error).toMatch(/refusing to write/);
    const files = ['handler.py', 'handler.js'].map((name) => ({ path: `lib/${name}`, mode: 0o644, data: readFileSync(path.join(FIXTURE, name)).toString('base64') }));
    bootstrap.send({ type: 'files', files: [{ path: 'lib/', mode: 0o755, data: '' }, ...files] });
    expect(await bootstrap.take('files')).toEqual({ v: BOOTSTRAP_PROTOCOL_VERSION, type: 'files' });
    expect(readFileSync(path.join(workdir, 'lib', 'handler.js'), 'utf8')).toBe(readFileSync(path.join(FIXTURE, 'handler.js'), 'utf8'));
    // python names a module, node a file.
    bootstrap.send({ type: 'load', handler: run.startsWith('python') ? 'lib.handler.handle' : 'lib/handler.handle' });
    expect(await bootstrap.take('loaded')).toEqual({ v: BOOTSTRAP_PROTOCOL_VERSION, type: 'loaded' });
    expect(JSON.parse((await bootstrap.call({ do: 'echo', say: 'stem' })).frame.result!)).toEqual({ echo: 'stem', calls: 1 });
  });

  test('without FAAS_FRAME_FD the bootstrap refuses to start, saying why', async () => {
    const bootstrap = new LocalBootstrap(run, {}, false);
    started.push(bootstrap);
    expect(await bootstrap.exited()).toBe(2);
    expect(bootstrap.stderrAll).toContain('FAAS_FRAME_FD is not set');
    expect(bootstrap.frames).toEqual([]);
  });
});

describe('the host side of the frame channel', () => {
  const token = 'tok';
  test('frames are checked: token, JSON, version, schema', () => {
    expect(decodeFrameLine(`tok {"v":${BOOTSTRAP_PROTOCOL_VERSION},"type":"ready","runtime":"python"}`, token)).toEqual({ kind: 'frame', frame: { v: BOOTSTRAP_PROTOCOL_VERSION, type: 'ready', runtime: 'python' }, skipped: 0 });
    expect(decodeFrameLine('progress 50%', token)).toMatchObject({ kind: 'bad', reason: /without the frame token/ });
    // What a function wrote to the frame descriptor without a newline costs itself only.
    expect(decodeFrameLine('progress 50%tok {"v":2,"type":"ready","runtime":"x"}', token)).toEqual({ kind: 'frame', frame: { v: 2, type: 'ready', runtime: 'x' }, skipped: 12 });
    expect(decodeFrameLine('tok {"v":2,', token)).toMatchObject({ kind: 'bad', reason: /not JSON/ });
    expect(decodeFrameLine('tok [1]', token)).toMatchObject({ kind: 'bad', reason: /not an object/ });
    expect(decodeFrameLine('tok {"v":2,"type":"result","id":-1,"ok":true,"result":"1","stdout":""}', token)).toMatchObject({ kind: 'bad', reason: /result frame/ });
    expect(decodeFrameLine('tok {"v":2,"type":"result","id":1,"ok":true,"stdout":""}', token)).toMatchObject({ kind: 'bad', reason: /without a result/ });
    expect(decodeFrameLine('tok {"v":2,"type":"surprise"}', token)).toMatchObject({ kind: 'bad' });
    expect(decodeFrameLine('tok {"v":2,"type":"stdout","id":3,"text":"hi\\n"}', token)).toEqual({ kind: 'frame', frame: { v: 2, type: 'stdout', id: 3, text: 'hi\n' }, skipped: 0 });
    expect(decodeFrameLine('tok {"v":2,"type":"stdout","id":3}', token)).toMatchObject({ kind: 'bad', reason: /stdout frame/ });
    expect(decodeFrameLine('tok {"op":"ready"}', token)).toEqual({ kind: 'version', version: undefined, type: 'ready' });
    expect(decodeFrameLine('tok {"v":3,"type":"ready","runtime":"x"}', token)).toEqual({ kind: 'version', version: 3, type: 'ready' });
    expect(versionMismatchMessage(undefined)).toMatch(/before versioning.*rebuild the runtime image/);
  });

  test('lines are whole across chunks, UTF-8 split mid-character included; an oversized line is dropped and reading resumes', () => {
    const lines: string[] = [];
    let oversized = 0;
    const reader = new FrameLineReader(10, (l) => lines.push(l), () => (oversized += 1));
    const text = Buffer.from('é🙂\nabcdefghijklmnop\nok\n');
    for (let i = 0; i < text.length; i++) reader.push(text.subarray(i, i + 1));
    expect(lines).toEqual(['é🙂', 'ok']);
    expect(oversized).toBe(1);
  });

  test('end marks are found anywhere in a line and across chunks; a garbled mark stays log', () => {
    const scanner = new EndMarkScanner(token);
    const stream = Buffer.from('progress 50%tok:end:7\nerr\ntok:end:x\ntok:end:8\ntail tok:en');
    const events = [];
    for (let i = 0; i < stream.length; i += 3) events.push(...scanner.push(stream.subarray(i, i + 3)));
    const merged: Array<{ log: string } | { mark: number }> = [];
    for (const e of events) {
      const last = merged[merged.length - 1];
      if ('log' in e && last && 'log' in last) last.log += e.log;
      else merged.push({ ...e });
    }
    expect(merged).toEqual([{ log: 'progress 50%' }, { mark: 7 }, { log: 'err\ntok:end:x\n' }, { mark: 8 }, { log: 'tail ' }]);
    expect(scanner.flush()).toBe('tok:en');
  });
});
