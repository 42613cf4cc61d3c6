import { createHash } from 'node:crypto';
import path from 'node:path';
import { hashPassword } from '../../api/auth';
import { FIXTURES, tarGzOf } from '../helpers/archives';
import { multipart, rawRequest, type RawAnswer } from '../helpers/http-raw';
import { TestPlatform } from '../helpers/platform';

/**
 * Password guessing against the real api: lockouts per address and per user name before any hash
 * runs, wrong pairs remembered, one scrypt at a time with a bounded queue, and the users the guesses
 * are not aimed at (or are aimed at, with credentials verified before) served as usual. Work is
 * asserted through the api's counters, never through timings. Each client is a loopback source
 * address of its own (127.0.0.x).
 */

const MAX_FAILURES = 5;

function basic(user: string, password: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
}

describe('adversarial: password guessing', () => {
  let platform: TestPlatform;
  let sha: string;
  let pkg: Buffer;
  let nextAddress = 10;
  /** A loopback source address no other case uses: a client of its own. */
  const client = () => `127.0.0.${nextAddress++}`;

  const req = (options: Parameters<typeof rawRequest>[1]): Promise<RawAnswer> => rawRequest(platform.url, options);
  const as = (user: string, password: string, from: string, route = '/functions') => req({ path: route, headers: basic(user, password), from });

  /** The api's auth counters, read with bob's credentials (verified before: no hash runs for the scrape). */
  async function counters(): Promise<{ scrypt: number; locked: number; busy: number; knownWrong: number }> {
    const text = (await req({ path: '/metrics', headers: basic('bob', 'bob password') })).text;
    const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? 0);
    return {
      scrypt: value(/^faas_auth_scrypt_total (\d+)/m),
      locked: value(/^faas_auth_refused_total\{reason="locked"\} (\d+)/m),
      busy: value(/^faas_auth_refused_total\{reason="busy"\} (\d+)/m),
      knownWrong: value(/^faas_auth_refused_total\{reason="known_wrong"\} (\d+)/m),
    };
  }

  beforeAll(async () => {
    const users = await Promise.all(['alice', 'bob', 'carol', 'frank'].map(async (name) => `${name}:${await hashPassword(`${name} password`)}`));
    platform = await TestPlatform.start({
      services: ['db', 'api'],
      env: { FAAS_AUTH_USERS: users.join(','), FAAS_AUTH_MAX_FAILURES: String(MAX_FAILURES), FAAS_AUTH_LOCKOUT_MS: '600000' },
    });
    await platform.waitApi();
    // bob verified once: from now on his credentials answer from memory.
    expect((await as('bob', 'bob password', '127.0.0.1')).status).toBe(200);
    const runtime = { name: 'pyproc', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py' };
    const auth = basic('bob', 'bob password');
    expect((await req({ method: 'POST', path: '/registerRuntime', body: JSON.stringify(runtime), headers: { ...auth, 'content-type': 'application/json' } })).status).toBe(201);
    pkg = await tarGzOf(path.join(FIXTURES, 'echo'));
    const form = multipart([], { field: 'module', name: 'echo.tar.gz', data: pkg });
    const fn = await req({ method: 'POST', path: '/registerFunction/pyproc/echo', body: form.body, headers: { ...auth, 'content-type': form.type } });
    expect(fn.status).toBe(201);
    sha = fn.json.version;
  });
  afterAll(async () => platform?.stop());

  test('a burst of 40 guesses gets 429 past the bound, runs scrypt at most the bound, and another user downloads packages throughout', async () => {
    const guesser = client();
    const before = await counters();
    const guesses = Array.from({ length: 40 }, (_, i) => as('alice', `guess ${i}`, guesser));
    // bob, from the same address, fetches the package as a worker would, during the burst.
    const downloads = Array.from({ length: 20 }, () => req({ path: `/packages/${sha}`, headers: basic('bob', 'bob password'), from: guesser }));
    const answers = await Promise.all(guesses);
    const fetched = await Promise.all(downloads);
    const after = await counters();

    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => ![401, 429, 503].includes(s))).toEqual([]);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(MAX_FAILURES);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    const locked = answers.find((a) => a.status === 429)!;
    expect(locked.json).toEqual({ error: { code: 'AUTH_LOCKED', message: expect.any(String) } });
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
    // Every guess was answered, and scrypt ran once per 401 at most: never once per request.
    expect(after.scrypt - before.scrypt).toBeLessThanOrEqual(MAX_FAILURES);
    expect(after.scrypt - before.scrypt + (after.locked - before.locked) + (after.busy - before.busy)).toBe(40);
    for (const download of fetched) {
      expect(download.status).toBe(200);
      expect(createHash('sha256').update(download.body).digest('hex')).toBe(sha);
    }
  });

  test('while locked out, even the right password (never verified before) is refused without a hash; bob is not', async () => {
    const guesser = `127.0.0.${nextAddress - 1}`;
    const before = await counters();
    const right = await as('alice', 'alice password', guesser);
    expect(right.status).toBe(429);
    // The name alice is locked everywhere, not only at the guessing address.
    expect((await as('alice', 'alice password', client())).status).toBe(429);
    expect((await as('bob', 'bob password', guesser)).status).toBe(200);
    const after = await counters();
    expect(after.scrypt - before.scrypt).toBe(0);
    expect(after.locked - before.locked).toBe(2);
  });

  test('a user name is locked out across addresses: one guess from each of many addresses', async () => {
    const before = await counters();
    for (let i = 0; i < MAX_FAILURES; i++) expect((await as('carol', `wrong ${i}`, client())).status).toBe(401);
    const fresh = client();
    const refused = await as('carol', 'wrong again', fresh);
    expect(refused).toMatchObject({ status: 429, json: { error: { code: 'AUTH_LOCKED' } } });
    // The fresh address itself is not locked: a wrong password for another name is checked.
    expect((await as('nobody', 'x', fresh)).status).toBe(401);
    const after = await counters();
    expect(after.scrypt - before.scrypt).toBe(MAX_FAILURES + 1);
  });

  test('an address is locked out across user names', async () => {
    const guesser = client();
    for (let i = 0; i < MAX_FAILURES; i++) expect((await as(`user${i}`, 'x', guesser)).status).toBe(401);
    const before = await counters();
    expect((await as('someone-else', 'y', guesser)).status).toBe(429);
    expect((await as('carol', 'carol password', guesser)).status).toBe(429);
    // Credentials verified before still pass from there.
    expect((await as('bob', 'bob password', guesser)).status).toBe(200);
    expect((await counters()).scrypt - before.scrypt).toBe(0);
  });

  test('a wrong password repeated costs one scrypt: the rest answer 401 from memory', async () => {
    const before = await counters();
    const from = [client(), client(), client(), client()];
    for (const address of from) expect((await as('mallory', 'same guess', address)).status).toBe(401);
    const after = await counters();
    expect(after.scrypt - before.scrypt).toBe(1);
    expect(after.knownWrong - before.knownWrong).toBe(from.length - 1);
  });

  test('a user whose name is under attack keeps working with credentials verified before', async () => {
    expect((await as('frank', 'frank password', client())).status).toBe(200);
    for (let i = 0; i < MAX_FAILURES + 3; i++) await as('frank', `guess ${i}`, client());
    expect((await as('frank', 'wrong', client())).status).toBe(429);
    const before = await counters();
    for (let i = 0; i < 5; i++) expect((await as('frank', 'frank password', client(), `/packages/${sha}`)).status).toBe(200);
    expect((await counters()).scrypt - before.scrypt).toBe(0);
  });

  test('past one running and 16 waiting checks, credentials are refused with 503 AUTH_BUSY and no hash', async () => {
    const before = await counters();
    // Distinct names from distinct addresses: no lockout applies, every check needs a hash.
    const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => as(`burst${i}`, `pw${i}`, client())));
    const after = await counters();
    const unauthorized = answers.filter((a) => a.status === 401).length;
    const busy = answers.filter((a) => a.status === 503);
    expect(unauthorized + busy.length).toBe(60);
    expect(busy.length).toBeGreaterThan(0);
    expect(busy[0]!.json).toEqual({ error: { code: 'AUTH_BUSY', message: expect.any(String) } });
    expect(Number(busy[0]!.headers['retry-after'])).toBeGreaterThan(0);
    expect(after.scrypt - before.scrypt).toBe(unauthorized);
    expect(after.busy - before.busy).toBe(busy.length);
  });
});
