import path from 'node:path';
import { DICE, FIXTURES, tarGzOf, zipOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';

const SEED_RUNTIME = { image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 test.py' };
const FIXTURE_RUNTIME = { name: 'pyfixture', image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 main.py' };

function expectDiceResult(result: string): void {
  const dice = JSON.parse(result);
  expect(dice).toHaveLength(4);
  for (const d of dice) {
    expect(Number.isInteger(d)).toBe(true);
    expect(d).toBeGreaterThanOrEqual(1);
    expect(d).toBeLessThanOrEqual(6);
  }
}

describe('the seed HTTP calls, end to end on the real processes', () => {
  let platform: TestPlatform;

  beforeAll(async () => {
    platform = await TestPlatform.start({ env: { FAAS_CALL_TIMEOUT_MS: '5000' } });
  });

  afterAll(async () => {
    const left = platform ? await platform.containers() : [];
    await platform?.stop();
    // Checked after stopping too: the worker removes what it made.
    expect(left.filter((c) => c.State === 'running' && c.Labels['io.faas.role'] === 'call')).toEqual([]);
  });

  test('registerRuntime, registerFunction (.tar.gz), invokeFunction, poll until DONE, list', async () => {
    const rt = await platform.json('POST', '/registerRuntime', SEED_RUNTIME);
    expect(rt.status).toBe(201);
    expect(rt.body).toMatchObject({ ...SEED_RUNTIME, name: 'pythonruntime' });

    const fn = await platform.upload('pythonruntime', 'dice', await tarGzOf(DICE), 'python.tar.gz');
    expect(fn.status).toBe(201);
    expect(fn.body).toMatchObject({ functionName: 'dice', runtimeName: 'pythonruntime', format: 'tar.gz' });
    expect(fn.body).not.toHaveProperty('fieldname');
    expect(fn.body).not.toHaveProperty('originalname');
    expect(fn.body.version).toMatch(/^[a-f0-9]{64}$/);

    const invoked = await platform.json('POST', '/invokeFunction', { funcName: 'dice', params: { roll: '4d6' } });
    expect(invoked.status).toBe(202);
    expect(invoked.body).toMatchObject({ funcName: 'dice', params: { roll: '4d6' }, status: 'PENDING', result: '' });
    const callNum = invoked.body.callNum;
    expect(Number.isInteger(callNum)).toBe(true);

    const call = await platform.waitFinal(callNum);
    expect(call.status).toBe('DONE');
    expectDiceResult(call.result);
    expect(call.startedAt <= call.endedAt).toBe(true);
    expect(call.durationMs).toBeGreaterThanOrEqual(0);

    expect((await platform.json('GET', '/runtimes')).body).toEqual(['pythonruntime']);
    expect((await platform.json('GET', '/functions')).body).toEqual(['dice']);
    const calls = (await platform.json('GET', '/calls')).body;
    expect(calls[`c${callNum}`]).toMatchObject({ callNum, status: 'DONE', funcName: 'dice' });
    expect((await platform.json('GET', `/call/${callNum}`)).body.result).toBe(call.result);
  });

  test('the same function uploaded as a .zip runs the same', async () => {
    const fn = await platform.upload('pythonruntime', 'dicezip', await zipOf(DICE), 'dice.zip');
    expect(fn.status).toBe(201);
    expect(fn.body.format).toBe('zip');
    const invoked = await platform.json('POST', '/invokeFunction', { funcName: 'dicezip', params: { roll: '4d6' } });
    expect(invoked.status).toBe(202);
    const call = await platform.waitFinal(invoked.body.callNum);
    expect(call.status).toBe('DONE');
    expectDiceResult(call.result);
  });

  test('the params arrive on stdin and in FAAS_PARAMS; a synchronous call answers with the final call', async () => {
    expect((await platform.json('POST', '/registerRuntime', FIXTURE_RUNTIME)).status).toBe(201);
    expect((await platform.upload('pyfixture', 'echo', await tarGzOf(path.join(FIXTURES, 'echo')))).status).toBe(201);
    const params = { text: 'héllo', n: [1, 2, 3] };
    const sync = await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'echo', params });
    expect(sync.status).toBe(200);
    expect(sync.body.status).toBe('DONE');
    expect(JSON.parse(sync.body.result)).toEqual({ params, env: params });
    expect(sync.body.stderr).toContain('echo to stderr');

    const viaBody = await platform.json('POST', '/invokeFunction', { funcName: 'echo', params: { a: 1 }, wait: true });
    expect(viaBody.status).toBe(200);
    expect(JSON.parse(viaBody.body.result).params).toEqual({ a: 1 });
  });

  test('a function that exits non-zero ends ERROR with its exit code and stderr', async () => {
    expect((await platform.upload('pyfixture', 'fail', await tarGzOf(path.join(FIXTURES, 'fail')))).status).toBe(201);
    const invoked = await platform.json('POST', '/invokeFunction', { funcName: 'fail', params: {} });
    const call = await platform.waitFinal(invoked.body.callNum);
    expect(call.status).toBe('ERROR');
    expect(call.exitCode).toBe(3);
    expect(call.reason).toBe('exit_code');
    expect(call.stderr).toContain('something went wrong in the function');
    expect(call.error).toContain('something went wrong in the function');
  });

  test('a function that sleeps past the timeout ends TIMEOUT and its container is gone', async () => {
    expect((await platform.upload('pyfixture', 'slow', await tarGzOf(path.join(FIXTURES, 'slow')))).status).toBe(201);
    const invoked = await platform.json('POST', '/invokeFunction', { funcName: 'slow', params: {} });
    const callNum = invoked.body.callNum;
    const call = await platform.waitFinal(callNum);
    expect(call.status).toBe('TIMEOUT');
    expect(call.reason).toBe('timeout');
    expect(call.durationMs).toBeGreaterThanOrEqual(5000);
    expect(await platform.containers([`io.faas.call=${callNum}`])).toEqual([]);
  });

  test('a synchronous call past the wait bound answers 202 with the call number', async () => {
    // A platform of its own, with a wait bound shorter than its call timeout.
    const other = await TestPlatform.start({ env: { FAAS_WAIT_TIMEOUT_MS: '1500', FAAS_CALL_TIMEOUT_MS: '4000' } });
    try {
      await other.json('POST', '/registerRuntime', FIXTURE_RUNTIME);
      await other.upload('pyfixture', 'slow', await tarGzOf(path.join(FIXTURES, 'slow')));
      const sync = await other.json('POST', '/invokeFunction?wait=true', { funcName: 'slow', params: {} });
      expect(sync.status).toBe(202);
      expect(['PENDING', 'RUNNING']).toContain(sync.body.status);
      expect(Number.isInteger(sync.body.callNum)).toBe(true);
      expect((await other.waitFinal(sync.body.callNum)).status).toBe('TIMEOUT');
    } finally {
      await other.stop();
    }
  });

  test('unknown runtime, function or call is 404; malformed JSON and bad names are 400; all as JSON errors', async () => {
    const noRuntime = await platform.upload('nosuchruntime', 'x', await tarGzOf(DICE));
    expect(noRuntime.status).toBe(404);
    expect(noRuntime.body.error.code).toBe('RUNTIME_NOT_FOUND');

    const noFunction = await platform.json('POST', '/invokeFunction', { funcName: 'nosuchfunction', params: {} });
    expect(noFunction.status).toBe(404);
    expect(noFunction.body).toEqual({ error: { code: 'FUNCTION_NOT_FOUND', message: expect.any(String) } });

    const noCall = await platform.json('GET', '/call/999999');
    expect(noCall.status).toBe(404);
    expect(noCall.body.error.code).toBe('CALL_NOT_FOUND');

    const malformed = await platform.json('POST', '/invokeFunction', '{"funcName": "dice",');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.code).toBe('INVALID_JSON');

    const malformedRuntime = await platform.json('POST', '/registerRuntime', '{nope');
    expect(malformedRuntime.status).toBe(400);
    expect(malformedRuntime.body.error.code).toBe('INVALID_JSON');

    const missingField = await platform.json('POST', '/registerRuntime', { image: 'pythonruntime' });
    expect(missingField.status).toBe(400);
    expect(missingField.body.error.code).toBe('BAD_REQUEST');

    const badName = await platform.upload('pythonruntime', 'Bad.Name', await tarGzOf(DICE));
    expect(badName.status).toBe(400);
    expect(badName.body.error.code).toBe('INVALID_NAME');

    const notArchive = await platform.upload('pythonruntime', 'junk', Buffer.from('this is not an archive'));
    expect(notArchive.status).toBe(400);
    expect(notArchive.body.error.code).toBe('INVALID_ARCHIVE');

    const badCallNum = await platform.json('GET', '/call/abc');
    expect(badCallNum.status).toBe(400);

    const noRoute = await platform.json('GET', '/nothing-here');
    expect(noRoute.status).toBe(404);
    expect(noRoute.body.error.code).toBe('NOT_FOUND');
  });

  test('health reports db-service and the connected worker', async () => {
    const health = await platform.json('GET', '/health');
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: 'ok', db: { connected: true }, workers: { connected: 1 } });
  });
});
