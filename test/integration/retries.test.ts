import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

/**
 * Retries and dead letters against the real processes. One slot on the node, so each function's calls
 * go to its one warm container, whose module keeps a count of the calls it served.
 */
const PYTHON = { name: 'python', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 /opt/faas/handler.py', mode: 'handler' };
const SOURCE = `count = 0

def handle(params):
    global count
    count += 1
    if params.get("fail") == "always" or (params.get("fail") == "twice" and count <= 2):
        raise ValueError("attempt %d fails" % count)
    return {"count": count}
`;

interface Listed {
  callNum: number;
  status: string;
  retryOf?: number;
  retryAttempt?: number;
  async?: boolean;
}

describe('retries and dead letters', () => {
  let platform: TestPlatform;
  const calls = async (fn: string): Promise<Listed[]> => ((await platform.json('GET', `/v1/calls?function=${fn}&limit=1000`)).body.calls as Listed[]).sort((a, b) => a.callNum - b.callNum);
  const register = async (name: string, fields: Record<string, string>) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-retry-fn-'));
    writeFileSync(path.join(dir, 'handler.py'), SOURCE);
    return platform.upload('python', name, await tarGzOf(dir), 'p.tar.gz', fields);
  };

  beforeAll(async () => {
    platform = await TestPlatform.start({ env: { FAAS_WORKER_CAPACITY: '1' } });
    expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
  }, 120_000);

  afterAll(async () => {
    await platform?.stop();
  });

  test('retries are refused for a function that is not idempotent, and checked', async () => {
    const refused = await register('plain', { retries: '{"max": 2}' });
    expect(refused.status).toBe(400);
    expect(refused.body.error.message).toMatch(/idempotent=true/);
    const bad = await register('plain', { idempotent: 'true', retries: '{"max": 50}' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/retries/);
  });

  test('an async call that fails twice ends DONE on its third attempt, each attempt a call naming the one before', async () => {
    expect((await register('flaky', { idempotent: 'true', retries: '{"max": 3, "backoffMs": 200, "on": "any"}' })).status).toBe(201);
    const first = await platform.json('POST', '/invokeFunction', { funcName: 'flaky', params: { fail: 'twice' } });
    expect(first.status).toBe(202);
    const chain = await until(() => calls('flaky'), (list) => list.some((c) => c.status === 'DONE'), 60_000, 'the attempt that succeeds');
    expect(chain.map((c) => [c.status, c.retryAttempt ?? 1])).toEqual([
      ['ERROR', 1],
      ['ERROR', 2],
      ['DONE', 3],
    ]);
    expect(chain[0]!.callNum).toBe(first.body.callNum);
    expect(chain[1]!.retryOf).toBe(chain[0]!.callNum);
    expect(chain[2]!.retryOf).toBe(chain[1]!.callNum);
    expect(chain.every((c) => c.async)).toBe(true);
    expect((await platform.waitFinal(chain[2]!.callNum)).result).toBe('{"count":3}');
    // Not a dead letter.
    expect((await platform.json('GET', '/v1/calls?deadLetter=true&function=flaky')).body.calls).toEqual([]);
  }, 90_000);

  test('a call whose retries run out is a dead letter; a waited-for call is never retried', async () => {
    expect((await register('doomed', { idempotent: 'true', retries: '{"max": 2, "backoffMs": 200, "on": "any"}' })).status).toBe(201);
    const waited = await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'doomed', params: { fail: 'always' } });
    expect(waited.body.status).toBe('ERROR');
    await platform.json('POST', '/invokeFunction', { funcName: 'doomed', params: { fail: 'always' } });
    const dead = await until(async () => (await platform.json('GET', '/v1/calls?deadLetter=true')).body.calls as Listed[], (list) => list.length > 0, 60_000, 'the dead letter');
    const all = await calls('doomed');
    // The waited-for call, then the async one and its two retries.
    expect(all.map((c) => [c.status, c.retryAttempt ?? 1, Boolean(c.async)])).toEqual([
      ['ERROR', 1, false],
      ['ERROR', 1, true],
      ['ERROR', 2, true],
      ['ERROR', 3, true],
    ]);
    expect(dead.map((c) => c.callNum)).toEqual([all[3]!.callNum]);
    // A dead letter can be run again by hand.
    const rerun = await platform.json('POST', `/v1/calls/${all[3]!.callNum}/rerun?wait=true`);
    expect(rerun.body).toMatchObject({ rerunOf: all[3]!.callNum, status: 'ERROR' });
  }, 90_000);

  test('an idempotent function without retries, or an error its retries do not cover, is not retried', async () => {
    expect((await register('once', { idempotent: 'true' })).status).toBe(201);
    expect((await register('platformonly', { idempotent: 'true', retries: '{"max": 3, "backoffMs": 100}' })).status).toBe(201);
    for (const fn of ['once', 'platformonly']) {
      const started = await platform.json('POST', '/invokeFunction', { funcName: fn, params: { fail: 'always' } });
      expect((await platform.waitFinal(started.body.callNum)).status).toBe('ERROR');
    }
    // Longer than the first backoff of either.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect((await calls('once')).length).toBe(1);
    expect((await calls('platformonly')).length).toBe(1);
  }, 90_000);
});
