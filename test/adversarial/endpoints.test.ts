import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tarGzOf } from '../helpers/archives';
import { rawRequest } from '../helpers/http-raw';
import { TestPlatform } from '../helpers/platform';

/**
 * How functions get called, attacked: a function answering responses that would split headers, forge
 * the platform's own or break out of the sandbox policy; callback URLs pointing into the network or back
 * at the api; names and paths that try to leave /function/<name>. Each answer is the platform's clear
 * error, and nothing is made that should not be.
 */

const PYTHON = { name: 'python', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 /opt/faas/handler.py', mode: 'handler' };
/** Answers whatever response the request's body describes. */
const MIRROR = 'import json\n\ndef handle(req):\n    return json.loads(req["body"])\n';

describe('adversarial: function endpoints and callbacks', () => {
  let platform: TestPlatform;
  let apiPort: string;

  const callCount = async () => ((await platform.json('GET', '/v1/calls?limit=1000')).body.calls as unknown[]).length;

  beforeAll(async () => {
    platform = await TestPlatform.start();
    apiPort = new URL(platform.url).port;
    expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-adv-endpoint-'));
    writeFileSync(path.join(dir, 'handler.py'), MIRROR);
    expect((await platform.upload('python', 'mirror', await tarGzOf(dir), 'p.tar.gz')).status).toBe(201);
  }, 120_000);
  afterAll(async () => platform?.stop());

  const badResponses: Array<[string, unknown]> = [
    ['a header value splitting the response (CR LF)', { statusCode: 200, headers: { 'X-A': 'a\r\nSet-Cookie: stolen=1' }, body: 'x' }],
    ['a header name with a space', { statusCode: 200, headers: { 'Set Cookie': 'x' }, body: 'x' }],
    ['its own Content-Length', { statusCode: 200, headers: { 'Content-Length': '1' }, body: 'longer than one' }],
    ['its own Transfer-Encoding', { statusCode: 200, headers: { 'Transfer-Encoding': 'chunked' }, body: 'x' }],
    ['a forged X-Call-Number', { statusCode: 200, headers: { 'X-Call-Number': '1' }, body: 'x' }],
    ['status 101 (a protocol switch)', { statusCode: 101 }],
    ['status 1000', { statusCode: 1000 }],
    ['a base64 body that is not base64', { statusCode: 200, body: '<script>', isBase64Encoded: true }],
  ];

  test.each(badResponses)('a function answering %s gets 502 BAD_FUNCTION_RESPONSE, and none of its response is sent', async (_name, response) => {
    const answer = await rawRequest(platform.url, { method: 'POST', path: '/function/mirror', body: JSON.stringify(response), headers: { 'content-type': 'application/json' } });
    expect(answer.status).toBe(502);
    expect(answer.json?.error?.code).toBe('BAD_FUNCTION_RESPONSE');
    expect(answer.headers['set-cookie']).toBeUndefined();
    expect(answer.headers['x-call-number']).toMatch(/^\d+$/);
  });

  test('a function cannot lift the sandbox policy of its pages: its own policy is added beside it', async () => {
    const response = { statusCode: 200, headers: { 'Content-Type': 'text/html', 'Content-Security-Policy': "default-src *; script-src 'unsafe-inline'" }, body: '<script>fetch("/v1/runtimes")</script>' };
    const answer = await rawRequest(platform.url, { method: 'POST', path: '/function/mirror', body: JSON.stringify(response), headers: { 'content-type': 'application/json' } });
    expect(answer.status).toBe(200);
    const policy = String(answer.headers['content-security-policy']);
    expect(policy).toMatch(/^sandbox allow-scripts/);
    expect(policy).toContain("default-src *");
  });

  const refusedCallbacks: Array<[string, (port: string) => string]> = [
    ['the cloud metadata address', () => 'http://169.254.169.254/latest/meta-data/'],
    ['the metadata address as IPv4-mapped IPv6', () => 'http://[::ffff:169.254.169.254]/'],
    ['a private address', () => 'http://10.0.0.1:8080/hook'],
    ['the api itself, by address', (port) => `http://127.0.0.1:${port}/invokeFunction`],
    ['the api itself, as a hexadecimal address', (port) => `http://0x7f000001:${port}/v1/functions/mirror/calls`],
    ['the api itself, as localhost', (port) => `http://localhost:${port}/invokeFunction`],
    ['a name that only starts like localhost', () => 'http://localhost.evil.example/hook'],
    ['credentials in the URL', () => 'http://user:secret@127.0.0.1:9/hook'],
    ['another scheme', () => 'ftp://127.0.0.1/hook'],
    ['no URL at all', () => 'javascript:alert(1)'],
  ];

  test.each(refusedCallbacks)('a callback to %s is refused when the call is made, and no call is made', async (_name, url) => {
    const before = await callCount();
    const answer = await rawRequest(platform.url, {
      method: 'POST',
      path: '/invokeFunction',
      body: JSON.stringify({ funcName: 'mirror', params: {} }),
      headers: { 'content-type': 'application/json', 'x-callback-url': url(apiPort) },
    });
    expect(answer.status).toBe(400);
    expect(answer.json?.error?.code).toBe('CALLBACK_NOT_ALLOWED');
    expect(await callCount()).toBe(before);
  });

  const badPaths: Array<[string, string, number, string]> = [
    ['a name climbing out with an encoded slash', '/function/..%2Fv1%2Fruntimes', 404, 'FUNCTION_NOT_FOUND'],
    ['a name in upper case', '/function/MIRROR', 404, 'FUNCTION_NOT_FOUND'],
  ];

  test.each(badPaths)('%s makes no call and reaches no other route', async (_name, route, status, code) => {
    const before = await callCount();
    const answer = await rawRequest(platform.url, { method: 'DELETE', path: route });
    expect(answer.status).toBe(status);
    expect(answer.json?.error?.code).toBe(code);
    expect(await callCount()).toBe(before);
    expect((await platform.json('GET', '/v1/runtimes')).body.map((r: { name: string }) => r.name)).toEqual(['python']);
  });

  test('dot-dot segments after the name stay below the function: it gets them as its path, no other route is reached', async () => {
    const answer = await rawRequest(platform.url, {
      method: 'DELETE',
      path: '/function/mirror/../../v1/runtimes/python',
      body: JSON.stringify({ statusCode: 200, body: 'inside' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(answer.status).toBe(200);
    expect(answer.body.toString()).toBe('inside');
    const call = await platform.json('GET', `/v1/calls/${answer.headers['x-call-number']}`);
    expect(call.body.params).toMatchObject({ method: 'DELETE', path: '/../../v1/runtimes/python' });
    expect((await platform.json('GET', '/v1/runtimes')).body.map((r: { name: string }) => r.name)).toEqual(['python']);
  });

  test('headers past the server limit are refused with 431 and make no call', async () => {
    const before = await callCount();
    const answer = await rawRequest(platform.url, { method: 'GET', path: '/function/mirror', headers: { 'x-big': 'y'.repeat(20_000) } });
    expect(answer.status).toBe(431);
    expect(await callCount()).toBe(before);
  });
});
