import path from 'node:path';
import { FIXTURES, tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

const RUNTIME = { name: 'pyfixture', image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 main.py' };

describe('a worker stopped with SIGTERM', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    platform = await TestPlatform.start({ env: { FAAS_WORKER_CAPACITY: '1' } });
    await platform.json('POST', '/registerRuntime', RUNTIME);
    await platform.upload('pyfixture', 'nap', await tarGzOf(path.join(FIXTURES, 'nap')));
    // The function image is built before the calls under test.
    expect((await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'nap', params: { s: 0 } })).body.status).toBe('DONE');
  });
  afterAll(async () => platform?.stop());

  async function waitRunning(callNum: number): Promise<void> {
    await until(() => platform.json('GET', `/call/${callNum}`), (c) => c.body.status === 'RUNNING', 30_000, `call ${callNum} running`);
  }

  test('finishes the call it runs, takes no new one, and what waits runs on the next worker', async () => {
    const running = (await platform.json('POST', '/invokeFunction', { funcName: 'nap', params: { s: 2 } })).body.callNum;
    await waitRunning(running);
    const stopped = platform.stopService('worker');
    const waiting = (await platform.json('POST', '/invokeFunction', { funcName: 'nap', params: { s: 0 } })).body.callNum;
    await stopped;
    expect(await platform.waitFinal(running)).toMatchObject({ status: 'DONE', result: 'rested' });
    expect((await platform.json('GET', `/call/${waiting}`)).body.status).toBe('PENDING');

    platform.spawn('worker');
    expect(await platform.waitFinal(waiting)).toMatchObject({ status: 'DONE', result: 'rested' });
  });

  test('a call that outlasts the grace period ends ERROR worker_lost and leaves no container', async () => {
    await platform.waitHealthy();
    const callNum = (await platform.json('POST', '/invokeFunction', { funcName: 'nap', params: { s: 120 } })).body.callNum;
    await waitRunning(callNum);
    await platform.stopService('worker');
    expect(await platform.waitFinal(callNum, 5000)).toMatchObject({ status: 'ERROR', reason: 'worker_lost' });
    expect(await platform.containers([`io.faas.call=${callNum}`])).toEqual([]);
    platform.spawn('worker');
    await platform.waitHealthy();
  });
});
