import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import type Docker from 'dockerode';
import { ContainerDriver } from '../../miniworker/container-driver';
import { HandlerContainer, HandlerStartError, type HandlerSpec } from '../../miniworker/handler-container';
import type { Sandbox } from '../../protocol/limits';
import { until } from '../helpers/until';

/**
 * The host side (HandlerContainer) with the Docker engine faked at its seam: a "container" is a local
 * process started from the same command and environment, its stdout and stderr handed over as the
 * engine's demultiplexed streams. The bootstraps are the real ones.
 */

const ROOT = path.resolve(__dirname, '..', '..');
const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'handlers', 'conformance');
const RUNS = {
  python: `python3 ${path.join(ROOT, 'runtimes', 'python', 'bootstrap', 'handler.py')}`,
  node: `node ${path.join(ROOT, 'runtimes', 'node', 'bootstrap', 'handler.js')}`,
};

class FakeContainer {
  readonly id = `fake${Math.random().toString(16).slice(2)}`;
  child?: ChildProcess;
  private readonly stdin = new PassThrough();
  private readonly exit: Promise<{ StatusCode: number }>;
  private resolveExit!: (status: { StatusCode: number }) => void;
  private outputs?: { out: Writable; err: Writable };

  constructor(private readonly options: Docker.ContainerCreateOptions) {
    this.exit = new Promise((resolve) => (this.resolveExit = resolve));
  }

  async attach(): Promise<PassThrough> {
    return this.stdin;
  }

  demux(out: Writable, err: Writable): void {
    this.outputs = { out, err };
  }

