import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { HTTP_TRIGGER_PATHS, httpTriggerHandler, type HttpRequestParams } from '../../api/http-trigger';
import type { Platform } from '../../api/platform';
import { PlatformError } from '../../protocol/errors';
import type { Call, CallStatus, FunctionRecord } from '../../protocol/types';

/**
 * The HTTP endpoint of a function with the platform faked at its seam (findFunction, invoke): what the
 * function receives, and how its answer becomes the response. The real processes are in
 * test/integration/http-trigger.test.ts.
 */

interface Outcome {
  status: CallStatus;
  result?: string;
  error?: string;
}

function fakePlatform(functions: Record<string, Partial<FunctionRecord>>) {
  const seen: Array<{ name: string; params: HttpRequestParams; trigger?: string }> = [];
  let answer: (params: HttpRequestParams) => Outcome | null = () => ({ status: 'DONE', result: 'null' });
  let callNum = 0;
  const platform = {
    hasFunction: (name: string) => name in functions,
    findFunction: async (name: string) => (functions[name] ? ({ functionName: name, ...functions[name] } as FunctionRecord) : null),
    invoke: async (name: string, params: HttpRequestParams, wait: boolean, _key: unknown, options: { trigger?: string }) => {
      expect(wait).toBe(true);
      seen.push({ name, params, trigger: options.trigger });
      callNum += 1;
      const outcome = answer(params);
      const call = { callNum, funcName: name, params, status: 'PENDING', result: '', createdAt: '' } as Call;
      return { call, done: Promise.resolve(outcome ? ({ ...call, result: '', ...outcome } as Call) : null), replayed: false };
    },
  } as unknown as Platform;
  return { platform, seen, answer: (fn: typeof answer) => (answer = fn) };
}

/** A guard standing for authentication: a request without `authorization: Basic ok` is refused. */
const guard = (req: Request, _res: Response, next: NextFunction) =>
  req.get('authorization') === 'Basic ok' ? next() : next(new PlatformError('UNAUTHORIZED', 'credentials missing'));

