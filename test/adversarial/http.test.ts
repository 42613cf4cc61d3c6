import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as zmq from 'zeromq';
import { hashPassword } from '../../api/auth';
import { PROJECT_ROOT } from '../../cli/actions/images';
import { clientCurveOptions } from '../../protocol/curve';
import { encodeRequest } from '../../protocol/envelope';
import { FIXTURES, tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

/**
 * Hostile HTTP clients and careless operators: credentials, bodies, headers, rate limits, and a
 * configuration that would expose the platform, on the real api and db-service processes.
 */

const PROC = { name: 'pyproc', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py', mode: 'process' };

function basic(user: string, password: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
}

async function raw(url: string, init: RequestInit = {}): Promise<{ status: number; text: string; headers: Headers }> {
  const response = await fetch(url, init);
  return { status: response.status, text: await response.text(), headers: response.headers };
}

/** Starts a process of the platform with this environment and expects it to refuse to start. */
function refusesToStart(service: 'api' | 'db-service' | 'worker', env: NodeJS.ProcessEnv): { status: number | null; stderr: string } {
  const result = spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'dist', service, 'main.js')], {
    env: { PATH: process.env.PATH, FAAS_API_PORT: '0', ...env },
    timeout: 15_000,
    encoding: 'utf8',
  });
  return { status: result.status, stderr: result.stderr };
}

describe('adversarial: the HTTP api with users', () => {
  let platform: TestPlatform;

  beforeAll(async () => {
    const hash = await hashPassword('correct horse');
    platform = await TestPlatform.start({ services: ['db', 'api'], env: { FAAS_AUTH_USERS: `alice:${hash}` } });
    await platform.waitApi();
  });
  afterAll(async () => platform?.stop());

  test('no credentials: 401 with WWW-Authenticate, on every route but /health', async () => {
    for (const route of ['/functions', '/runtimes', '/calls', '/call/1', '/workers', `/packages/${'a'.repeat(64)}`]) {
      const answer = await raw(`${platform.url}${route}`);
      expect({ route, status: answer.status }).toEqual({ route, status: 401 });
      expect(answer.headers.get('www-authenticate')).toMatch(/^Basic realm="faas"/);
      expect(JSON.parse(answer.text)).toEqual({ error: { code: 'UNAUTHORIZED', message: expect.any(String) } });
    }
    const post = await raw(`${platform.url}/invokeFunction`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"funcName":"x"}' });
    expect(post.status).toBe(401);
  });

  test('/health answers without credentials (503 here: no worker is connected)', async () => {
    const answer = await raw(`${platform.url}/health`);
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.text)).toMatchObject({ status: expect.any(String) });
  });

  test('the right password lets the user in', async () => {
    const answer = await raw(`${platform.url}/functions`, { headers: basic('alice', 'correct horse') });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toEqual([]);
  });

  test('a wrong password of the same length: 401', async () => {
    expect((await raw(`${platform.url}/functions`, { headers: basic('alice', 'correct horsf') })).status).toBe(401);
  });

  test('a wrong password of another length (short, long, empty): 401, never a 500', async () => {
    for (const password of ['x', 'correct horse battery staple'.repeat(40), '']) {
      const answer = await raw(`${platform.url}/functions`, { headers: basic('alice', password) });
      expect(answer.status).toBe(401);
      expect(JSON.parse(answer.text).error.code).toBe('UNAUTHORIZED');
    }
  });

  test('an unknown user: 401', async () => {
    expect((await raw(`${platform.url}/functions`, { headers: basic('mallory', 'correct horse') })).status).toBe(401);
  });

  test('malformed Authorization headers: 401, never a 500', async () => {
    for (const header of ['Basic', 'Basic !!!not-base64!!!', `Basic ${Buffer.from('no-colon').toString('base64')}`, 'Bearer abc', `Basic ${'A'.repeat(5000)}`]) {
      const answer = await raw(`${platform.url}/functions`, { headers: { authorization: header } });
      expect({ header: header.slice(0, 20), status: answer.status }).toEqual({ header: header.slice(0, 20), status: 401 });
    }
  });

  test('oversize params: 413 PAYLOAD_TOO_LARGE, nothing created', async () => {
    const params = { blob: 'x'.repeat(2 * 1024 * 1024) };
    const answer = await raw(`${platform.url}/invokeFunction`, {
      method: 'POST',
      headers: { ...basic('alice', 'correct horse'), 'content-type': 'application/json' },
      body: JSON.stringify({ funcName: 'anything', params }),
    });
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.text).error.code).toBe('PAYLOAD_TOO_LARGE');
    const calls = await raw(`${platform.url}/calls`, { headers: basic('alice', 'correct horse') });
    expect(JSON.parse(calls.text)).toEqual({});
  });

  test('malformed JSON: 400 INVALID_JSON without a stack or a file path', async () => {
    const answer = await raw(`${platform.url}/invokeFunction`, {
      method: 'POST',
      headers: { ...basic('alice', 'correct horse'), 'content-type': 'application/json' },
      body: '{"funcName": "x", params: ',
    });
    expect(answer.status).toBe(400);
    const body = JSON.parse(answer.text);
    expect(body).toEqual({ error: { code: 'INVALID_JSON', message: expect.any(String) } });
    expect(answer.text).not.toMatch(/at .*\.js|\/work\/|node_modules|dist\//);
  });

  test('bad names are refused with 400 INVALID_NAME', async () => {
    const auth = { ...basic('alice', 'correct horse'), 'content-type': 'application/json' };
    for (const name of ['Upper', '-dash', 'a'.repeat(64), 'dot.dot', 'sp ace']) {
      const answer = await raw(`${platform.url}/registerRuntime`, { method: 'POST', headers: auth, body: JSON.stringify({ ...PROC, name }) });
      expect({ name, status: answer.status, code: JSON.parse(answer.text).error?.code }).toEqual({ name, status: 400, code: 'INVALID_NAME' });
    }
  });

  test("helmet's security headers are on every answer, errors included", async () => {
    for (const route of ['/health', '/functions', '/no-such-route']) {
      const answer = await raw(`${platform.url}${route}`, { headers: basic('alice', 'correct horse') });
      expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
      expect(answer.headers.get('x-frame-options')).toBe('SAMEORIGIN');
      expect(answer.headers.get('content-security-policy')).toContain("default-src 'self'");
      expect(answer.headers.get('x-powered-by')).toBeNull();
    }
  });
});