  async start(): Promise<void> {
    const [cmd, ...args] = this.options.Cmd as string[];
    const env = Object.fromEntries((this.options.Env ?? []).map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]));
    // The engine's bind mount, as a local process sees it: the channel socket at its host path.
    const bind = this.options.HostConfig?.Binds?.[0];
    if (bind && env.FAAS_CHANNEL_SOCKET) {
      const [host, mount] = bind.split(':') as [string, string];
      env.FAAS_CHANNEL_SOCKET = env.FAAS_CHANNEL_SOCKET.replace(mount, host);
    }
    this.child = spawn(cmd!, args, { cwd: this.options.WorkingDir, env: { PATH: process.env.PATH, PYTHONDONTWRITEBYTECODE: '1', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.stdin.pipe(this.child.stdin!);
    this.child.stdin!.on('error', () => undefined);
    this.child.stdout!.on('data', (chunk: Buffer) => this.outputs?.out.write(chunk));
    this.child.stderr!.on('data', (chunk: Buffer) => this.outputs?.err.write(chunk));
    this.child.on('exit', (code, signal) => this.resolveExit({ StatusCode: code ?? (signal ? 137 : 0) }));
  }

  wait(): Promise<{ StatusCode: number }> {
    return this.exit;
  }

  async inspect(): Promise<{ State: { OOMKilled: boolean } }> {
    return { State: { OOMKilled: false } };
  }

  async kill(): Promise<void> {
    this.child?.kill('SIGKILL');
  }
}

function fakeDriver(): { driver: ContainerDriver; containers: FakeContainer[] } {
  const containers: FakeContainer[] = [];
  const docker = {
    createContainer: async (options: Docker.ContainerCreateOptions) => {
      const container = new FakeContainer(options);
      containers.push(container);
      return container;
    },
    getContainer: (id: string) => ({ remove: async () => containers.find((c) => c.id === id)?.kill() }),
    getImage: () => ({ inspect: async () => ({ Id: 'sha256:fake', Config: { Labels: {}, Volumes: null } }) }),
    modem: { demuxStream: (stream: PassThrough, out: Writable, err: Writable) => containers.find((c) => (c as unknown as { stdin: PassThrough }).stdin === stream)!.demux(out, err) },
  };
  return { driver: new ContainerDriver(docker as unknown as Docker), containers };
}

const sandbox: Sandbox = {
  memoryBytes: 256 * 1024 * 1024,
  nanoCpus: 1e9,
  pidsLimit: 64,
  nofile: 1024,
  tmpfsBytes: 64 * 1024 * 1024,
  user: '1000:1000',
  network: 'none',
  maxResultBytes: 10_000,
  maxLogBytes: 10_000,
  outputs: false,
  maxOutputBytes: 0,
};

const spec = (cmd: string, workingDir = FIXTURE, channelDir?: string): HandlerSpec => ({
  image: 'fake',
  cmd,
  workingDir,
  handler: 'handler.handle',
  env: [],
  labels: {},
  sandbox,
  startTimeoutMs: 15_000,
  ...(channelDir ? { channelDir } : {}),
});

/** Each bootstrap over `docker attach`, and with a channel folder: python connects its socket; node stays on attach. */
const CASES = Object.entries(RUNS).flatMap(([runtime, run]) => [
  [runtime, 'attach', run],
  [runtime, 'socket', run],
]) as Array<[string, 'attach' | 'socket', string]>;
const silentLog = { warn: jest.fn() } as unknown as NonNullable<HandlerSpec['log']>;

describe.each(CASES)('the host with the %s bootstrap over %s', (runtime, transport, run) => {
  const { driver, containers } = fakeDriver();
  const channelDir = transport === 'socket' ? mkdtempSync(path.join(os.tmpdir(), 'faas-ch-')) : undefined;
  const specOf = (cmd: string) => spec(cmd, FIXTURE, channelDir);
  let handler: HandlerContainer;
  beforeAll(async () => {
    handler = await HandlerContainer.start(driver, specOf(run));
  });
  afterAll(async () => {
    await handler?.dispose();
    containers.forEach((c) => c.child?.kill('SIGKILL'));
  });

  test('the container runs the bootstrap with frames on fd 3 and fd 1 sent to stderr', () => {
    expect(containers[0]!.child).toBeDefined();
    const options = (containers[0] as unknown as { options: Docker.ContainerCreateOptions }).options;
    expect(options.Cmd).toEqual(['sh', '-c', `exec 3>&1 1>&2; exec ${run}`]);
    expect(options.Env).toContain('FAAS_FRAME_FD=3');
    if (transport === 'attach') {
      expect(options.HostConfig?.Binds).toBeUndefined();
      expect(options.Env?.some((e) => e.startsWith('FAAS_CHANNEL_SOCKET='))).toBe(false);
    } else {
      // A folder of its own, read-only in the container, owned by the sandbox user and closed to others.
      const [bind] = options.HostConfig!.Binds!;
      const [host, mount, mode] = bind!.split(':');
      expect([mount, mode]).toEqual(['/run/faas', 'ro']);
      expect(path.dirname(host!)).toBe(channelDir);
      const info = statSync(host!);
      expect(info.mode & 0o777).toBe(0o700);
      expect(`${info.uid}:${info.gid}`).toBe(sandbox.user);
      expect(options.Env).toContain('FAAS_CHANNEL_SOCKET=/run/faas/channel.sock');
    }
  });

  test('requests and frames travel where the bootstrap reads them: the socket for python, attach for node', () => {
    expect(handler.transport).toBe(transport === 'socket' && runtime === 'python' ? 'socket' : 'attach');
  });

  test('calls end as the host reports them: ok, the partial lines in their logs; errors; too large', async () => {
    expect(await handler.invoke(1, { do: 'echo', say: 'one' }, 10_000)).toEqual({ kind: 'ok', result: '{"echo":"one","calls":1}', stdout: 'call 1 says one\n', stderr: '', truncated: false });
    expect(await handler.invoke(2, { do: 'partial' }, 10_000)).toEqual({ kind: 'ok', result: '"partial"', stdout: 'progress 50%', stderr: 'raw 25%', truncated: false });
    expect(await handler.invoke(3, { do: 'raise' }, 10_000)).toMatchObject({ kind: 'error', error: expect.stringContaining('asked to raise'), exited: false });
    expect(await handler.invoke(4, { do: 'huge-result', n: 20_000 }, 10_000)).toMatchObject({ kind: 'too_large' });
    expect(await handler.invoke(5, { do: 'exit' }, 10_000)).toMatchObject({ kind: 'error', exited: true });
    const deep = await handler.invoke(6, { do: 'depth', nested: JSON.parse(`${'['.repeat(1500)}${']'.repeat(1500)}`) }, 10_000);
    if (runtime === 'python') expect(deep).toMatchObject({ kind: 'error', error: expect.stringMatching(/^params could not be read: nested deeper/), exited: false });
    else expect(deep).toMatchObject({ kind: 'ok', result: '1500' });
    const huge = await handler.invoke(7, { do: 'huge-output', n: 25_000 }, 10_000);
    expect(huge).toMatchObject({ kind: 'ok', truncated: true });
    expect(huge.stdout.startsWith('x'.repeat(10_000))).toBe(true);
    expect(huge.stderr.startsWith('y'.repeat(10_000))).toBe(true);
    expect(handler.droppedFrames).toBe(0);
    expect(handler.alive).toBe(true);
  });

  test('what a call prints is readable while it runs, and whole in its outcome', async () => {
    const running = handler.invoke(20, { do: 'ticks', n: 4, every: 0.3 }, 10_000);
    const live = await until(async () => handler.liveStdout(), (text) => text.startsWith('tick 0\n'), 5000, 'the first tick, live');
    const outcome = await running;
    expect(outcome).toMatchObject({ kind: 'ok', result: '"ticked"', stdout: 'tick 0\ntick 1\ntick 2\ntick 3\n' });
    expect(outcome.stdout.startsWith(live)).toBe(true);
    expect(handler.liveStdout()).toBe('');
    expect(handler.droppedFrames).toBe(0);
  });

  test('a call past its timeout ends TIMEOUT and the container is stopped', async () => {
    const { driver: own, containers: started } = fakeDriver();
    const slow = await HandlerContainer.start(own, specOf(run));
    expect(await slow.invoke(1, { do: 'sleep', seconds: 30 }, 500)).toMatchObject({ kind: 'timeout' });
    expect(slow.alive).toBe(false);
    expect(await started[0]!.wait()).toEqual({ StatusCode: 137 });
  });

  test('a crash ends the call crashed with its exit code and its last words', async () => {
    expect(await handler.invoke(8, { do: 'crash' }, 10_000)).toMatchObject({ kind: 'crashed', exitCode: 7, stderr: 'about to crash\n' });
    expect(handler.alive).toBe(false);
  });

  test('the channel folder goes with its container', async () => {
    await handler.dispose();
    if (channelDir) expect(readdirSync(channelDir)).toEqual([]);
  });
});

describe('a channel folder that cannot be made', () => {
  test('costs the socket, not the container: it speaks over attach', async () => {
    const { driver, containers } = fakeDriver();
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'faas-ch-file-')), 'a-file');
    writeFileSync(file, '');
    const warn = jest.fn();
    const handler = await HandlerContainer.start(driver, { ...spec(RUNS.python, FIXTURE, path.join(file, 'ch')), log: { warn } as unknown as NonNullable<HandlerSpec['log']> });
    try {
      expect(handler.transport).toBe('attach');
      expect(warn).toHaveBeenCalledWith(expect.objectContaining({ dir: path.join(file, 'ch') }), expect.stringMatching(/no channel socket/));
      expect(await handler.invoke(1, { do: 'echo', say: 'still' }, 10_000)).toMatchObject({ kind: 'ok' });
    } finally {
      await handler.dispose();
      containers.forEach((c) => c.child?.kill('SIGKILL'));
    }
  });
});

