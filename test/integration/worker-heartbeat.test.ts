import { readFileSync } from 'node:fs';
import path from 'node:path';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

/**
 * The api decides how often its workers beat: a worker configured for 5 s beats at the api's
 * 200 ms (from welcome), so the api, which expires a worker after three missed beats of its own
 * interval, keeps it.
 */
describe('the heartbeat interval comes from the api', () => {
  let platform: TestPlatform;

  beforeAll(async () => {
    platform = await TestPlatform.start({ services: ['db', 'api'], env: { FAAS_HEARTBEAT_MS: '200' } });
    platform.spawn('worker', { FAAS_HEARTBEAT_MS: '5000' });
    await platform.waitHealthy(60_000);
  }, 120_000);

  afterAll(async () => platform?.stop());

  test('a worker configured for 5 s beats at the api\'s 200 ms and is never expired', async () => {
    const log = (service: string) => readFileSync(path.join(platform.dataDir, `${service}.log`), 'utf8');
    const welcomed = await until(
      async () => log('worker').split('\n').filter((l) => l.includes('"registered with the api"')),
      (lines) => lines.length > 0,
      30_000,
      'the worker welcomed',
    );
    expect(JSON.parse(welcomed[0]!)).toMatchObject({ heartbeatMs: 200 });
    const [first] = (await platform.json('GET', '/workers')).body;
    // Six of the worker's own intervals would be 30 s; 25 of the api's liveness windows (600 ms) is enough.
    await until(
      async () => (await platform.json('GET', '/workers')).body,
      (workers) => {
        expect(workers).toHaveLength(1);
        expect(workers[0].connectedAt).toBe(first.connectedAt);
        return Date.now() - Date.parse(first.connectedAt) > 15_000;
      },
      30_000,
      'fifteen seconds with the same registration',
    );
    expect(log('api')).not.toContain('worker expired');
  });
});
