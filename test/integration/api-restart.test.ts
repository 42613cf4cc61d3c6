import { DICE, FIXTURES, tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

describe('calls accepted while no worker is connected', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    platform = await TestPlatform.start();
    await platform.json('POST', '/registerRuntime', { image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 test.py' });
    await platform.upload('pythonruntime', 'dice', await tarGzOf(DICE));
  });
  afterAll(async () => platform?.stop());

  test('wait PENDING, survive an api restart, and run once a worker connects', async () => {
    await platform.stopService('worker');
    const health = await until(() => platform.json('GET', '/health'), (h) => h.status === 503, 10_000, 'no worker connected');
    expect(health.body.workers.connected).toBe(0);

    const accepted = [];
    for (let i = 0; i < 3; i++) accepted.push((await platform.json('POST', '/invokeFunction', { funcName: 'dice', params: { roll: '1d6' } })).body.callNum);
    for (const n of accepted) expect((await platform.json('GET', `/call/${n}`)).body.status).toBe('PENDING');

    await platform.stopService('api');
    platform.spawn('api');
    platform.spawn('worker');
    await platform.waitHealthy();
    for (const n of accepted) {
      const call = await platform.waitFinal(n);
      expect(call.status).toBe('DONE');
      expect(JSON.parse(call.result)).toHaveLength(1);
    }
  });
});

describe('an api restart while calls run', () => {
  let platform: TestPlatform;
  const RUNTIME = { name: 'pyfixture', image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 main.py' };
  beforeAll(async () => {
    // A restarted api waits this long for the nodes registered before it (45 s by default).
    platform = await TestPlatform.start({ env: { FAAS_RECOVERY_GRACE_MS: '8000' } });
    await platform.json('POST', '/registerRuntime', RUNTIME);
    await platform.upload('pyfixture', 'nap', await tarGzOf(require('node:path').join(FIXTURES, 'nap')));
    expect((await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'nap', params: { s: 0 } })).body.status).toBe('DONE');
  });
  afterAll(async () => platform?.stop());

  async function running(params: unknown): Promise<number> {
    const callNum = (await platform.json('POST', '/invokeFunction', { funcName: 'nap', params })).body.callNum;
    await until(() => platform.json('GET', `/call/${callNum}`), (c) => c.body.status === 'RUNNING', 30_000, `call ${callNum} running`);
    return callNum;
  }

  test('a call whose worker lives on finishes DONE, past the recovery window', async () => {
    const callNum = await running({ s: 7 });
    await platform.stopService('api');
    platform.spawn('api');
    await platform.waitHealthy();
    expect(await platform.waitFinal(callNum, 30_000)).toMatchObject({ status: 'DONE', result: 'rested' });
  });

  test('a call whose worker died while the api was down ends ERROR orchestrator_restart', async () => {
    const callNum = await running({ s: 120 });
    await platform.stopService('api');
    await platform.stopService('worker', 'SIGKILL');
    platform.spawn('api');
    await platform.waitApi();
    // Its node does not come back within the grace: the call nobody holds ends.
    const call = await platform.waitFinal(callNum, 40_000);
    expect(call).toMatchObject({ status: 'ERROR', reason: 'orchestrator_restart' });
    platform.spawn('worker');
    await platform.waitHealthy();
    // The restarted worker removes what its previous life left.
    await until(() => platform.containers([`io.faas.call=${callNum}`]), (c) => c.length === 0, 10_000, `the container of call ${callNum} removed`);
  });
});