/** A stand-in bootstrap written for one test: what it writes is the test's. */
function fakeBootstrap(body: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-fake-bootstrap-'));
  const file = path.join(dir, 'bootstrap.js');
  writeFileSync(
    file,
    `const fs = require('node:fs');\nconst token = process.env.FAAS_FRAME_TOKEN;\nconst frame = (text) => fs.writeSync(3, token + ' ' + text + '\\n');\n${body}\nprocess.stdin.resume();\n`,
  );
  return `node ${file}`;
}

describe('the host refuses what a bootstrap should not send', () => {
  const { driver, containers } = fakeDriver();
  afterAll(() => containers.forEach((c) => c.child?.kill('SIGKILL')));

  test('bad, unknown and misshapen frames are counted and dropped; the start goes on', async () => {
    const run = fakeBootstrap(`
      fs.writeSync(3, 'a line without the token\\n');
      frame('{not json');
      frame('{"v":2,"type":"surprise"}');
      frame('{"v":2,"type":"result","id":"seven","ok":true,"stdout":""}');
      frame('{"v":2,"type":"stdout","id":99,"text":"of no call"}');
      frame('{"v":2,"type":"ready","runtime":"fake"}');
      let buffered = '';
      process.stdin.on('data', (chunk) => {
        buffered += chunk;
        for (let nl = buffered.indexOf('\\n'); nl >= 0; nl = buffered.indexOf('\\n')) {
          const request = JSON.parse(buffered.slice(0, nl));
          buffered = buffered.slice(nl + 1);
          if (request.type === 'load') frame('{"v":2,"type":"loaded"}');
          if (request.type === 'call') {
            fs.writeSync(2, token + ':end:' + request.id + '\\n');
            frame(JSON.stringify({ v: 2, type: 'result', id: request.id, ok: true, result: request.params, stdout: '' }));
          }
        }
      });`);
    const handler = await HandlerContainer.start(driver, { ...spec(run), log: silentLog });
    expect(handler.droppedFrames).toBe(5);
    expect(await handler.invoke(1, { echo: [1, 2] }, 5000)).toMatchObject({ kind: 'ok', result: '{"echo":[1,2]}' });
    await handler.dispose();
  });

  test.each([
    ['a ready frame of version 3', `frame('{"v":3,"type":"ready","runtime":"fake"}');`, /speaks protocol version 3, this platform speaks version 2: rebuild the runtime image/],
    ['a ready frame without a version, on fd 1 (as before versioning)', `fs.writeSync(1, token + ' {"op":"ready"}\\n');`, /speaks a protocol from before versioning/],
  ])('%s fails the start with a load error saying so', async (_name, body, message) => {
    const started = HandlerContainer.start(driver, { ...spec(fakeBootstrap(body)), log: silentLog });
    await expect(started).rejects.toThrow(HandlerStartError);
    await expect(started).rejects.toThrow(message);
  });
});
