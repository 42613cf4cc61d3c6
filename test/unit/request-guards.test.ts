import { BasicAuth, hashPassword, parseUsers } from '../../api/auth';
import { BoundedSet, FailureWindows } from '../../api/login-guard';
import { hostAllowed, hostName, hostPolicy } from '../../api/request-guards';
import { deniedEnvName, userEnvSchema } from '../../protocol/schemas';

describe('host names', () => {
  test('a Host header reads as its name, without port, brackets or a final dot', () => {
    expect(hostName('Example.COM:3000')).toBe('example.com');
    expect(hostName('[::1]:3000')).toBe('::1');
    expect(hostName('api.')).toBe('api');
    expect(hostName('evil.example/x')).toBeUndefined();
    expect(hostName('a b')).toBeUndefined();
    expect(hostName('')).toBeUndefined();
  });

  test('loopback names, IP addresses, listed names and wildcard subdomains are allowed; nothing else', () => {
    const policy = hostPolicy('api, *.lan.test,', '0.0.0.0');
    for (const name of ['localhost', 'x.localhost', '127.0.0.1', '::1', '192.168.1.9', 'api', 'n1.lan.test']) expect([name, hostAllowed(policy, name)]).toEqual([name, true]);
    for (const name of ['evil.example', 'lan.test', 'evillan.test', 'localhost.evil.example', 'api.evil.example']) expect([name, hostAllowed(policy, name)]).toEqual([name, false]);
    expect(hostAllowed(hostPolicy('', 'faas.internal'), 'faas.internal')).toBe(true);
    expect(hostAllowed(hostPolicy('*', '127.0.0.1'), 'evil.example')).toBe(true);
  });
});

describe('env names', () => {
  test('loader, shell and interpreter variables are denied; ordinary ones and harmless PYTHON* pass', () => {
    for (const name of ['LD_PRELOAD', 'LD_AUDIT', 'DYLD_INSERT_LIBRARIES', 'NODE_OPTIONS', 'PYTHONPATH', 'PYTHONWARNINGS', 'PERL5OPT', 'BASH_ENV', 'ENV', 'GLIBC_TUNABLES', 'MALLOC_ARENA_MAX', 'HOME', 'PATH']) {
      expect([name, deniedEnvName(name)]).toEqual([name, true]);
    }
    for (const name of ['NODE_ENV', 'PYTHONUNBUFFERED', 'GREETING', 'ENVIRONMENT', 'LDAP_URL', 'HOMEPAGE']) expect([name, deniedEnvName(name)]).toEqual([name, false]);
    const refused = userEnvSchema.safeParse({ A: '1', LD_PRELOAD: '/x.so' });
    expect(refused.success).toBe(false);
    expect(JSON.stringify(refused.error?.issues)).toContain('LD_PRELOAD');
  });
});

describe('login guards', () => {
  test('failures lock a key past the bound until its window ends', () => {
    let now = 0;
    const windows = new FailureWindows(3, 10_000, 100, () => now);
    for (let i = 0; i < 3; i++) {
      expect(windows.lockedFor('k')).toBe(0);
      windows.failed('k');
    }
    expect(windows.lockedFor('k')).toBe(10);
    expect(windows.lockedFor('other')).toBe(0);
    now = 9_001;
    expect(windows.lockedFor('k')).toBe(1);
    now = 10_000;
    expect(windows.lockedFor('k')).toBe(0);
    windows.failed('k');
    expect(windows.lockedFor('k')).toBe(0);
  });

  test('the number of keys kept is bounded', () => {
    const windows = new FailureWindows(1, 60_000, 10);
    for (let i = 0; i < 100; i++) windows.failed(`k${i}`);
    expect(windows.size).toBe(10);
    expect(windows.lockedFor('k99')).toBeGreaterThan(0);
  });

  test('a bounded set forgets its oldest member', () => {
    const set = new BoundedSet(2);
    set.add('a');
    set.add('b');
    set.add('a');
    set.add('c');
    expect([set.has('a'), set.has('b'), set.has('c')]).toEqual([true, false, true]);
  });
});

describe('BasicAuth', () => {
  test('wrong guesses lock out before scrypt; a repeated wrong pair and verified credentials cost none', async () => {
    const users = parseUsers(`ann:${await hashPassword('right')}`, 'test');
    let hashes = 0;
    const refused: string[] = [];
    const auth = new BasicAuth(users, { maxFailures: 2, windowMs: 60_000, onScrypt: () => hashes++, onRefused: (r) => refused.push(r) });
    const header = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    expect(await auth.check(header('ann', 'right'), 'a1')).toEqual({ user: 'ann' });
    expect(hashes).toBe(1);
    expect((await auth.check(header('ann', 'w1'), 'a1')) as object).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
    expect((await auth.check(header('ann', 'w1'), 'a2')) as object).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
    expect(hashes).toBe(2);
    expect((await auth.check(header('ann', 'w2'), 'a3')) as object).toMatchObject({ error: { code: 'AUTH_LOCKED', data: { retryAfterSeconds: 60 } } });
    expect(await auth.check(header('ann', 'right'), 'a3')).toEqual({ user: 'ann' });
    expect(hashes).toBe(2);
    expect(refused).toEqual(['known_wrong', 'locked']);
    expect((await auth.check('Bearer x', 'a4')) as object).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
    expect((await auth.check(undefined, 'a4')) as object).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
  });
});
