import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { backoffMs, CallbackSender, callbackPolicy, checkCallbackUrl } from '../../api/callbacks';
import { PlatformError } from '../../protocol/errors';
import type { Logger } from '../../protocol/log';
import type { CallbackRecord } from '../../protocol/schemas';
import type { Call } from '../../protocol/types';
import { freePort } from '../helpers/ports';
import { until } from '../helpers/until';

/** Callbacks: which URLs are allowed, the backoff, and deliveries to a real local receiver. */

const log = { warn: jest.fn(), info: jest.fn() } as unknown as Logger;

describe('callback destinations', () => {
  test('loopback is allowed by default; other hosts only when listed; never other schemes or credentials', () => {
    const none = callbackPolicy('');
    for (const url of ['http://127.0.0.1:9000/hook', 'http://localhost/x', 'https://[::1]:8443/', 'http://api.localhost/']) expect(checkCallbackUrl(url, none)).toBe(new URL(url).toString());
    for (const url of ['http://10.0.0.5/', 'http://169.254.169.254/latest/meta-data', 'http://hooks.example.com/', 'http://0.0.0.0/', 'http://127.0.0.1.nip.io/']) {
      expect(() => checkCallbackUrl(url, none)).toThrow(/not allowed: the operator lists allowed hosts in FAAS_CALLBACK_ALLOW/);
    }
    const listed = callbackPolicy('hooks.example.com, *.corp.test, 10.0.0.5');
    for (const url of ['https://hooks.example.com/a', 'http://ci.corp.test/b', 'http://10.0.0.5:8080/']) expect(() => checkCallbackUrl(url, listed)).not.toThrow();
    for (const url of ['https://evilhooks.example.com/', 'http://corp.test/', 'http://10.0.0.6/']) expect(() => checkCallbackUrl(url, listed)).toThrow(PlatformError);
    for (const [url, why] of [
      ['file:///etc/passwd', /http or https/],
      ['gopher://127.0.0.1/', /http or https/],
      ['http://user:pw@127.0.0.1/', /credentials/],
      ['not a url', /not a URL/],
      [`http://127.0.0.1/${'x'.repeat(2100)}`, /2048/],
    ] as const) {
      expect(() => checkCallbackUrl(url, callbackPolicy('*'))).toThrow(why);
    }
    expect(checkCallbackUrl('http://anything.example/', callbackPolicy('*'))).toBe('http://anything.example/');
    // The api itself (its own port on loopback) would make a call of each call's end, for ever.
    for (const url of ['http://127.0.0.1:3000/invokeFunction', 'http://localhost:3000/v1/functions/f/calls', 'http://[::1]:3000/']) {
      expect(() => checkCallbackUrl(url, none, 3000)).toThrow(/the platform itself/);
    }
    expect(checkCallbackUrl('http://127.0.0.1:3001/hook', none, 3000)).toBe('http://127.0.0.1:3001/hook');
  });

  test('the wait doubles from the base up to the cap, a random part of it taken (full jitter)', () => {
    expect([1, 2, 3, 4, 10].map((n) => backoffMs(n, 1000, 30_000, () => 1))).toEqual([1000, 2000, 4000, 8000, 30_000]);
    expect(backoffMs(3, 1000, 30_000, () => 0.5)).toBe(2000);
    expect(backoffMs(3, 1000, 30_000, () => 0)).toBe(0);
  });
});

describe('deliveries', () => {
  let server: http.Server;
  let url: string;
  const received: Array<{ body: any; attempt: string | undefined }> = [];
  let answers: number[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push({ body: JSON.parse(body), attempt: req.headers['x-callback-attempt'] as string | undefined });
        res.statusCode = answers.shift() ?? 200;
        res.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  const call = (callNum: number): Call => ({ callNum, funcName: 'f', params: {}, status: 'DONE', result: '42', createdAt: new Date().toISOString(), callbackUrl: url });

  test('a receiver that fails twice gets the final call on the third attempt; each attempt is recorded', async () => {
    answers = [500, 503];
    received.length = 0;
    const saved: CallbackRecord[] = [];
    const sender = new CallbackSender({ log, maxMs: 60_000, baseDelayMs: 20, maxDelayMs: 50, save: async (r) => void saved.push(structuredClone(r)) });
    sender.deliver(call(7), { callNum: 7, url, state: 'pending', attempts: [] });
    // Delivered twice at once is one delivery.
    sender.deliver(call(7), { callNum: 7, url, state: 'pending', attempts: [] });
    await until(async () => saved.at(-1)?.state, (state) => state === 'delivered', 10_000, 'the delivery');
    expect(received.map((r) => r.attempt)).toEqual(['1', '2', '3']);
    expect(received[2]!.body).toMatchObject({ callNum: 7, status: 'DONE', result: '42' });
    expect(saved.at(-1)!.attempts.map((a) => a.status)).toEqual([500, 503, 200]);
    expect(saved.map((r) => r.state)).toEqual(['pending', 'pending', 'delivered']);
    sender.close();
  });

  test('a receiver that never answers 2xx is given up after the bounded time; an unreachable one records its error', async () => {
    answers = Array(100).fill(500);
    const saved: CallbackRecord[] = [];
    const sender = new CallbackSender({ log, maxMs: 300, baseDelayMs: 20, maxDelayMs: 40, save: async (r) => void saved.push(structuredClone(r)) });
    sender.deliver(call(8), { callNum: 8, url, state: 'pending', attempts: [] });
    await until(async () => saved.at(-1)?.state, (state) => state === 'failed', 10_000, 'the give-up');
    expect(saved.at(-1)!.attempts.length).toBeGreaterThanOrEqual(2);
    expect(saved.at(-1)!.attempts.every((a) => a.status === 500)).toBe(true);

    const unused = `http://127.0.0.1:${await freePort()}/`;
    const closed = new CallbackSender({ log, maxMs: 100, baseDelayMs: 10, maxDelayMs: 20, save: async (r) => void saved.push(structuredClone(r)) });
    closed.deliver({ ...call(9), callbackUrl: unused }, { callNum: 9, url: unused, state: 'pending', attempts: [] });
    await until(async () => saved.filter((r) => r.callNum === 9).at(-1)?.state, (state) => state === 'failed', 10_000, 'the unreachable give-up');
    expect(saved.filter((r) => r.callNum === 9).at(-1)!.attempts[0]!.error).toBe('ECONNREFUSED');
    answers = [];
    sender.close();
    closed.close();
  });

  test('a record already delivered or given up is not delivered again', async () => {
    received.length = 0;
    const sender = new CallbackSender({ log, maxMs: 1000, save: async () => undefined });
    sender.deliver(call(10), { callNum: 10, url, state: 'delivered', attempts: [] });
    sender.deliver(call(11), { callNum: 11, url, state: 'failed', attempts: [] });
    expect(sender.pending).toBe(0);
    sender.close();
    expect(received).toEqual([]);
  });
});
