import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

const PYTHON = { name: 'python', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 /opt/faas/handler.py', mode: 'handler' };

async function handlerPackage(body: string): Promise<Buffer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-rest-'));
  writeFileSync(path.join(dir, 'handler.py'), body);
  return tarGzOf(dir);
}

describe('the /v1 resources', () => {
  let platform: TestPlatform;
  const ENV_HANDLER = 'import os, sys\n\ndef handle(params):\n    print("log of", params.get("n"))\n    print("err of", params.get("n"), file=sys.stderr)\n    return {"mode": os.environ.get("MODE"), "n": params.get("n")}\n';

  beforeAll(async () => {
    platform = await TestPlatform.start({ env: { FAAS_PRELOAD: 'function' } });
    expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
  });
  afterAll(async () => platform?.stop());

  test('runtimes and functions: full records, 404 for unknown names, versions newest first', async () => {
    expect((await platform.json('GET', '/v1/runtimes')).body).toEqual([expect.objectContaining({ name: 'python', mode: 'handler' })]);
    expect((await platform.json('GET', '/v1/runtimes/python')).body).toMatchObject({ image: 'pythonruntime' });
    expect((await platform.json('GET', '/v1/runtimes/nope')).body).toEqual({ error: { code: 'RUNTIME_NOT_FOUND', message: 'no runtime named "nope"' } });
    expect((await platform.json('GET', '/v1/runtimes/..%2Fetc')).status).toBe(404);

    expect((await platform.upload('python', 'envy', await handlerPackage(ENV_HANDLER), 'p.tar.gz', { env: '{"MODE":"first"}' })).status).toBe(201);
    const v1 = (await platform.json('GET', '/v1/functions/envy')).body;
    expect(v1).toMatchObject({ functionName: 'envy', env: { MODE: 'first' } });
    const second = await platform.upload('python', 'envy', await handlerPackage(`${ENV_HANDLER}# two\n`), 'p.tar.gz', { env: '{"MODE":"second"}' });
    expect(second.status).toBe(200);
    const versions = (await platform.json('GET', '/v1/functions/envy/versions')).body as { version: string; current: boolean }[];
    expect(versions.map((v) => [v.version, v.current])).toEqual([
      [second.body.version, true],
      [v1.version, false],
    ]);
    expect((await platform.json('GET', '/v1/functions')).body).toEqual([expect.objectContaining({ functionName: 'envy', version: second.body.version })]);
    expect((await platform.json('GET', '/v1/functions/nope/versions')).status).toBe(404);

    const bad = await platform.upload('python', 'envy', await handlerPackage(ENV_HANDLER), 'p.tar.gz', { env: '{"FAAS_PARAMS":"x"}' });
    expect(bad).toMatchObject({ status: 400, body: { error: { code: 'BAD_REQUEST' } } });
    expect((await platform.json('GET', '/v1/functions/envy')).body.version).toBe(second.body.version);
  });

  test('a function sees its own environment; re-registering with another never reuses the old container', async () => {
    const call = (await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'envy', params: { n: 1 } })).body;
    expect(call.status).toBe('DONE');
    expect(JSON.parse(call.result)).toEqual({ mode: 'second', n: 1 });
    await platform.upload('python', 'envy', await handlerPackage(`${ENV_HANDLER}# two\n`), 'p.tar.gz', { env: '{"MODE":"third"}' });
    const again = (await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'envy', params: { n: 2 } })).body;
    expect(JSON.parse(again.result)).toEqual({ mode: 'third', n: 2 });
  });

  test('an older version made current again runs with its own fields; unknown versions are 404', async () => {
    const versions = (await platform.json('GET', '/v1/functions/envy/versions')).body as { version: string; current: boolean; env?: Record<string, string> }[];
    const oldest = versions.at(-1)!;
    expect(oldest.current).toBe(false);
    const made = await platform.json('POST', `/v1/functions/envy/versions/${oldest.version}/current`);
    expect(made.status).toBe(200);
    expect(made.body).toMatchObject({ functionName: 'envy', version: oldest.version, env: { MODE: 'first' } });
    expect((await platform.json('GET', '/v1/functions/envy')).body.version).toBe(oldest.version);
    const marked = (await platform.json('GET', '/v1/functions/envy/versions')).body as { version: string; current: boolean }[];
    expect(marked.filter((v) => v.current).map((v) => v.version)).toEqual([oldest.version]);
    const call = (await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'envy', params: { n: 3 } })).body;
    expect(call.functionVersion).toBe(oldest.version);
    expect(JSON.parse(call.result)).toEqual({ mode: 'first', n: 3 });
    for (const route of [`/v1/functions/envy/versions/${'0'.repeat(64)}/current`, '/v1/functions/envy/versions/not-a-hash/current', `/v1/functions/nope/versions/${oldest.version}/current`]) {
      const refused = await platform.json('POST', route);
      expect(refused.status).toBe(404);
      expect(refused.body.error.code).toBe('FUNCTION_NOT_FOUND');
    }
  });

  test('calls: newest first, filtered, in pages that cover each call once; bad queries are 400', async () => {
    await platform.upload('python', 'other', await handlerPackage('def handle(params):\n    return 1\n'));
    const made: number[] = [];
    for (const funcName of ['envy', 'other', 'envy', 'other', 'envy']) {
      made.push((await platform.json('POST', '/invokeFunction?wait=true', { funcName, params: { n: made.length } })).body.callNum);
    }
    const all = (await platform.json('GET', '/v1/calls?limit=1000')).body;
    expect(all.next).toBeNull();
    expect(all.calls.map((c: { callNum: number }) => c.callNum)).toEqual([...all.calls.map((c: { callNum: number }) => c.callNum)].sort((a: number, b: number) => b - a));

    const envy = (await platform.json('GET', '/v1/calls?function=envy&status=DONE')).body.calls as { funcName: string; status: string; callNum: number }[];
    // Exactly the DONE calls of envy in the whole listing, those made here among them.
    const expected = all.calls.filter((c: { funcName: string; status: string }) => c.funcName === 'envy' && c.status === 'DONE').map((c: { callNum: number }) => c.callNum);
    expect(envy.map((c) => c.callNum)).toEqual(expected);
    expect(expected).toEqual(expect.arrayContaining([made[0], made[2], made[4]]));
    expect(envy.every((c) => c.funcName === 'envy' && c.status === 'DONE')).toBe(true);

    const pages: number[][] = [];
    let cursor: string | null = '';
    while (cursor !== null) {
      const page: { calls: { callNum: number }[]; next: string | null } = (await platform.json('GET', `/v1/calls?limit=2${cursor ? `&cursor=${cursor}` : ''}`)).body;
      pages.push(page.calls.map((c) => c.callNum));
      cursor = page.next;
    }
    expect(pages.flat()).toEqual(all.calls.map((c: { callNum: number }) => c.callNum));
    expect(pages.slice(0, -1).every((p) => p.length === 2)).toBe(true);

    const firstCall = all.calls[all.calls.length - 1];
    const since = (await platform.json('GET', `/v1/calls?since=${encodeURIComponent(firstCall.createdAt)}&until=${encodeURIComponent(new Date(Date.parse(firstCall.createdAt) + 1).toISOString())}`)).body;
    expect(since.calls.map((c: { callNum: number }) => c.callNum)).toContain(firstCall.callNum);

    for (const query of ['status=FINISHED', 'limit=0', 'limit=5000', 'cursor=abc', 'since=yesterday', 'function=Bad!', 'colour=red']) {
      const answer = await platform.json('GET', `/v1/calls?${query}`);
      expect({ query, status: answer.status, code: answer.body.error?.code }).toEqual({ query, status: 400, code: 'BAD_REQUEST' });
    }
  });

  test("logs: each call's own output, also for calls running at once", async () => {
    const calls = await Promise.all([11, 12, 13, 14].map(async (n) => (await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'envy', params: { n } })).body));
    for (const call of calls) {
      const logs = (await platform.json('GET', `/v1/calls/${call.callNum}/logs`)).body;
      const n = call.params.n;
      expect(logs).toEqual({ callNum: call.callNum, status: 'DONE', stdout: `log of ${n}\n`, stderr: `err of ${n}\n`, truncated: false });
    }
    expect((await platform.json('GET', '/v1/calls/999999/logs')).body.error.code).toBe('CALL_NOT_FOUND');
    expect((await platform.json('GET', '/v1/calls/abc')).body.error.code).toBe('BAD_REQUEST');
  });

  test('removing a function stops its warm containers and keeps its calls; a runtime in use is refused', async () => {
    expect((await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'other' })).body.status).toBe('DONE');
    await until(() => platform.containers(['io.faas.function=other']), (c) => c.length > 0, 10_000, 'a warm container of other');
    const before = (await platform.json('GET', '/v1/calls?function=other')).body.calls.length;
    expect((await platform.json('DELETE', '/v1/runtimes/python')).body).toEqual({
      error: { code: 'RUNTIME_IN_USE', message: expect.stringMatching(/^runtime "python" is used by (envy, other|other, envy); remove those functions first$/) },
    });
    const removed = await platform.json('DELETE', '/v1/functions/other');
    expect(removed.status).toBe(204);
    expect((await platform.json('DELETE', '/v1/functions/other')).status).toBe(404);
    expect((await platform.json('POST', '/invokeFunction', { funcName: 'other' })).body.error.code).toBe('FUNCTION_NOT_FOUND');
    expect((await platform.json('GET', '/v1/functions/other/versions')).status).toBe(404);
    await until(() => platform.containers(['io.faas.function=other']), (c) => c.length === 0, 15_000, 'no container of other');
    expect((await platform.json('GET', '/v1/calls?function=other')).body.calls.length).toBe(before);

    expect((await platform.json('DELETE', '/v1/functions/envy')).status).toBe(204);
    expect((await platform.json('DELETE', '/v1/runtimes/python')).status).toBe(204);
    expect((await platform.json('GET', '/v1/runtimes')).body).toEqual([]);
    expect((await platform.json('GET', '/v1/workers')).body).toEqual([expect.objectContaining({ state: 'ready' })]);
  });
});

