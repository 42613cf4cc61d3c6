import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

/** Callbacks of async calls against the real processes, with a receiver on loopback. */
const PYTHON = { name: 'python', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 /opt/faas/handler.py', mode: 'handler' };

describe('callbacks', () => {
  let platform: TestPlatform;
  let receiver: http.Server;
  let hook: string;
  const received: Array<{ path: string; body: any; attempt: string }> = [];
  /** Statuses the receiver answers, in turn, per path; 200 once they run out. */
  const answers = new Map<string, number[]>();

  beforeAll(async () => {
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push({ path: req.url ?? '', body: JSON.parse(body), attempt: String(req.headers['x-callback-attempt']) });
        res.statusCode = answers.get(req.url ?? '')?.shift() ?? 200;
        res.end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    platform = await TestPlatform.start();
    expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-cb-fn-'));
    writeFileSync(path.join(dir, 'handler.py'), 'def handle(params):\n    if params.get("fail"):\n        raise ValueError("asked to fail")\n    return {"doubled": params.get("n", 0) * 2}\n');
    expect((await platform.upload('python', 'double', await tarGzOf(dir), 'p.tar.gz')).status).toBe(201);
  }, 120_000);

  afterAll(async () => {
    await platform?.stop();
    await new Promise((resolve) => receiver?.close(resolve));
  });

  test('the final call is POSTed to X-Callback-Url; a receiver failing twice gets it on the third attempt, and the call shows each attempt', async () => {
    answers.set('/flaky', [500, 502]);
    const response = await fetch(`${platform.url}/invokeFunction`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-callback-url': `${hook}/flaky` },
      body: JSON.stringify({ funcName: 'double', params: { n: 21 } }),
    });
    expect(response.status).toBe(202);
    const { callNum } = await response.json();
    const delivered = await until(async () => (await platform.json('GET', `/v1/calls/${callNum}`)).body, (call) => call.callback?.state === 'delivered', 30_000, 'the delivery');
    expect(delivered.callbackUrl).toBe(`${hook}/flaky`);
    expect(delivered.callback.attempts.map((a: { status: number }) => a.status)).toEqual([500, 502, 200]);
    const got = received.filter((r) => r.path === '/flaky');
    expect(got.map((r) => r.attempt)).toEqual(['1', '2', '3']);
    expect(got[2]!.body).toMatchObject({ callNum, status: 'DONE', result: '{"doubled":42}' });
  }, 60_000);

  test('callbackUrl in the body works the same, for a call that fails too', async () => {
    const started = await platform.json('POST', '/v1/functions/double/calls', { params: { fail: true }, callbackUrl: `${hook}/body` });
    expect(started.status).toBe(202);
    const got = await until(async () => received.filter((r) => r.path === '/body'), (list) => list.length >= 1, 30_000, 'the callback');
    expect(got[0]!.body).toMatchObject({ callNum: started.body.callNum, status: 'ERROR' });
    expect(got[0]!.body.error).toContain('asked to fail');
  }, 60_000);

  test('a destination the operator did not allow is refused at invoke time, and no call is made', async () => {
    const before = (await platform.json('GET', '/v1/calls?function=double&limit=1000')).body.calls.length;
    for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://10.1.2.3/hook', 'file:///etc/passwd']) {
      const refused = await fetch(`${platform.url}/invokeFunction`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-callback-url': url }, body: JSON.stringify({ funcName: 'double', params: {} }) });
      expect([url, refused.status]).toEqual([url, 400]);
      expect((await refused.json()).error.code).toBe('CALLBACK_NOT_ALLOWED');
    }
    expect((await platform.json('GET', '/v1/calls?function=double&limit=1000')).body.calls.length).toBe(before);
  });
});