describe('adversarial: a per-user rate limit', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    const hash = await hashPassword('pw');
    platform = await TestPlatform.start({ services: ['db', 'api'], env: { FAAS_AUTH_USERS: `bob:${hash},carol:${hash}`, FAAS_RATE_LIMIT_PER_MINUTE: '5' } });
    await platform.waitApi();
  });
  afterAll(async () => platform?.stop());

  test('past the limit a user gets 429 RATE_LIMITED with Retry-After; another user is not affected', async () => {
    const statuses: number[] = [];
    let last: Awaited<ReturnType<typeof raw>> | undefined;
    for (let i = 0; i < 7; i++) {
      last = await raw(`${platform.url}/functions`, { headers: basic('bob', 'pw') });
      statuses.push(last.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
    expect(JSON.parse(last!.text).error.code).toBe('RATE_LIMITED');
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await raw(`${platform.url}/functions`, { headers: basic('carol', 'pw') })).status).toBe(200);
  });
});

describe('adversarial: configurations that would expose the platform refuse to start', () => {
  test('an api on a non-loopback address without users refuses to start', () => {
    const { status, stderr } = refusesToStart('api', { FAAS_API_HOST: '0.0.0.0' });
    expect(status).toBe(2);
    expect(stderr).toContain('FAAS_ALLOW_UNAUTHENTICATED');
  });

  test('a worker channel bound beyond loopback without CURVE keys refuses to start', () => {
    const { status, stderr } = refusesToStart('db-service', { FAAS_DB_ENDPOINT: 'tcp://0.0.0.0:5999', FAAS_DB_DIR: '/nonexistent/never-made' });
    expect(status).toBe(2);
    expect(stderr).toContain('FAAS_CURVE_PUBLIC_KEY');
  });

  test('bad limit values refuse to start with a message naming the variable', () => {
    const cases: Array<['api' | 'worker', string, string]> = [
      ['api', 'FAAS_MAX_MEMORY_MB', 'lots'],
      ['api', 'FAAS_MAX_UPLOAD_BYTES', '-1'],
      ['worker', 'FAAS_PIDS_LIMIT', '2'],
      ['worker', 'FAAS_FUNCTION_USER', '0:0'],
      ['worker', 'FAAS_CPUS', 'many'],
    ];
    for (const [service, name, value] of cases) {
      const { status, stderr } = refusesToStart(service, { [name]: value });
      expect({ name, status }).toEqual({ name, status: 2 });
      expect(stderr).toContain(name);
    }
  });

  test('users given without a scrypt hash refuse to start', () => {
    const { status, stderr } = refusesToStart('api', { FAAS_AUTH_USERS: 'alice:plaintext-password' });
    expect(status).toBe(2);
    expect(stderr).toContain('faas hash-password');
  });
});

