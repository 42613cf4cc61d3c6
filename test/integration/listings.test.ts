import path from 'node:path';
import { Level } from 'level';
import { MAX_FRAME_BYTES } from '../../protocol/envelope';
import type { Call, CallStatus } from '../../protocol/types';
import { FIXTURES, tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';

const RUNTIME = { name: 'pyfixture', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py' };
const CONTROL = '\x01'.repeat(1_000_000);

async function text(platform: TestPlatform, route: string): Promise<{ status: number; body: string; headers: Headers }> {
  const response = await fetch(`${platform.url}${route}`);
  return { status: response.status, body: await response.text(), headers: response.headers };
}

describe('lists past the frame cap', () => {
  let platform: TestPlatform;
  afterEach(async () => platform?.stop());

  test('three calls of 1 MB of \\x01 each: /calls, /v1/calls and ?limit=1 answer 200 with the calls, without their logs', async () => {
    platform = await TestPlatform.start();
    expect((await platform.json('POST', '/registerRuntime', RUNTIME)).status).toBe(201);
    expect((await platform.upload('pyfixture', 'control', await tarGzOf(path.join(FIXTURES, 'control-bytes')))).status).toBe(201);
    const made: number[] = [];
    for (let i = 0; i < 3; i += 1) {
      const call = (await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'control', params: { i } })).body;
      expect({ status: call.status, length: call.result?.length }).toEqual({ status: 'DONE', length: CONTROL.length });
      made.push(call.callNum);
    }
    // Each stored call is 12 MB of JSON (result and stderr): two of them were past the 16 MiB frame.
    const full = await text(platform, `/v1/calls/${made[0]}`);
    expect(full.status).toBe(200);
    expect(Buffer.byteLength(full.body)).toBeGreaterThan(MAX_FRAME_BYTES / 2);

    const store = await text(platform, '/calls');
    expect(store.status).toBe(200);
    expect(Buffer.byteLength(store.body)).toBeGreaterThan(MAX_FRAME_BYTES);
    const parsed = JSON.parse(store.body) as Record<string, Call>;
    expect(Object.keys(parsed)).toEqual(made.map((n) => `c${n}`));
    for (const n of made) {
      expect(parsed[`c${n}`]).toMatchObject({ callNum: n, funcName: 'control', status: 'DONE', result: CONTROL, params: { i: made.indexOf(n) } });
      expect(parsed[`c${n}`]).not.toHaveProperty('stderr');
      expect(parsed[`c${n}`]).not.toHaveProperty('stdout');
    }

    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const page: { status: number; body: { calls: Call[]; next: string | null } } = await platform.json('GET', `/v1/calls${cursor ? `?cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      for (const c of page.body.calls) {
        expect(c.result).toBe(CONTROL);
        expect(c).not.toHaveProperty('stderr');
        seen.push(c.callNum);
      }
      cursor = page.body.next;
    } while (cursor !== null);
    expect(seen).toEqual([...made].reverse());

    const one = await platform.json('GET', '/v1/calls?limit=1');
    expect(one.status).toBe(200);
    expect(one.body.calls.map((c: Call) => c.callNum)).toEqual([made[2]]);
    expect(one.body.next).toBe(String(made[2]));
    const filtered = await platform.json('GET', '/v1/calls?function=control&status=DONE&limit=2');
    expect(filtered.status).toBe(200);
    expect(filtered.body.calls.length).toBeGreaterThanOrEqual(1);
    expect(filtered.body.calls.every((c: Call) => c.funcName === 'control' && c.status === 'DONE')).toBe(true);

    // The logs stay where they were.
    const logs = await platform.json('GET', `/v1/calls/${made[1]}/logs`);
    expect(logs.body).toMatchObject({ callNum: made[1], status: 'DONE', stderr: CONTROL });
  });

  test('50k calls written before db-service starts: it indexes them, /calls is one JSON object with every call once', async () => {
    platform = await TestPlatform.start({ services: [] });
    const total = 50_000;
    const statuses: CallStatus[] = ['DONE', 'ERROR', 'TIMEOUT'];
    const call = (n: number): Call => ({
      callNum: n,
      funcName: n % 5000 === 0 ? 'rare' : 'common',
      params: { n },
      status: statuses[n % 3]!,
      result: `result ${n}`,
      createdAt: new Date(Date.parse('2026-01-01T00:00:00.000Z') + n * 1000).toISOString(),
      stdout: `out ${n}`,
      stderr: `err ${n}`,
    });
    // As a store written before the indexes: call records and the sequence only.
    const db = new Level<string, unknown>(platform.env.FAAS_DB_DIR!, { valueEncoding: 'json' });
    await db.open();
    for (let first = 1; first <= total; first += 5000) {
      const ops = [];
      for (let n = first; n < first + 5000 && n <= total; n += 1) ops.push({ type: 'put' as const, key: `call:${String(n).padStart(12, '0')}`, value: call(n) });
      await db.batch(ops);
    }
    await db.put('meta:callSeq', total);
    await db.close();

    platform.spawn('db');
    platform.spawn('api');
    await platform.waitApi();

    const response = await fetch(`${platform.url}/calls`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    // Streamed: no length known up front.
    expect(response.headers.get('content-length')).toBeNull();
    const store = JSON.parse(await response.text()) as Record<string, Call>;
    const keys = Object.keys(store);
    expect(keys).toHaveLength(total);
    expect(keys[0]).toBe('c1');
    expect(keys[total - 1]).toBe(`c${total}`);
    for (let n = 1; n <= total; n += 1) {
      const { stdout: _o, stderr: _e, ...listed } = call(n);
      if (n % 997 === 1 || n === total) expect(store[`c${n}`]).toEqual(listed);
      else expect(store[`c${n}`]?.callNum).toBe(n);
    }

    const rare = await platform.json('GET', '/v1/calls?function=rare&limit=100');
    expect(rare.body.calls.map((c: Call) => c.callNum)).toEqual([50_000, 45_000, 40_000, 35_000, 30_000, 25_000, 20_000, 15_000, 10_000, 5000]);
    expect(rare.body.next).toBeNull();
    const rareErrors = await platform.json('GET', `/v1/calls?function=rare&status=ERROR&since=${encodeURIComponent(call(20_000).createdAt)}`);
    expect(rareErrors.body.calls.map((c: Call) => c.callNum)).toEqual([40_000, 25_000]);
  });
});
