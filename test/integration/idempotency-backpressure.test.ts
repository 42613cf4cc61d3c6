import path from 'node:path';
import { tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

const TRICKY = path.resolve(__dirname, '..', 'fixtures', 'handlers', 'tricky');
const PYTHON = { name: 'python', image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 /opt/faas/handler.py', mode: 'handler' };

async function invoke(platform: TestPlatform, body: unknown, headers: Record<string, string> = {}, query = '') {
  const response = await fetch(`${platform.url}/invokeFunction${query}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

describe('Idempotency-Key and backpressure', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    platform = await TestPlatform.start({ env: { FAAS_MAX_QUEUE_PER_FUNCTION: '2' } });
    await platform.json('POST', '/registerRuntime', PYTHON);
    await platform.upload('python', 'tricky', await tarGzOf(TRICKY));
  });
  afterAll(async () => platform?.stop());

  const callsOf = async (funcName: string) =>
    Object.values((await platform.json('GET', '/calls')).body as Record<string, { funcName: string; callNum: number }>).filter((c) => c.funcName === funcName);

  test('a key sent twice, and five times at once, makes one call that runs once', async () => {
    const first = await invoke(platform, { funcName: 'tricky', params: { tag: 'k1' } }, { 'Idempotency-Key': 'order-1' }, '?wait=true');
    expect(first.status).toBe(200);
    const again = await invoke(platform, { funcName: 'tricky', params: { tag: 'k1' } }, { 'Idempotency-Key': 'order-1' }, '?wait=true');
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body.callNum).toBe(first.body.callNum);
    expect(again.body.result).toBe(first.body.result);

    const burst = await Promise.all(Array.from({ length: 5 }, () => invoke(platform, { funcName: 'tricky', params: { tag: 'k2' } }, { 'Idempotency-Key': 'order-2' })));
    expect(new Set(burst.map((r) => r.body.callNum)).size).toBe(1);
    expect(burst.map((r) => r.status)).toEqual(Array(5).fill(202));
    expect((await platform.waitFinal(burst[0]!.body.callNum)).status).toBe('DONE');
    // Seven requests made exactly these two calls, and no other.
    expect((await callsOf('tricky')).map((c) => c.callNum).sort((a, b) => a - b)).toEqual([first.body.callNum, burst[0]!.body.callNum].sort((a, b) => a - b));
  });

  test('the same key with other params is a conflict; a bad key is refused', async () => {
    const conflict = await invoke(platform, { funcName: 'tricky', params: { tag: 'other' } }, { 'Idempotency-Key': 'order-1' });
    expect(conflict.status).toBe(409);
    expect(conflict.body.error.code).toBe('IDEMPOTENCY_CONFLICT');
    const bad = await invoke(platform, { funcName: 'tricky', params: {} }, { 'Idempotency-Key': 'has space' });
    expect(bad.status).toBe(400);
  });

  test('past the queue bound of a function, invokeFunction answers 429 with Retry-After and creates nothing', async () => {
    await platform.stopService('worker');
    await until(() => platform.json('GET', '/health'), (h) => h.status === 503, 10_000, 'no worker connected');
    const before = (await callsOf('tricky')).length;
    const accepted = [await invoke(platform, { funcName: 'tricky', params: { n: 1 } }), await invoke(platform, { funcName: 'tricky', params: { n: 2 } })];
    expect(accepted.map((r) => r.status)).toEqual([202, 202]);
    const refused = await invoke(platform, { funcName: 'tricky', params: { n: 3 } });
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe('QUEUE_FULL');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await callsOf('tricky')).length).toBe(before + 2);

    platform.spawn('worker');
    for (const r of accepted) expect((await platform.waitFinal(r.body.callNum)).status).toBe('DONE');
    expect((await invoke(platform, { funcName: 'tricky', params: { n: 4 } }, {}, '?wait=true')).status).toBe(200);
  });
});
