import os from 'node:os';
import path from 'node:path';
import { FIXTURES, tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

/**
 * Each reason the platform gives for ending a call ERROR on a function's behalf, caused for real and
 * read back over HTTP: the call's status, reason and error, and the containers left (none).
 */
const HANDLERS = path.join(FIXTURES, '..', 'handlers');
const PROCESS = { name: 'pyproc', image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 main.py' };
const HANDLER = { name: 'pyhandler', image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 /opt/faas/handler.py', mode: 'handler' };

async function ended(platform: TestPlatform, funcName: string, params: unknown = {}): Promise<any> {
  const invoked = await platform.json('POST', '/invokeFunction', { funcName, params });
  expect(invoked.status).toBe(202);
  return platform.waitFinal(invoked.body.callNum, 120_000);
}

async function register(platform: TestPlatform, runtime: string, name: string, dir: string, fields: Record<string, string> = {}): Promise<void> {
  const answer = await platform.upload(runtime, name, await tarGzOf(dir), 'package.tar.gz', fields);
  expect({ name, status: answer.status }).toEqual({ name, status: 201 });
}

describe('failure reasons', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    // No network for the dependencies step: nothing a test installs can leave the machine.
    platform = await TestPlatform.start({ env: { FAAS_DEPS_NETWORK: 'none', FAAS_MAX_CPUS: '1024' } });
    for (const runtime of [PROCESS, HANDLER]) expect((await platform.json('POST', '/registerRuntime', runtime)).status).toBe(201);
  });
  afterAll(async () => platform?.stop());

  test('a requirements.txt that cannot be installed ends the call ERROR dependencies_failed, with pip’s words', async () => {
    await register(platform, 'pyproc', 'baddeps', path.join(FIXTURES, 'baddeps'));
    const call = await ended(platform, 'baddeps');
    expect(call).toMatchObject({ status: 'ERROR', reason: 'dependencies_failed' });
    expect(call.error).toContain('the dependencies command exited with code');
    expect(call.error).toContain('faas-no-such-package');
    expect(call.result).toBe('');
    // The build container is gone, and no call container was ever made.
    expect(await platform.containers(['io.faas.role=prepare'])).toEqual([]);
    expect(await platform.containers(['io.faas.function=baddeps'])).toEqual([]);
    // The node does not keep a broken image: a second call fails the same way.
    expect(await ended(platform, 'baddeps')).toMatchObject({ status: 'ERROR', reason: 'dependencies_failed' });
  });

  test('a handler module that raises on import ends the call ERROR load_failed with its traceback; the next call fails the same way', async () => {
    await register(platform, 'pyhandler', 'brokenimport', path.join(HANDLERS, 'broken-import'));
    const call = await ended(platform, 'brokenimport');
    expect(call).toMatchObject({ status: 'ERROR', reason: 'load_failed' });
    expect(`${call.error}\n${call.stderr}`).toContain('broken at import');
    expect(await ended(platform, 'brokenimport')).toMatchObject({ status: 'ERROR', reason: 'load_failed' });
    // A container whose function could not load is not kept warm.
    await until(() => platform.containers(['io.faas.function=brokenimport']), (c) => c.length === 0, 15_000, 'no container of the broken function');
  });

  test('a runtime image that is not here and cannot be pulled ends the call ERROR image_missing', async () => {
    // A registry on the loopback where nothing listens: the pull fails at once and nothing leaves the machine.
    const image = '127.0.0.1:1/none/such:1';
    expect((await platform.json('POST', '/registerRuntime', { ...PROCESS, name: 'gone', image })).status).toBe(201);
    await register(platform, 'gone', 'orphan', path.join(FIXTURES, 'echo'));
    const call = await ended(platform, 'orphan');
    expect(call).toMatchObject({ status: 'ERROR', reason: 'image_missing' });
    expect(call.error).toContain(`runtime image "${image}" is not on node ${platform.env.FAAS_NODE_ID}`);
    expect(await platform.containers(['io.faas.function=orphan'])).toEqual([]);
  });

  test('a container the engine refuses to create ends the call ERROR docker_error, in process and in handler mode', async () => {
    // Docker refuses a CPU quota beyond the host's CPUs when the container is created; the
    // function image (built without the quota) is made as usual.
    const cpus = String(os.cpus().length + 1);
    await register(platform, 'pyproc', 'greedyproc', path.join(FIXTURES, 'echo'), { cpus });
    await register(platform, 'pyhandler', 'greedyhandler', path.join(HANDLERS, 'tricky'), { cpus });
    for (const name of ['greedyproc', 'greedyhandler']) {
      const call = await ended(platform, name);
      expect({ name, status: call.status, reason: call.reason }).toEqual({ name, status: 'ERROR', reason: 'docker_error' });
      expect(call.error).toMatch(/^the container could not run: .*CPU/i);
      expect(await platform.containers([`io.faas.function=${name}`])).toEqual([]);
    }
    // The node is not harmed: an ordinary function still runs.
    await register(platform, 'pyproc', 'echo', path.join(FIXTURES, 'echo'));
    expect(await ended(platform, 'echo', { still: 'fine' })).toMatchObject({ status: 'DONE' });
  });
});

