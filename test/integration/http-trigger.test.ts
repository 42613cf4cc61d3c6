import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hashPassword } from '../../api/auth';
import { tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';

/**
 * Functions as HTTP endpoints (/function/:name), against the real processes and containers: what the
 * function receives, the response it chooses, the platform's errors, process mode, and credentials.
 */
const PYTHON = { name: 'python', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 /opt/faas/handler.py', mode: 'handler' };
const PYPROC = { name: 'pyproc', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py' };

/** One handler with a behaviour per path below the function. */
const WEB = `import base64, time

def handle(req):
    path = req["path"]
    if path == "/echo":
        return req
    if path == "/made":
        return {"statusCode": 201, "headers": {"Content-Type": "text/plain", "X-Made": "yes"}, "body": "made " + req["method"]}
    if path == "/mirror":
        # The request's bytes back, whatever they are.
        data = base64.b64decode(req["body"]) if req["isBase64Encoded"] else req["body"].encode()
        return {"statusCode": 200, "headers": {"Content-Type": "application/octet-stream"}, "body": base64.b64encode(data[::-1]).decode(), "isBase64Encoded": True}
    if path == "/slow":
        time.sleep(30)
    if path == "/fail":
        raise ValueError("asked to fail")
    return {"statusCode": 404, "body": {"unknown": path}}
`;

async function packageOf(files: Record<string, string>): Promise<Buffer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-http-fn-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return tarGzOf(dir);
}

describe('functions as HTTP endpoints', () => {
  let platform: TestPlatform;

  beforeAll(async () => {
    platform = await TestPlatform.start({ env: { FAAS_MAX_BODY_BYTES: String(256 * 1024) } });
    expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
    expect((await platform.json('POST', '/registerRuntime', PYPROC)).status).toBe(201);
    expect((await platform.upload('python', 'web', await packageOf({ 'handler.py': WEB }), 'p.tar.gz', { timeout: '1500' })).status).toBe(201);
    const main = 'import json, sys\nreq = json.load(sys.stdin)\nprint("hello from process mode, " + req["method"] + " " + req["path"] + " " + req["query"].get("who", ""))\n';
    expect((await platform.upload('pyproc', 'plain', await packageOf({ 'main.py': main }), 'p.tar.gz')).status).toBe(201);
  }, 180_000);

  afterAll(async () => {
    await platform?.stop();
  });

  test('a JSON body reaches the function with method, path, query and headers; the call is recorded with trigger http', async () => {
    const response = await fetch(`${platform.url}/function/web/echo?a=1&a=2`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-trace': 't1' }, body: JSON.stringify({ order: 7 }) });
    expect(response.status).toBe(200);
    const req = await response.json();
    expect(req).toMatchObject({ method: 'POST', path: '/echo', query: { a: ['1', '2'] }, body: '{"order":7}', isBase64Encoded: false });
    expect(req.headers['x-trace']).toBe('t1');
    const callNum = Number(response.headers.get('x-call-number'));
    expect(callNum).toBeGreaterThan(0);
    const call = await platform.json('GET', `/v1/calls/${callNum}`);
    expect(call.body).toMatchObject({ callNum, funcName: 'web', status: 'DONE', trigger: 'http' });
    expect(call.body.params).toMatchObject({ method: 'POST', path: '/echo' });
  }, 60_000);

  test('the function chooses status, headers and body; text and binary bodies travel whole', async () => {
    const made = await fetch(`${platform.url}/function/web/made`, { method: 'PUT', body: 'some text', headers: { 'content-type': 'text/plain' } });
    expect(made.status).toBe(201);
    expect(made.headers.get('x-made')).toBe('yes');
    expect(made.headers.get('content-type')).toBe('text/plain');
    expect(await made.text()).toBe('made PUT');

    const bytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 256));
    const mirrored = await fetch(`${platform.url}/function/web/mirror`, { method: 'POST', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
    expect(mirrored.status).toBe(200);
    expect(Buffer.from(await mirrored.arrayBuffer())).toEqual(Buffer.from(bytes).reverse());

    const missing = await fetch(`${platform.url}/function/web/nowhere`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ unknown: '/nowhere' });
  }, 60_000);

  test('platform errors: an unknown function 404, a body past the limit 413, an error 502, a timeout 504', async () => {
    const unknown = await fetch(`${platform.url}/function/nosuch`);
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).error.code).toBe('FUNCTION_NOT_FOUND');

    const before = (await platform.json('GET', '/v1/calls?function=web&limit=1000')).body.calls.length;
    const large = await fetch(`${platform.url}/function/web/echo`, { method: 'POST', body: 'x'.repeat(256 * 1024 + 1), headers: { 'content-type': 'text/plain' } });
    expect(large.status).toBe(413);
    expect((await large.json()).error.code).toBe('PAYLOAD_TOO_LARGE');
    // A request answered with an error made no call.
    expect((await platform.json('GET', '/v1/calls?function=web&limit=1000')).body.calls.length).toBe(before);

    const failed = await fetch(`${platform.url}/function/web/fail`);
    expect(failed.status).toBe(502);
    const error = (await failed.json()).error;
    expect(error.code).toBe('FUNCTION_FAILED');
    expect(error.message).toContain('asked to fail');

    const slow = await fetch(`${platform.url}/function/web/slow`);
    expect(slow.status).toBe(504);
    expect((await slow.json()).error.code).toBe('FUNCTION_TIMEOUT');
    const slowCall = await platform.json('GET', `/v1/calls/${slow.headers.get('x-call-number')}`);
    expect(slowCall.body).toMatchObject({ status: 'TIMEOUT', trigger: 'http' });
  }, 90_000);

  test('process mode: the request on stdin, the printed text is the answer', async () => {
    const response = await fetch(`${platform.url}/function/plain/hi?who=ann`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await response.text()).toBe('hello from process mode, GET /hi ann');
  }, 90_000);
});