describe('adversarial: ZeroMQ channels with CURVE keys and an allow-list', () => {
  const keys = zmq.curveKeyPair();
  const workerKeys = zmq.curveKeyPair();
  let platform: TestPlatform;
  beforeAll(async () => {
    // The servers hold the cluster pair and the allow-list; the worker only the public key and its own pair.
    platform = await TestPlatform.start({
      services: ['db', 'api'],
      env: { FAAS_CURVE_PUBLIC_KEY: keys.publicKey, FAAS_CURVE_SECRET_KEY: keys.secretKey, FAAS_CURVE_ALLOWED_KEYS: `worker:${workerKeys.publicKey}` },
    });
    platform.spawn('worker', { FAAS_CURVE_SECRET_KEY: '', FAAS_CURVE_ALLOWED_KEYS: '', FAAS_CURVE_CLIENT_PUBLIC_KEY: workerKeys.publicKey, FAAS_CURVE_CLIENT_SECRET_KEY: workerKeys.secretKey });
    await platform.waitHealthy();
  });
  afterAll(async () => platform?.stop());

  /** Sends a db request as this peer and returns the reply, or undefined when none came within two seconds. */
  /** How long an answer that must come may take on a loaded machine. */
  const ANSWERED_MS = 20_000;

  /**
   * One request to db-service with these socket options: its answer, or undefined after `waitMs`. Where
   * the behaviour under test is silence, the bound is the test (two seconds); where an answer is
   * expected, a long bound costs nothing when it comes and spares a loaded machine a false failure.
   */
  async function dbAnswer(options: Record<string, unknown>, msgType = 'ping', content: unknown = {}, waitMs = 2000): Promise<{ ok: boolean; error?: { code: string } } | undefined> {
    const dealer = new zmq.Dealer({ linger: 0, ...options });
    dealer.connect(platform.env.FAAS_DB_ENDPOINT!);
    await dealer.send(encodeRequest('probe', msgType, content));
    const reply = dealer.receive().then(
      ([frame]) => JSON.parse(frame!.toString()) as { ok: boolean; error?: { code: string } },
      () => undefined,
    );
    const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), waitMs));
    const result = await Promise.race([reply, timeout]);
    dealer.close();
    return result;
  }

  /** Invokes echo and waits for the call to end (past the wait bound too: on a loaded machine the first build is slow). */
  async function echo(params: unknown): Promise<{ status: string; result: string }> {
    const answer = await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'echo', params });
    if (answer.body.status === 'DONE') return answer.body;
    expect(answer.body.callNum).toEqual(expect.any(Number));
    const ended = await until(
      () => platform.json('GET', `/call/${answer.body.callNum}`),
      (r) => !['PENDING', 'RUNNING'].includes(r.body.status),
      120_000,
      `call ${answer.body.callNum} ending`,
    );
    return ended.body;
  }

  function dbLog(): string {
    return readFileSync(path.join(platform.dataDir, 'db.log'), 'utf8');
  }

  test('the platform works end to end over encrypted channels', async () => {
    expect((await platform.json('POST', '/registerRuntime', PROC)).status).toBe(201);
    expect((await platform.upload('pyproc', 'echo', await tarGzOf(path.join(FIXTURES, 'echo')))).status).toBe(201);
    const answer = await echo({ over: 'curve' });
    expect(answer.status).toBe('DONE');
    expect(JSON.parse(answer.result).params).toEqual({ over: 'curve' });
  });

  test('a plain-text peer gets no answer from db-service', async () => {
    expect(await dbAnswer({})).toBeUndefined();
  });

  test('a peer with the wrong server key gets no answer from db-service', async () => {
    const own = zmq.curveKeyPair();
    const wrong = zmq.curveKeyPair();
    expect(await dbAnswer({ curveServerKey: wrong.publicKey, curvePublicKey: own.publicKey, curveSecretKey: own.secretKey })).toBeUndefined();
  });

  test('a peer holding only the public server key gets no answer from db-service, and is logged', async () => {
    const own = zmq.curveKeyPair();
    expect(await dbAnswer(clientCurveOptions(curveEnv(own), { proveKey: true }))).toBeUndefined();
    const log = await until(async () => dbLog(), (text) => text.includes(own.publicKey), 10_000, 'db-service logging the refused key');
    expect(log).toMatch(/"msg":"CURVE handshake refused"/);
  });

  test('the worker key is answered by db-service within its role, and refused the rest', async () => {
    // Each socket proves its key with a routing id of its own, as every client makes one: a second socket
    // under the id of one just closed would be refused by the ROUTER until it noticed the first was gone.
    const asWorker = () => clientCurveOptions(curveEnv(workerKeys), { proveKey: true });
    expect(await dbAnswer(asWorker(), 'ping', {}, ANSWERED_MS)).toMatchObject({ ok: true });
    expect(await dbAnswer(asWorker(), 'putRuntime', { runtime: { ...PROC, name: 'evil', registeredAt: new Date().toISOString() } }, ANSWERED_MS)).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await dbAnswer(asWorker(), 'deleteFunction', { name: 'echo' }, ANSWERED_MS)).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect((await platform.json('GET', '/runtimes')).body.map((r: { name: string }) => r.name)).not.toContain('evil');
  });

  test('a peer holding only the public server key cannot register as a worker; the real worker still serves calls', async () => {
    const own = zmq.curveKeyPair();
    const rogue = new zmq.Dealer({ linger: 0, routingId: 'rogue-node:1', ...clientCurveOptions(curveEnv(own)) });
    rogue.connect(platform.env.FAAS_WORKER_ENDPOINT!);
    await rogue.send(encodeRequest('hello-1', 'hello', { nodeId: 'rogue-node', capacity: 1024, pid: 1 }));
    const welcome = rogue.receive().then(
      () => true,
      () => false,
    );
    await until(async () => readFileSync(path.join(platform.dataDir, 'api.log'), 'utf8'), (log) => log.includes(own.publicKey), 10_000, 'the api logging the refused key');
    const workers = (await platform.json('GET', '/workers')).body as Array<{ nodeId: string }>;
    expect(workers.map((w) => w.nodeId)).toEqual([platform.env.FAAS_NODE_ID]);
    const answer = await echo({ after: 'rogue' });
    expect(answer.status).toBe('DONE');
    expect(JSON.parse(answer.result).params).toEqual({ after: 'rogue' });
    expect(await Promise.race([welcome, Promise.resolve('nothing yet')])).toBe('nothing yet');
    rogue.close();
  });

  test('CURVE keys without an allow-list, or a worker without its own pair, refuse to start', () => {
    const cluster = { FAAS_CURVE_PUBLIC_KEY: keys.publicKey, FAAS_CURVE_SECRET_KEY: keys.secretKey };
    for (const service of ['api', 'db-service'] as const) {
      const { status, stderr } = refusesToStart(service, { ...cluster, FAAS_DB_DIR: '/nonexistent/never-made' });
      expect({ service, status }).toEqual({ service, status: 2 });
      expect(stderr).toContain('FAAS_CURVE_ALLOWED_KEYS');
    }
    const worker = refusesToStart('worker', { FAAS_CURVE_PUBLIC_KEY: keys.publicKey, FAAS_NODE_ID: 'n1' });
    expect(worker.status).toBe(2);
    expect(worker.stderr).toContain('FAAS_CURVE_CLIENT_PUBLIC_KEY');
  });

  function curveEnv(pair: { publicKey: string; secretKey: string }): NodeJS.ProcessEnv {
    return { FAAS_CURVE_PUBLIC_KEY: keys.publicKey, FAAS_CURVE_CLIENT_PUBLIC_KEY: pair.publicKey, FAAS_CURVE_CLIENT_SECRET_KEY: pair.secretKey };
  }
});