describe('function_missing', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    platform = await TestPlatform.start();
    expect((await platform.json('POST', '/registerRuntime', PROCESS)).status).toBe(201);
  });
  afterAll(async () => platform?.stop());

  test('a PENDING call whose function was removed before it ran ends ERROR function_missing after an api restart', async () => {
    await register(platform, 'pyproc', 'doomed', path.join(FIXTURES, 'echo'));
    await register(platform, 'pyproc', 'kept', path.join(FIXTURES, 'echo'));
    await platform.stopService('worker');
    await until(() => platform.json('GET', '/health'), (h) => h.status === 503, 15_000, 'no worker connected');
    const doomed = (await platform.json('POST', '/invokeFunction', { funcName: 'doomed', params: {} })).body.callNum as number;
    const kept = (await platform.json('POST', '/invokeFunction', { funcName: 'kept', params: {} })).body.callNum as number;
    expect((await platform.json('DELETE', '/v1/functions/doomed')).status).toBe(204);
    expect((await platform.json('GET', `/v1/calls/${doomed}`)).body.status).toBe('PENDING');

    await platform.stopService('api');
    platform.spawn('api');
    platform.spawn('worker');
    await platform.waitHealthy();
    const call = await platform.waitFinal(doomed, 30_000);
    expect(call).toMatchObject({ status: 'ERROR', reason: 'function_missing' });
    expect(call.error).toContain('no longer registered');
    // The other call waiting beside it runs.
    expect(await platform.waitFinal(kept, 60_000)).toMatchObject({ status: 'DONE' });
  });

  test('a call queued behind a concurrency limit when its function is removed still ends: it runs the version it was accepted for, or ends function_missing', async () => {
    await register(platform, 'pyproc', 'limited', path.join(FIXTURES, 'nap'), { concurrency: '1' });
    const first = (await platform.json('POST', '/invokeFunction', { funcName: 'limited', params: { s: 3 } })).body.callNum as number;
    await until(() => platform.json('GET', `/v1/calls/${first}`), (c) => c.body.status === 'RUNNING', 60_000, 'the first call running');
    const queued = (await platform.json('POST', '/invokeFunction', { funcName: 'limited', params: { s: 0 } })).body.callNum as number;
    expect((await platform.json('GET', `/v1/calls/${queued}`)).body.status).toBe('PENDING');
    expect((await platform.json('DELETE', '/v1/functions/limited')).status).toBe(204);
    expect(await platform.waitFinal(first, 60_000)).toMatchObject({ status: 'DONE' });
    const call = await platform.waitFinal(queued, 60_000);
    expect(['DONE', 'ERROR function_missing']).toContain(call.status === 'DONE' ? 'DONE' : `${call.status} ${call.reason}`);
    expect(await platform.containers(['io.faas.function=limited'])).toEqual([]);
  });
});