describe('function endpoints on a platform with users', () => {
  let platform: TestPlatform;
  const authorization = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;

  const register = async (name: string, fields: Record<string, string>) => {
    const form = new FormData();
    for (const [key, value] of Object.entries(fields)) form.append(key, value);
    form.append('module', new Blob([await packageOf({ 'handler.py': 'def handle(req):\n    return {"auth": req["headers"].get("authorization")}\n' })]), 'p.tar.gz');
    const response = await fetch(`${platform.url}/registerFunction/python/${name}`, { method: 'POST', body: form, headers: { authorization } });
    expect(response.status).toBe(201);
  };

  beforeAll(async () => {
    platform = await TestPlatform.start({ env: { FAAS_AUTH_USERS: `alice:${await hashPassword('s3cret')}`, FAAS_API_USER: 'alice', FAAS_API_PASSWORD: 's3cret' } });
    const runtime = await fetch(`${platform.url}/registerRuntime`, { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify(PYTHON) });
    expect(runtime.status).toBe(201);
    await register('private', {});
    await register('open', { public: 'true' });
  }, 180_000);

  afterAll(async () => {
    await platform?.stop();
  });

  test('an endpoint needs credentials unless its function is public; the platform credentials never reach a function', async () => {
    const anonymous = await fetch(`${platform.url}/function/private`);
    expect(anonymous.status).toBe(401);
    // Without credentials, a missing function looks like any other.
    expect((await fetch(`${platform.url}/function/nosuch`)).status).toBe(401);
    expect((await fetch(`${platform.url}/function/nosuch`, { headers: { authorization } })).status).toBe(404);

    const allowed = await fetch(`${platform.url}/function/private`, { headers: { authorization } });
    expect(allowed.status).toBe(200);
    expect(await allowed.json()).toEqual({ auth: null });

    const open = await fetch(`${platform.url}/function/open`, { headers: { authorization: 'Bearer its-own' } });
    expect(open.status).toBe(200);
    expect(await open.json()).toEqual({ auth: 'Bearer its-own' });
    // A public endpoint takes a post from a page of another site; a private one does not.
    expect((await fetch(`${platform.url}/function/open`, { method: 'POST', headers: { origin: 'https://elsewhere.example' } })).status).toBe(200);
    const crossSite = await fetch(`${platform.url}/function/private`, { method: 'POST', headers: { origin: 'https://elsewhere.example', authorization } });
    expect(crossSite.status).toBe(403);
    // A GET runs a function too: an image or a link of another site may not run a private one.
    const crossSiteGet = await fetch(`${platform.url}/function/private`, { headers: { 'sec-fetch-site': 'cross-site', authorization } });
    expect(crossSiteGet.status).toBe(403);
    expect((await crossSiteGet.json()).error.code).toBe('CROSS_SITE_REQUEST');
    // The platform's own credentials sent to a public endpoint are not the function's to see.
    const cached = await fetch(`${platform.url}/function/open`, { headers: { authorization } });
    expect(await cached.json()).toEqual({ auth: null });
  }, 90_000);
});
