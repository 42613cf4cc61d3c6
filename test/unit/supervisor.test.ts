import type { ChildProcess } from 'node:child_process';
import { describeExit, InitError, startChild, type ChildHandle, type ChildOptions } from '../../protocol/supervisor';

/** Resolves when the child writes the line `ready` on stdout. */
function saysReady(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.split('\n').includes('ready')) resolve();
    });
    child.stdout!.once('end', () => reject(new Error('stdout ended')));
  });
}

/** Everything the child wrote on stdout, once it has exited. */
function output(handle: ChildHandle): Promise<string> {
  let text = '';
  handle.child.stdout!.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return handle.exited.then(() => new Promise((resolve) => (handle.child.stdout!.readableEnded ? resolve(text) : handle.child.stdout!.once('end', () => resolve(text)))));
}

const started: ChildHandle[] = [];

function node(code: string, options: Partial<ChildOptions> = {}): ChildHandle {
  const handle = startChild({ command: process.execPath, args: ['-e', code], stdio: ['ignore', 'pipe', 'inherit'], name: 'test child', ...options });
  started.push(handle);
  return handle;
}

/** A child that is up once it has said so; `onTerm` runs on SIGTERM. */
const READY_CHILD = (onTerm: string) => `process.on('SIGTERM', () => { ${onTerm} }); setInterval(() => {}, 1000); console.log('ready');`;

afterEach(async () => {
  await Promise.all(started.splice(0).map((handle) => handle.stop({ signal: 'SIGKILL' })));
});

describe('supervisor', () => {
  test('a child that exits on SIGTERM is gone within the grace, not killed', async () => {
    const handle = node(READY_CHILD('process.exit(0)'), { init: { timeoutMs: 30_000, until: saysReady }, graceMs: 60_000 });
    await handle.ready();
    expect(handle.state).toBe('ready');
    const exit = await handle.stop();
    expect(exit).toEqual({ code: 0, signal: null, forced: false, stopped: true });
    expect(handle.state).toBe('exited');
    expect(handle.alive).toBe(false);
  });

  test('a child that ignores SIGTERM is killed after the grace period', async () => {
    const handle = node(READY_CHILD("console.log('term')"), { init: { timeoutMs: 30_000, until: saysReady }, graceMs: 300 });
    await handle.ready();
    const seen = output(handle);
    const exit = await handle.stop();
    expect(exit).toEqual({ code: null, signal: 'SIGKILL', forced: true, stopped: true });
    expect(describeExit(exit)).toBe('killed by SIGKILL after the grace period');
    expect((await seen).split('\n')).toContain('term');
  });

  test('stopping a child that has already exited resolves at once with how it ended', async () => {
    const handle = node('process.exit(3)');
    const ended = await handle.exited;
    expect(ended).toEqual({ code: 3, signal: null, forced: false, stopped: false });
    expect(await handle.stop()).toBe(ended);
    expect(handle.kill('SIGTERM')).toBe(false);
    expect(describeExit(ended)).toBe('exited with code 3');
  });

  test('stop() twice and concurrently: one SIGTERM, one result, and again after the end', async () => {
    const handle = node(READY_CHILD("console.log('term')"), { init: { timeoutMs: 30_000, until: saysReady }, graceMs: 500 });
    await handle.ready();
    const seen = output(handle);
    const first = handle.stop();
    const second = handle.stop();
    expect(second).toBe(first);
    const [a, b] = await Promise.all([first, second]);
    expect(a).toBe(b);
    expect(a).toMatchObject({ signal: 'SIGKILL', forced: true });
    expect((await seen).split('\n').filter((line) => line === 'term')).toHaveLength(1);
    expect(await handle.stop()).toBe(a);
  });

  test('a second stop that asks for SIGKILL does not wait out the first one’s grace', async () => {
    const handle = node(READY_CHILD(''), { init: { timeoutMs: 30_000, until: saysReady } });
    await handle.ready();
    const gentle = handle.stop({ graceMs: 10 * 60_000 });
    const exit = await handle.stop({ signal: 'SIGKILL' });
    expect(exit).toEqual({ code: null, signal: 'SIGKILL', forced: false, stopped: true });
    expect(await gentle).toBe(exit);
  });

  test('a stopped (SIGSTOP) child still ends on SIGTERM', async () => {
    const handle = node(READY_CHILD('process.exit(7)'), { init: { timeoutMs: 30_000, until: saysReady }, graceMs: 10 * 60_000 });
    await handle.ready();
    expect(handle.kill('SIGSTOP')).toBe(true);
    expect(await handle.stop()).toEqual({ code: 7, signal: null, forced: false, stopped: true });
  });

  test('a child that crashes at start fails its init and is never ready', async () => {
    const handle = node("process.stderr.write('boom\\n'); process.exit(4)", { init: { timeoutMs: 30_000, until: saysReady }, stdio: ['ignore', 'pipe', 'ignore'] });
    await expect(handle.ready()).rejects.toThrow(InitError);
    await expect(handle.ready()).rejects.toThrow('test child exited with code 4 before it was ready');
    expect(await handle.exited).toEqual({ code: 4, signal: null, forced: false, stopped: false });
    handle.markReady();
    expect(handle.state).toBe('exited');
    expect(handle.alive).toBe(false);
  });

  test('a child that never says it is ready is stopped after the init timeout and never reused', async () => {
    const handle = node('setInterval(() => {}, 1000)', { init: { timeoutMs: 300, until: saysReady }, graceMs: 60_000 });
    await expect(handle.ready()).rejects.toThrow('test child did not say it was ready within 300 ms');
    expect(handle.alive).toBe(false);
    handle.markReady();
    expect(handle.state).not.toBe('ready');
    const exit = await handle.exited;
    expect(exit).toEqual({ code: null, signal: 'SIGTERM', forced: false, stopped: true });
    expect(handle.state).toBe('exited');
  });

  test('the owner can complete the handshake; stop() before it rejects ready()', async () => {
    const told = node(READY_CHILD(''), { init: { timeoutMs: 30_000 } });
    expect(told.state).toBe('starting');
    told.markReady();
    await told.ready();
    expect(told.state).toBe('ready');

    const early = node(READY_CHILD('process.exit(0)'), { init: { timeoutMs: 30_000 } });
    const exit = early.stop();
    await expect(early.ready()).rejects.toThrow('test child was stopped before it was ready');
    expect(await exit).toMatchObject({ stopped: true, forced: false });
  });

  test('a program that cannot be started ends with its error, and stop() resolves', async () => {
    const handle = startChild({ command: '/nonexistent/program', stdio: 'ignore', init: { timeoutMs: 30_000 } });
    const exit = await handle.stop();
    expect(exit.error?.message).toMatch(/ENOENT/);
    expect(describeExit(exit)).toMatch(/could not start: .*ENOENT/);
    await expect(handle.ready()).rejects.toThrow(InitError);
  });

  test('a script is forked with an IPC channel', async () => {
    const handle = startChild({ script: '-', stdio: 'ignore' });
    started.push(handle);
    expect(handle.child.connected).toBe(true);
    await handle.stop();
  });
});