describe('registering through /v1', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    platform = await TestPlatform.start();
  });
  afterAll(async () => platform?.stop());

  test('POST /v1/runtimes and PUT /v1/functions/:name (runtime in the form) register as the seed calls do', async () => {
    const rt = await platform.json('POST', '/v1/runtimes', { name: 'py', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 /opt/faas/handler.py', mode: 'handler' });
    expect(rt).toMatchObject({ status: 201, body: { name: 'py', mode: 'handler' } });
    const put = async (fields: Record<string, string>, body = 'def handle(p):\n    return "v1"\n') => {
      const form = new FormData();
      for (const [k, v] of Object.entries(fields)) form.append(k, v);
      form.append('module', new Blob([await handlerPackage(body)]), 'p.tar.gz');
      const response = await fetch(`${platform.url}/v1/functions/viav1`, { method: 'PUT', body: form });
      return { status: response.status, body: (await response.json()) as any };
    };
    expect(await put({ runtime: 'py' })).toMatchObject({ status: 201, body: { functionName: 'viav1', runtimeName: 'py' } });
    expect(await put({ runtime: 'py', timeout: '2000' }, 'def handle(p):\n    return "v2"\n')).toMatchObject({ status: 200, body: { limits: { timeoutMs: 2000 } } });
    expect(await put({ runtime: 'nope' })).toMatchObject({ status: 404, body: { error: { code: 'RUNTIME_NOT_FOUND' } } });
    expect(await put({})).toMatchObject({ status: 404, body: { error: { code: 'RUNTIME_NOT_FOUND' } } });
    expect((await platform.json('GET', '/v1/functions/viav1/versions')).body).toHaveLength(2);
    const call = (await platform.json('POST', '/v1/functions/viav1/calls?wait=true', {})).body;
    expect(call).toMatchObject({ status: 'DONE', result: '"v2"' });
    // Nothing refused was left in the staging folder.
    const { readdirSync } = await import('node:fs');
    const staging = path.join(platform.dataDir, 'api', 'staging');
    expect(readdirSync(staging).filter((f) => !f.startsWith('.'))).toEqual([]);
  });
});
