import path from 'node:path';
import { FIXTURES, tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

/** FAAS_MAX_QUEUE bounds the calls waiting for a worker over all functions (the per-function bound is in idempotency-backpressure). */
const PROCESS = { name: 'pyproc', image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 main.py' };

describe('FAAS_MAX_QUEUE', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    platform = await TestPlatform.start({ env: { FAAS_MAX_QUEUE: '3' } });
    expect((await platform.json('POST', '/registerRuntime', PROCESS)).status).toBe(201);
    for (const name of ['first', 'second']) expect((await platform.upload('pyproc', name, await tarGzOf(path.join(FIXTURES, 'echo')))).status).toBe(201);
  });
  afterAll(async () => platform?.stop());

  const allCalls = async () => ((await platform.json('GET', '/v1/calls?limit=1000')).body.calls as Array<{ callNum: number }>).map((c) => c.callNum).sort((a, b) => a - b);

  test('past the bound every function is refused with 429 QUEUE_FULL and Retry-After, and no call is made; the queue drains when a worker returns', async () => {
    await platform.stopService('worker');
    await until(() => platform.json('GET', '/health'), (h) => h.status === 503, 15_000, 'no worker connected');

    const accepted = [
      await platform.json('POST', '/invokeFunction', { funcName: 'first', params: { n: 1 } }),
      await platform.json('POST', '/invokeFunction', { funcName: 'first', params: { n: 2 } }),
      await platform.json('POST', '/v1/functions/second/calls', { params: { n: 3 } }),
    ];
    expect(accepted.map((a) => a.status)).toEqual([202, 202, 202]);
    const before = await allCalls();
    expect(before).toEqual(accepted.map((a) => a.body.callNum as number).sort((a, b) => a - b));

    // Both routes, both functions, and the seed's synchronous form: all refused while three wait.
    const refused = [
      await platform.json('POST', '/invokeFunction', { funcName: 'first', params: { n: 4 } }),
      await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'second', params: { n: 5 } }),
      await platform.json('POST', '/v1/functions/second/calls', { params: { n: 6 } }),
    ];
    for (const answer of refused) {
      expect({ status: answer.status, code: answer.body.error?.code }).toEqual({ status: 429, code: 'QUEUE_FULL' });
      expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    expect(await allCalls()).toEqual(before);

    platform.spawn('worker');
    for (const a of accepted) expect((await platform.waitFinal(a.body.callNum)).status).toBe('DONE');
    expect((await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'second', params: { n: 7 } })).body.status).toBe('DONE');
  });
});