describe('a function as an HTTP endpoint', () => {
  const fake = fakePlatform({ echo: {}, open: { public: true } });
  let server: Server;
  let base: string;
  const auth = { authorization: 'Basic ok' };

  beforeAll(async () => {
    const app = express();
    app.all(HTTP_TRIGGER_PATHS, httpTriggerHandler(fake.platform, { maxBodyBytes: 1000, guards: [guard], isPlatformUser: (name) => name === 'alice' }));
    app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
      const error = err instanceof PlatformError ? err : new PlatformError('INTERNAL', String(err));
      res.status(error.status).json({ error: { code: error.code, message: error.message } });
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  test('the function gets method, path below it, query, headers and a text body; the platform credentials are not passed', async () => {
    fake.answer(() => ({ status: 'DONE', result: '{"ok":true}' }));
    const response = await fetch(`${base}/function/echo/orders/7?x=1&x=2&y=%C3%A9`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/json', 'x-thing': 'a' }, body: '{"n": 1}' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(response.headers.get('x-call-number')).toMatch(/^\d+$/);
    expect(await response.json()).toEqual({ ok: true });
    const { params, trigger, name } = fake.seen.at(-1)!;
    expect({ name, trigger }).toEqual({ name: 'echo', trigger: 'http' });
    expect(params).toMatchObject({ method: 'PUT', path: '/orders/7', query: { x: ['1', '2'], y: 'é' }, body: '{"n": 1}', isBase64Encoded: false });
    expect(params.headers['x-thing']).toBe('a');
    expect(params.headers.authorization).toBeUndefined();
  });

  test('a binary body goes as base64; no body is an empty text', async () => {
    const bytes = Buffer.from([0, 255, 1, 254, 10]);
    await fetch(`${base}/function/echo`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: bytes });
    expect(fake.seen.at(-1)!.params).toMatchObject({ path: '/', body: bytes.toString('base64'), isBase64Encoded: true });
    // Declared text that is not UTF-8 is not text either.
    await fetch(`${base}/function/echo`, { method: 'POST', headers: { ...auth, 'content-type': 'text/plain' }, body: Buffer.from([0xc3, 0x28]) });
    expect(fake.seen.at(-1)!.params).toMatchObject({ body: 'wyg=', isBase64Encoded: true });
    await fetch(`${base}/function/echo`, { headers: auth });
    expect(fake.seen.at(-1)!.params).toMatchObject({ method: 'GET', body: '', isBase64Encoded: false, query: {} });
  });

  test('a {statusCode, headers, body} answer is the response; the page stays sandboxed', async () => {
    fake.answer(() => ({ status: 'DONE', result: JSON.stringify({ statusCode: 201, headers: { 'Content-Type': 'text/html', 'X-Made': ['a', 'b'], 'Content-Security-Policy': "img-src 'none'" }, body: '<p>made</p>' }) }));
    const response = await fetch(`${base}/function/echo`, { method: 'POST', headers: auth });
    expect(response.status).toBe(201);
    expect(response.headers.get('content-type')).toBe('text/html');
    expect(response.headers.get('x-made')).toBe('a, b');
    expect(response.headers.get('content-security-policy')).toMatch(/^sandbox allow-scripts.*, img-src 'none'$/);
    expect(await response.text()).toBe('<p>made</p>');

    fake.answer(() => ({ status: 'DONE', result: JSON.stringify({ statusCode: 200, body: Buffer.from([1, 2, 3]).toString('base64'), isBase64Encoded: true }) }));
    const binary = await fetch(`${base}/function/echo`, { headers: auth });
    expect(binary.headers.get('content-type')).toBe('application/octet-stream');
    expect(Buffer.from(await binary.arrayBuffer())).toEqual(Buffer.from([1, 2, 3]));

    fake.answer(() => ({ status: 'DONE', result: JSON.stringify({ statusCode: 404, body: { missing: 'order' } }) }));
    const json = await fetch(`${base}/function/echo`, { headers: auth });
    expect(json.status).toBe(404);
    expect(await json.json()).toEqual({ missing: 'order' });
  });

  test('any other value is JSON with 200; text that is not JSON (process mode) is text', async () => {
    fake.answer(() => ({ status: 'DONE', result: '[1,2]' }));
    expect(await (await fetch(`${base}/function/echo`, { headers: auth })).json()).toEqual([1, 2]);
    fake.answer(() => ({ status: 'DONE', result: 'hello\n' }));
    const text = await fetch(`${base}/function/echo`, { headers: auth });
    expect(text.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await text.text()).toBe('hello\n');
  });

  test('a response the platform cannot send is a 502 BAD_FUNCTION_RESPONSE, and none of it is sent', async () => {
    for (const bad of [
      { statusCode: 99 },
      { statusCode: 'ok' },
      { statusCode: 200, headers: { 'Bad Name': 'x' } },
      { statusCode: 200, headers: { 'X-Split': 'a\r\nSet-Cookie: x=1' } },
      { statusCode: 200, headers: { 'Content-Length': '3' } },
      { statusCode: 200, headers: ['x'] },
      { statusCode: 200, body: '!!', isBase64Encoded: true },
    ]) {
      fake.answer(() => ({ status: 'DONE', result: JSON.stringify(bad) }));
      const response = await fetch(`${base}/function/echo`, { headers: auth });
      expect([JSON.stringify(bad), response.status]).toEqual([JSON.stringify(bad), 502]);
      expect((await response.json()).error.code).toBe('BAD_FUNCTION_RESPONSE');
      expect(response.headers.get('set-cookie')).toBeNull();
    }
  });

  test('an error is 502 with its first line, a timeout 504; a public endpoint does not tell the error', async () => {
    fake.answer(() => ({ status: 'ERROR', error: 'ValueError: no\nTraceback...' }));
    const failed = await fetch(`${base}/function/echo`, { headers: auth });
    expect(failed.status).toBe(502);
    expect((await failed.json()).error).toEqual({ code: 'FUNCTION_FAILED', message: expect.stringMatching(/failed: ValueError: no$/) });
    expect(failed.headers.get('x-call-number')).toMatch(/^\d+$/);
    const open = await fetch(`${base}/function/open`);
    expect(open.status).toBe(502);
    expect((await open.json()).error.message).not.toContain('ValueError');

    fake.answer(() => ({ status: 'TIMEOUT' }));
    expect((await fetch(`${base}/function/echo`, { headers: auth })).status).toBe(504);
    fake.answer(() => null);
    const waiting = await fetch(`${base}/function/echo`, { headers: auth });
    expect(waiting.status).toBe(504);
    expect((await waiting.json()).error.message).toMatch(/still running/);
  });

  test('guards: a function that is not public needs them, an unknown one is told only past them; a public one needs none and sees Authorization', async () => {
    const before = fake.seen.length;
    expect((await fetch(`${base}/function/echo`)).status).toBe(401);
    expect((await fetch(`${base}/function/nosuch`)).status).toBe(401);
    const unknown = await fetch(`${base}/function/nosuch`, { headers: auth });
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).error.code).toBe('FUNCTION_NOT_FOUND');
    expect(fake.seen.length).toBe(before);
    fake.answer(() => ({ status: 'DONE', result: '"hi"' }));
    const open = await fetch(`${base}/function/open/x`, { headers: { authorization: 'Bearer theirs' } });
    expect(open.status).toBe(200);
    expect(fake.seen.at(-1)!.params.headers.authorization).toBe('Bearer theirs');
    // A browser may send the platform's credentials it cached to a public endpoint: they are withheld.
    await fetch(`${base}/function/open`, { headers: { authorization: `Basic ${Buffer.from('alice:s3cret').toString('base64')}` } });
    expect(fake.seen.at(-1)!.params.headers.authorization).toBeUndefined();
    await fetch(`${base}/function/open`, { headers: { authorization: `Basic ${Buffer.from('bob:theirs').toString('base64')}` } });
    expect(fake.seen.at(-1)!.params.headers.authorization).toBe(`Basic ${Buffer.from('bob:theirs').toString('base64')}`);
  });

  test('a body past the limit is 413 and makes no call', async () => {
    const before = fake.seen.length;
    const response = await fetch(`${base}/function/open`, { method: 'POST', body: 'x'.repeat(1001) });
    expect(response.status).toBe(413);
    expect((await response.json()).error.code).toBe('PAYLOAD_TOO_LARGE');
    expect(fake.seen.length).toBe(before);
  });
});
