import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tarGzOf } from '../helpers/archives';
import { docker, TestPlatform } from '../helpers/platform';

/**
 * Hostile functions on a real worker and a real Docker engine: each case is a tiny function that
 * tries one thing a function must not be able to do, and the call's final record says how it ended.
 */

/** Process mode, as in the seed: params on stdin, the result on stdout. */
const PROC = { name: 'pyproc', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py', mode: 'process' };
/** Handler mode: the function is loaded once and answers many calls. */
const HANDLER = { name: 'pyhandler', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 /opt/faas/handler.py', mode: 'handler' };

async function packageOf(files: Record<string, string>): Promise<Buffer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-hostile-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return tarGzOf(dir);
}

/** A process-mode function whose main.py is `body`, with `json`, `os`, `sys` imported. */
const proc = (body: string) => packageOf({ 'main.py': `import json, os, sys, time\n${body}\n` });
/** A handler-mode function: `body` is the inside of handle(params). */
const handler = (body: string) =>
  packageOf({ 'handler.py': `import json, os, sys, time\n\ndef handle(params):\n${body.replace(/^/gm, '    ')}\n` });

describe('adversarial: hostile functions are contained', () => {
  let platform: TestPlatform;

  const deploy = async (runtime: string, name: string, data: Buffer, fields: Record<string, string> = {}) => {
    const answer = await platform.upload(runtime, name, data, 'package.tar.gz', fields);
    expect([200, 201]).toContain(answer.status);
    return answer.body;
  };
  const call = async (funcName: string, params: unknown = {}) => {
    const answer = await platform.json('POST', '/invokeFunction', { funcName, params });
    expect(answer.status).toBe(202);
    return platform.waitFinal(answer.body.callNum, 120_000);
  };
  const leftovers = async (funcName: string) => (await platform.containers([`io.faas.function=${funcName}`, 'io.faas.role=call'])).length;

  beforeAll(async () => {
    platform = await TestPlatform.start({ env: { FAAS_WORKER_CAPACITY: '3', FAAS_CALL_TIMEOUT_MS: '20000' } });
    expect((await platform.json('POST', '/registerRuntime', PROC)).status).toBe(201);
    expect((await platform.json('POST', '/registerRuntime', HANDLER)).status).toBe(201);
  });
  afterAll(async () => platform?.stop());

  test('an infinite loop ends TIMEOUT at its own timeout, and its container is removed', async () => {
    await deploy('pyproc', 'spin', await proc('while True:\n    pass'), { timeout: '1500' });
    const final = await call('spin');
    expect(final).toMatchObject({ status: 'TIMEOUT', reason: 'timeout' });
    expect(final.error).toContain('1500 ms');
    expect(await leftovers('spin')).toBe(0);
  });

  test('a memory hog ends ERROR out_of_memory under its own memory limit', async () => {
    await deploy('pyproc', 'hog', await proc('blocks = []\nwhile True:\n    blocks.append(bytearray(8 * 1024 * 1024))'), { memory: '64' });
    const final = await call('hog');
    expect(final).toMatchObject({ status: 'ERROR', reason: 'out_of_memory' });
  });

  test('a fork bomb is contained: process creation stops at the pids limit', async () => {
    const body = [
      'forked = 0',
      'for _ in range(1000):',
      '    try:',
      '        pid = os.fork()',
      '    except OSError:',
      '        break',
      '    if pid == 0:',
      '        time.sleep(3)',
      '        os._exit(0)',
      '    forked += 1',
      'print(json.dumps({"forked": forked}))',
      'sys.stdout.flush()',
      'os._exit(0)',
    ].join('\n');
    await deploy('pyproc', 'forker', await proc(body));
    const final = await call('forker');
    expect(final.status).toBe('DONE');
    const { forked } = JSON.parse(final.result);
    expect(forked).toBeGreaterThan(0);
    expect(forked).toBeLessThan(128);
  });

  test('a real fork bomb ends, leaves no container, and the node keeps serving', async () => {
    await deploy('pyproc', 'bomb', await proc('while True:\n    try:\n        os.fork()\n    except OSError:\n        pass'), { timeout: '3000' });
    const final = await call('bomb');
    expect(['TIMEOUT', 'ERROR']).toContain(final.status);
    expect(await leftovers('bomb')).toBe(0);
    await deploy('pyproc', 'after-bomb', await proc('print(json.dumps("alive"))'));
    expect(await call('after-bomb')).toMatchObject({ status: 'DONE', result: '"alive"' });
  });

  test('the function has no network: only a loopback interface, and the host api is out of reach', async () => {
    const port = new URL(platform.url).port;
    const body = [
      'import socket',
      'names = sorted(name for _, name in socket.if_nameindex())',
      'try:',
      `    socket.create_connection(("127.0.0.1", ${port}), timeout=2).close()`,
      '    reached = True',
      'except OSError:',
      '    reached = False',
      'print(json.dumps({"interfaces": names, "reached": reached}))',
    ].join('\n');
    await deploy('pyproc', 'netprobe', await proc(body));
    const final = await call('netprobe');
    expect(final.status).toBe('DONE');
    expect(JSON.parse(final.result)).toEqual({ interfaces: ['lo'], reached: false });
  });

  test('network asked for at registration is refused when the operator has not allowed it', async () => {
    const answer = await platform.upload('pyproc', 'wants-net', await proc('print(1)'), 'package.tar.gz', { network: 'true' });
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('INVALID_LIMITS');
  });

  test('writes to / and to the code folder fail; /tmp is writable and capped', async () => {
    const body = [
      'out = {}',
      'for target in ["/evil", "/ws/evil", "/etc/evil"]:',
      '    try:',
      '        open(target, "w").write("x")',
      '        out[target] = "written"',
      '    except OSError as e:',
      '        out[target] = e.errno',
      'open("/tmp/ok", "w").write("fine")',
      'try:',
      '    with open("/tmp/big", "wb") as f:',
      '        for _ in range(200):',
      '            f.write(b"\\0" * (1024 * 1024))',
      '    out["tmp_big"] = "written"',
      'except OSError as e:',
      '    out["tmp_big"] = e.errno',
      'print(json.dumps(out))',
    ].join('\n');
    await deploy('pyproc', 'writer', await proc(body));
    const final = await call('writer');
    expect(final.status).toBe('DONE');
    const out = JSON.parse(final.result);
    // EROFS (30) or EACCES (13): either way nothing is written.
    for (const target of ['/evil', '/ws/evil', '/etc/evil']) expect([13, 30]).toContain(out[target]);
    expect(out.tmp_big).toBe(28); // ENOSPC: /tmp is a 64 MiB tmpfs
  });

  test('the function runs as a non-root user with no capabilities and cannot gain privileges', async () => {
    const body = [
      'status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)',
      'print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "capeff": status["CapEff"].strip(), "nnp": status.get("NoNewPrivs", "").strip()}))',
    ].join('\n');
    await deploy('pyproc', 'whoami', await proc(body));
    const final = await call('whoami');
    expect(final.status).toBe('DONE');
    const me = JSON.parse(final.result);
    expect(me.uid).not.toBe(0);
    expect(me.gid).not.toBe(0);
    expect(me.capeff).toBe('0000000000000000');
    expect(me.nnp).toBe('1');
  });

  test('the open-files limit holds', async () => {
    const body = ['import resource', 'print(json.dumps(resource.getrlimit(resource.RLIMIT_NOFILE)))'].join('\n');
    await deploy('pyproc', 'nofile', await proc(body));
    const final = await call('nofile');
    expect(JSON.parse(final.result)).toEqual([1024, 1024]);
  });

  test('a stdout flood in handler mode is cut at the log cap, marked, and the call still succeeds', async () => {
    await deploy('pyhandler', 'flood', await handler('for _ in range(60000):\n    print("x" * 99)\nreturn "done"'));
    const final = await call('flood');
    expect(final).toMatchObject({ status: 'DONE', result: '"done"', truncated: true });
    expect(final.stdout.length).toBeLessThan(1024 * 1024 + 100);
    expect(final.stdout.endsWith('[faas: output truncated at 1048576 bytes]\n')).toBe(true);
  });

  test('a stderr flood in process mode is cut at the log cap and marked', async () => {
    await deploy('pyproc', 'errflood', await proc('for _ in range(60000):\n    sys.stderr.write("e" * 99 + "\\n")\nprint(json.dumps("done"))'));
    const final = await call('errflood');
    expect(final).toMatchObject({ status: 'DONE', result: '"done"', truncated: true });
    expect(final.stderr.endsWith('[faas: output truncated at 1048576 bytes]\n')).toBe(true);
  });

  test('a 10 MB result is refused in process mode: ERROR result_too_large', async () => {
    await deploy('pyproc', 'bigout', await proc('sys.stdout.write("x" * (10 * 1024 * 1024))'));
    const final = await call('bigout');
    expect(final).toMatchObject({ status: 'ERROR', reason: 'result_too_large', truncated: true, result: '' });
  });

  test('a 10 MB result is refused in handler mode: ERROR result_too_large, and the next call is served', async () => {
    await deploy('pyhandler', 'bigret', await handler('if params.get("big"):\n    return "x" * (10 * 1024 * 1024)\nreturn "small"'));
    const final = await call('bigret', { big: true });
    expect(final).toMatchObject({ status: 'ERROR', reason: 'result_too_large' });
    expect(await call('bigret', { big: false })).toMatchObject({ status: 'DONE', result: '"small"' });
  });

  test('limits outside the platform maxima are refused at registration', async () => {
    for (const [field, value] of [
      ['timeout', '99999999'],
      ['memory', '999999'],
      ['cpus', '64'],
      ['concurrency', '0'],
    ]) {
      const answer = await platform.upload('pyproc', 'greedy', await proc('print(1)'), 'package.tar.gz', { [field]: value });
      expect({ field, status: answer.status, code: answer.body.error?.code }).toEqual({ field, status: 400, code: 'INVALID_LIMITS' });
    }
    const bad = await platform.upload('pyproc', 'greedy', await proc('print(1)'), 'package.tar.gz', { memory: 'lots' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('BAD_REQUEST');
    expect((await platform.json('GET', '/functions')).body).not.toContain('greedy');
  });

  test('a function with concurrency 1 never runs two calls at once', async () => {
    await deploy('pyproc', 'single', await proc('start = time.time()\ntime.sleep(0.7)\nprint(json.dumps([start, time.time()]))'), { concurrency: '1' });
    const calls = await Promise.all([1, 2, 3].map(() => call('single')));
    const spans = calls.map((c) => JSON.parse(c.result) as [number, number]).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
  });

  test('the containers that ran these calls were made with the sandbox settings', async () => {
    await deploy('pyhandler', 'inspect-me', await handler('return "ok"'));
    expect(await call('inspect-me')).toMatchObject({ status: 'DONE' });
    const [warm] = await platform.containers(['io.faas.function=inspect-me']);
    expect(warm).toBeDefined();
    const info = await docker.getContainer(warm!.Id).inspect();
    expect(info.Config.User).toBe('65534:65534');
    expect(info.HostConfig).toMatchObject({
      NetworkMode: 'none',
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      PidsLimit: 128,
      Memory: 256 * 1024 * 1024,
      MemorySwap: 256 * 1024 * 1024,
      NanoCpus: 1e9,
    });
    expect(info.HostConfig.Tmpfs).toHaveProperty('/tmp');
    expect(info.HostConfig.Ulimits).toEqual([{ Name: 'nofile', Soft: 1024, Hard: 1024 }]);
  });
});
