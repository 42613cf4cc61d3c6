import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DICE, FIXTURES, tarGzOf } from '../helpers/archives';
import { multipart, rawRequest, type RawAnswer } from '../helpers/http-raw';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

/**
 * Web pages the operator opens, and what they could make a browser send: cross-site forms of each
 * content type, foreign Origins, DNS rebinding (a foreign Host on 127.0.0.1), the api's own pages
 * under an allowed name over plain HTTP; and the small ones: odd multipart fields, loader variables
 * in env, what a function record shows, a keyed rerun. The default setup: no users, loopback.
 */

const RUNTIME = { name: 'pyproc', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py', mode: 'process' };
const EVIL = 'http://evil.example';

describe('adversarial: web pages and the HTTP surface', () => {
  let platform: TestPlatform;
  let pkg: Buffer;
  let port: string;

  const req = (options: Parameters<typeof rawRequest>[1]): Promise<RawAnswer> => rawRequest(platform.url, options);
  const json = (method: string, route: string, body: unknown, headers: Record<string, string> = {}) =>
    req({ method, path: route, body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
  /** What a page could have changed: runtimes, functions and calls as the api lists them. */
  const state = async () => ({
    runtimes: (await req({ path: '/runtimes' })).json,
    functions: (await req({ path: '/functions' })).json,
    calls: Object.keys((await req({ path: '/calls' })).json),
  });

  beforeAll(async () => {
    platform = await TestPlatform.start({ services: ['db', 'api'], env: { FAAS_ALLOWED_HOSTS: 'faas.test,*.lan.test' } });
    await platform.waitApi();
    port = new URL(platform.url).port;
    pkg = await tarGzOf(path.join(FIXTURES, 'echo'));
    expect((await json('POST', '/registerRuntime', RUNTIME)).status).toBe(201);
    const form = multipart([], { field: 'module', name: 'echo.tar.gz', data: pkg });
    expect((await req({ method: 'POST', path: '/registerFunction/pyproc/echo', body: form.body, headers: { 'content-type': form.type } })).status).toBe(201);
  });
  afterAll(async () => platform?.stop());

  test('text/plain bodies (a cross-site form or fetch without preflight) are refused on every JSON route: 415, nothing made', async () => {
    const before = await state();
    const routes: Array<[string, unknown]> = [
      ['/registerRuntime', { ...RUNTIME, name: 'viatext' }],
      ['/v1/runtimes', { ...RUNTIME, name: 'viatextv1' }],
      ['/invokeFunction', { funcName: 'echo', params: {} }],
      ['/v1/functions/echo/calls', { params: {} }],
    ];
    for (const [route, body] of routes) {
      for (const headers of [{ 'content-type': 'text/plain' }, { 'content-type': 'text/plain', origin: EVIL }, {}]) {
        const answer = await req({ method: 'POST', path: route, body: JSON.stringify(body), headers });
        const expected = headers.origin ? { status: 403, code: 'CROSS_SITE_REQUEST' } : { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' };
        expect({ route, headers, status: answer.status, code: answer.json?.error?.code }).toEqual({ route, headers, ...expected });
      }
    }
    expect(await state()).toEqual(before);
  });

  test('url-encoded forms are refused on every JSON route, with or without an Origin: nothing made', async () => {
    const before = await state();
    const form = 'funcName=echo&params=%7B%7D&image=pythonruntime&path=%2Fws&run=x&name=viaform';
    for (const route of ['/registerRuntime', '/v1/runtimes', '/invokeFunction', '/v1/functions/echo/calls']) {
      const bare = await req({ method: 'POST', path: route, body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expect({ route, status: bare.status, code: bare.json?.error?.code }).toEqual({ route, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' });
      const crossSite = await req({ method: 'POST', path: route, body: form, headers: { 'content-type': 'application/x-www-form-urlencoded', origin: EVIL, 'sec-fetch-site': 'cross-site' } });
      expect({ route, status: crossSite.status, code: crossSite.json?.error?.code }).toEqual({ route, status: 403, code: 'CROSS_SITE_REQUEST' });
    }
    expect(await state()).toEqual(before);
  });

  test('multipart forms from another site register nothing, on the seed route and under /v1; on JSON routes they are 415', async () => {
    const before = await state();
    const form = multipart([['runtime', 'pyproc']], { field: 'module', name: 'evil.tar.gz', data: pkg });
    const attempts: Array<[string, string]> = [
      ['POST', '/registerFunction/pyproc/evilfn'],
      ['PUT', '/v1/functions/evilfn'],
      ['POST', '/registerRuntime'],
      ['POST', '/invokeFunction'],
    ];
    for (const [method, route] of attempts) {
      const answer = await req({ method, path: route, body: form.body, headers: { 'content-type': form.type, origin: EVIL } });
      expect({ route, status: answer.status, code: answer.json?.error?.code }).toEqual({ route, status: 403, code: 'CROSS_SITE_REQUEST' });
    }
    for (const route of ['/registerRuntime', '/invokeFunction', '/v1/functions/echo/calls']) {
      const answer = await req({ method: 'POST', path: route, body: form.body, headers: { 'content-type': form.type } });
      expect({ route, status: answer.status }).toEqual({ route, status: 415 });
    }
    expect(await state()).toEqual(before);
    expect((await req({ path: '/v1/functions/evilfn' })).status).toBe(404);
  });

  test('Sec-Fetch-Site cross-site or same-site, an Origin of null, and foreign Origins are refused on every state-changing method', async () => {
    const before = await state();
    const cases: Array<Record<string, string>> = [
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
      { origin: 'null' },
      { origin: EVIL },
      { origin: `http://127.0.0.1:${Number(port) + 1}` },
      { origin: `http://localhost:${port}` },
      { origin: `http://127.0.0.1:${port}.evil.example` },
    ];
    for (const headers of cases) {
      const runtime = await json('POST', '/v1/runtimes', { ...RUNTIME, name: 'crosssite' }, headers);
      const invoke = await json('POST', '/invokeFunction', { funcName: 'echo' }, headers);
      const remove = await req({ method: 'DELETE', path: '/v1/functions/echo', headers });
      const rerun = await req({ method: 'POST', path: '/v1/calls/1/rerun', headers });
      for (const [what, answer] of Object.entries({ runtime, invoke, remove, rerun })) {
        expect({ headers, what, status: answer.status, code: answer.json?.error?.code }).toEqual({ headers, what, status: 403, code: 'CROSS_SITE_REQUEST' });
      }
    }
    expect(await state()).toEqual(before);
    // Reads carry no such risk without CORS headers, which the api never sends.
    const read = await req({ path: '/functions', headers: { origin: EVIL, 'sec-fetch-site': 'cross-site' } });
    expect(read.status).toBe(200);
    expect(read.headers['access-control-allow-origin']).toBeUndefined();
  });

  test("the api's own origin, Sec-Fetch-Site same-origin or none, and clients without Origin may change state", async () => {
    const own = await json('POST', '/v1/runtimes', { ...RUNTIME, name: 'ownorigin' }, { origin: platform.url, 'sec-fetch-site': 'same-origin' });
    expect(own.status).toBe(201);
    const typed = await json('POST', '/v1/runtimes', { ...RUNTIME, name: 'typedurl' }, { 'sec-fetch-site': 'none' });
    expect(typed.status).toBe(201);
    const named = await json('POST', '/v1/runtimes', { ...RUNTIME, name: 'namedhost' }, { host: `faas.test:${port}`, origin: `http://faas.test:${port}` });
    expect(named.status).toBe(201);
    // Another allowed name is still another origin.
    const other = await json('POST', '/v1/runtimes', { ...RUNTIME, name: 'otherhost' }, { host: `faas.test:${port}`, origin: `http://localhost:${port}` });
    expect(other.status).toBe(403);
    const names = (await req({ path: '/runtimes' })).json;
    expect(names).toEqual(expect.arrayContaining(['ownorigin', 'typedurl', 'namedhost']));
    expect(names).not.toContain('otherhost');
    for (const name of ['ownorigin', 'typedurl', 'namedhost']) expect((await req({ method: 'DELETE', path: `/v1/runtimes/${name}` })).status).toBe(204);
  });

  test('DNS rebinding: a foreign Host on 127.0.0.1 reads nothing and changes nothing (421 HOST_NOT_ALLOWED)', async () => {
    const before = await state();
    for (const host of ['evil.example', `evil.example:${port}`, 'faas.test.evil.example', 'lan.test', 'evillan.test', 'localhost.evil.example', '127.0.0.1.nip.io', 'bad host']) {
      for (const route of ['/runtimes', '/functions', '/calls', '/v1/functions', '/call/1', '/workers', '/health', '/openapi.json', '/docs']) {
        const answer = await req({ path: route, headers: { host } });
        expect({ host, route, status: answer.status }).toEqual({ host, route, status: 421 });
        expect(answer.text).not.toContain('pyproc');
      }
      const write = await json('POST', '/registerRuntime', { ...RUNTIME, name: 'rebound' }, { host });
      expect({ host, status: write.status }).toEqual({ host, status: 421 });
    }
    const refused = await req({ path: '/functions', headers: { host: 'evil.example' } });
    expect(refused.json).toEqual({ error: { code: 'HOST_NOT_ALLOWED', message: expect.stringContaining('FAAS_ALLOWED_HOSTS') } });
    expect(await state()).toEqual(before);
  });

  test('loopback names, IP addresses and the names in FAAS_ALLOWED_HOSTS are served', async () => {
    const hosts = [`localhost:${port}`, 'localhost', `app.localhost:${port}`, `[::1]:${port}`, `127.0.0.1:${port}`, '10.1.2.3:3000', `faas.test:${port}`, 'FAAS.TEST.', `node1.lan.test:${port}`, 'a.b.lan.test'];
    for (const host of hosts) {
      const answer = await req({ path: '/functions', headers: { host } });
      expect({ host, status: answer.status, body: answer.json }).toEqual({ host, status: 200, body: ['echo'] });
    }
  });

  test('/docs works under an allowed name over plain HTTP: no upgrade-insecure-requests, and every asset it names loads', async () => {
    const host = `faas.test:${port}`;
    const page = await req({ path: '/docs', headers: { host } });
    expect(page.status).toBe(200);
    const csp = String(page.headers['content-security-policy']);
    expect(csp).not.toMatch(/upgrade-insecure-requests/);
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("object-src 'none'");
    const assets = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets).toEqual(['/docs/assets/swagger-ui.css', '/docs/assets/swagger-ui-bundle.js', '/docs/init.js']);
    for (const asset of [...assets, '/openapi.json']) {
      const answer = await req({ path: asset, headers: { host } });
      expect({ asset, status: answer.status }).toEqual({ asset, status: 200 });
      expect(answer.body.length).toBeGreaterThan(50);
      expect(String(answer.headers['content-security-policy'])).not.toMatch(/upgrade-insecure-requests/);
    }
    expect(String((await req({ path: '/docs/assets/swagger-ui-bundle.js', headers: { host } })).headers['content-type'])).toMatch(/javascript/);
  });

  test('JSON routes take application/json with a charset and +json types; no body and no Content-Type is an empty object; other charsets are 415', async () => {
    const invoked = await json('POST', '/v1/functions/nothere/calls', {}, { 'content-type': 'application/json; charset=utf-8' });
    expect(invoked.json.error.code).toBe('FUNCTION_NOT_FOUND');
    const plusJson = await json('POST', '/v1/functions/nothere/calls', {}, { 'content-type': 'application/merge-patch+json' });
    expect(plusJson.json.error.code).toBe('FUNCTION_NOT_FOUND');
    const empty = await req({ method: 'POST', path: '/v1/functions/nothere/calls' });
    expect(empty.json.error.code).toBe('FUNCTION_NOT_FOUND');
    const emptyRuntime = await req({ method: 'POST', path: '/registerRuntime' });
    expect(emptyRuntime).toMatchObject({ status: 400, json: { error: { code: 'BAD_REQUEST', message: expect.stringContaining('image is required') } } });
    const latin = await json('POST', '/v1/functions/nothere/calls', {}, { 'content-type': 'application/json; charset=latin1' });
    expect(latin.json.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    const bodyWithoutType = await req({ method: 'POST', path: '/invokeFunction', body: '{"funcName":"echo"}' });
    expect(bodyWithoutType.status).toBe(415);
  });

  test("the seed's curl examples work as written", async () => {
    // The seed's registerFunction example names ../runtimes/python/dice/python.tar.gz: the same layout, in a folder of its own.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-seed-'));
    try {
      mkdirSync(path.join(dir, 'runtimes', 'python', 'dice'), { recursive: true });
      mkdirSync(path.join(dir, 'cwd'));
      writeFileSync(path.join(dir, 'runtimes', 'python', 'dice', 'python.tar.gz'), await tarGzOf(DICE));
      const base = `localhost:${port}`;
      const curl = (...args: string[]) => {
        const result = spawnSync('curl', ['-s', '-w', '\\n%{http_code}', ...args], { cwd: path.join(dir, 'cwd'), encoding: 'utf8', timeout: 30_000 });
        const lines = result.stdout.trimEnd().split('\n');
        return { status: Number(lines.pop()), body: lines.join('\n') };
      };
      const runtime = curl('--header', 'Content-Type: application/json', '-X', 'POST', '--data', '{"image": "pythonruntime","path": "/ws","dependencies": "pip3 install -r requirements.txt","run":"python3 test.py"}', `${base}/registerRuntime`);
      expect(runtime.status).toBe(201);
      const fn = curl('-X', 'POST', '-F', 'module=@../runtimes/python/dice/python.tar.gz', `${base}/registerFunction/pythonruntime/dice`);
      expect(fn.status).toBe(201);
      expect(JSON.parse(fn.body)).toMatchObject({ functionName: 'dice', runtimeName: 'pythonruntime' });
      const invoked = curl('--header', 'Content-Type: application/json', '-X', 'POST', '--data', '{"funcName":"dice", "params": {"roll":"4d6"}}', `${base}/invokeFunction`);
      expect(invoked.status).toBe(202);
      const { callNum } = JSON.parse(invoked.body) as { callNum: number };
      expect(JSON.parse(curl(`${base}/runtimes`).body)).toContain('pythonruntime');
      expect(JSON.parse(curl(`${base}/functions`).body)).toContain('dice');
      expect(JSON.parse(curl(`${base}/calls`).body)).toHaveProperty(`c${callNum}`);
      expect(JSON.parse(curl(`${base}/call/${callNum}`).body)).toMatchObject({ funcName: 'dice', params: { roll: '4d6' }, callNum });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('multipart fields given twice, as arrays or with nested names are 400 (never 500); nothing registered, nothing staged', async () => {
    const before = await state();
    const cases: Array<[string, string, Array<[string, string]>]> = [
      ['PUT', '/v1/functions/oddfields', [['runtime[a]', '1']]],
      ['PUT', '/v1/functions/oddfields', [['runtime[toString]', '1']]],
      ['PUT', '/v1/functions/oddfields', [['runtime', 'pyproc'], ['runtime', 'pyproc']]],
      ['PUT', '/v1/functions/oddfields', [['runtime[]', 'pyproc']]],
      ['POST', '/registerFunction/pyproc/oddfields', [['timeout[a]', '1']]],
      ['POST', '/registerFunction/pyproc/oddfields', [['env', '{}'], ['env', '{}']]],
      ['POST', '/registerFunction/pyproc/oddfields', [['handler[x][y]', 'h.handle']]],
      ['POST', '/registerFunction/pyproc/oddfields', [['args[0]', 'x']]],
      ['POST', '/registerFunction/pyproc/oddfields', [['__proto__[polluted]', 'yes']]],
      ['POST', '/registerFunction/pyproc/oddfields', [['outputs', 'true'], ['outputs[x]', 'true']]],
    ];
    for (const [method, route, fields] of cases) {
      const form = multipart(fields, { field: 'module', name: 'p.tar.gz', data: pkg });
      const answer = await req({ method, path: route, body: form.body, headers: { 'content-type': form.type } });
      expect({ fields, status: answer.status, code: answer.json?.error?.code }).toEqual({ fields, status: 400, code: 'BAD_REQUEST' });
    }
    expect(await state()).toEqual(before);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // A refused upload is removed as the answer goes out.
    await until(async () => readdirSync(path.join(platform.dataDir, 'api', 'staging')), (files) => files.length === 0, 10_000, 'an empty staging folder');
  });

  test('loader and interpreter variables in a function or call env are refused with 400 naming them; ordinary ones pass', async () => {
    const denied = ['LD_PRELOAD', 'LD_LIBRARY_PATH', 'DYLD_INSERT_LIBRARIES', 'NODE_OPTIONS', 'NODE_PATH', 'PYTHONPATH', 'PYTHONSTARTUP', 'PYTHONHOME', 'PYTHONINSPECT', 'PERL5LIB', 'PERL5OPT', 'RUBYOPT', 'RUBYLIB', 'BASH_ENV', 'ENV', 'JAVA_TOOL_OPTIONS', '_JAVA_OPTIONS', 'GCONV_PATH', 'GLIBC_TUNABLES', 'MALLOC_CHECK_', 'HOME', 'PATH', 'ld_preload'];
    for (const name of denied) {
      const form = multipart([['env', JSON.stringify({ OK: '1', [name]: '/tmp/x' })]], { field: 'module', name: 'p.tar.gz', data: pkg });
      const registered = await req({ method: 'POST', path: '/registerFunction/pyproc/envfn', body: form.body, headers: { 'content-type': form.type } });
      expect({ name, status: registered.status }).toEqual({ name, status: 400 });
      expect(registered.json.error.message).toContain(name);
      const call = await json('POST', '/v1/functions/echo/calls', { env: { [name]: '/tmp/x' } });
      expect({ name, status: call.status }).toEqual({ name, status: 400 });
      expect(call.json.error.message).toContain(name);
    }
    expect((await req({ path: '/v1/functions/envfn' })).status).toBe(404);
    const form = multipart([['env', JSON.stringify({ PYTHONUNBUFFERED: '1', NODE_ENV: 'production', GREETING: 'hi' })]], { field: 'module', name: 'p.tar.gz', data: pkg });
    const fine = await req({ method: 'POST', path: '/registerFunction/pyproc/envfn', body: form.body, headers: { 'content-type': form.type } });
    expect(fine).toMatchObject({ status: 201, json: { env: { PYTHONUNBUFFERED: '1', NODE_ENV: 'production', GREETING: 'hi' } } });
    expect((await req({ method: 'DELETE', path: '/v1/functions/envfn' })).status).toBe(204);
  });

  test('function records show what a user set and the platform measured, never the upload form internals', async () => {
    const form = multipart([['runtime', 'pyproc'], ['idempotent', 'true']], { field: 'module', name: 'my-secret-name.tar.gz', data: pkg });
    const put = await req({ method: 'PUT', path: '/v1/functions/recorded', body: form.body, headers: { 'content-type': form.type } });
    expect(put.status).toBe(201);
    const allowed = ['functionName', 'runtimeName', 'version', 'size', 'format', 'registeredAt', 'handler', 'preload', 'idempotent', 'limits', 'env', 'args', 'outputs', 'current'];
    const records = [put.json, (await req({ path: '/v1/functions/recorded' })).json, ...(await req({ path: '/v1/functions' })).json, ...(await req({ path: '/v1/functions/recorded/versions' })).json];
    for (const record of records) {
      expect(Object.keys(record).filter((key) => !allowed.includes(key))).toEqual([]);
      expect(JSON.stringify(record)).not.toContain('my-secret-name');
    }
    expect(put.json).toMatchObject({ functionName: 'recorded', runtimeName: 'pyproc', idempotent: true, format: 'tar.gz' });
    expect((await req({ method: 'DELETE', path: '/v1/functions/recorded' })).status).toBe(204);
  });

  test('a rerun under an Idempotency-Key keeps rerunOf, first time and replayed', async () => {
    const first = await json('POST', '/invokeFunction', { funcName: 'echo', params: { n: 1 } });
    expect(first.status).toBe(202);
    const callNum = first.json.callNum as number;
    const rerun = await req({ method: 'POST', path: `/v1/calls/${callNum}/rerun`, headers: { 'idempotency-key': `rerun-${callNum}` } });
    expect(rerun).toMatchObject({ status: 202, json: { rerunOf: callNum, funcName: 'echo', params: { n: 1 } } });
    const again = await req({ method: 'POST', path: `/v1/calls/${callNum}/rerun`, headers: { 'idempotency-key': `rerun-${callNum}` } });
    expect(again).toMatchObject({ status: 202, json: { callNum: rerun.json.callNum, rerunOf: callNum } });
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect((await req({ path: `/v1/calls/${rerun.json.callNum}` })).json.rerunOf).toBe(callNum);
  });

  test('a key first used for an invoke is a conflict for a rerun, never a replay of the invoke', async () => {
    const first = await json('POST', '/invokeFunction', { funcName: 'echo', params: { n: 2 } }, { 'idempotency-key': 'shared-key' });
    expect(first.status).toBe(202);
    const callNum = first.json.callNum as number;
    const rerun = await req({ method: 'POST', path: `/v1/calls/${callNum}/rerun`, headers: { 'idempotency-key': 'shared-key' } });
    expect(rerun.status).toBe(409);
    expect(rerun.json.error.code).toBe('IDEMPOTENCY_CONFLICT');
  });
});
