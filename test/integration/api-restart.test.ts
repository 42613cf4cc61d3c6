import { DICE, tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';

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
    const deadline = Date.now() + 10_000;
    while ((await platform.json('GET', '/health')).status !== 503 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const health = await platform.json('GET', '/health');
    expect(health.status).toBe(503);
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
