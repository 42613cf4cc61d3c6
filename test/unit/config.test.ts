import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { z } from 'zod';
import { apiEnv, loadApiConfig } from '../../api/config';
import { dbEnv, loadDbConfig } from '../../db-service/config';
import { loadMiniworkerConfig, miniworkerEnv } from '../../miniworker/config';
import { ConfigError, documentedDefault, envReadElsewhere, loadEnvFiles, onlyLocal, publishedHosts } from '../../protocol/config';
import { loadWorkerConfig, workerEnv } from '../../worker/config';

const SCHEMAS: Record<string, z.AnyZodObject> = { api: apiEnv, worker: workerEnv, 'db-service': dbEnv, miniworker: miniworkerEnv };

/** The README's configuration table: variable → default cell, as written. */
function readmeTable(): Map<string, string> {
  const readme = readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Configuration'));
  const rows = section.slice(0, section.indexOf('\n## ', 1)).split('\n').filter((line) => /^\| `FAAS_/.test(line));
  const table = new Map<string, string>();
  for (const row of rows) {
    const [names, defaults] = row.split('|').slice(1, 3).map((cell) => cell.trim());
    const vars = [...names!.matchAll(/`(FAAS_[A-Z0-9_]+)`/g)].map((m) => m[1]!);
    const parts = defaults!.split(/,\s+/);
    vars.forEach((name, i) => table.set(name, parts.length === vars.length ? parts[i]! : defaults!));
  }
  return table;
}

/** A default cell as the schemas write it: `300000` for "`300000`", 1048576 for "1 MiB", undefined for "—" or "unset". */
function normalize(cell: string): string | undefined {
  const value = cell.replace(/`/g, '').replace(/\s*\([^)]*\)$/, '').trim();
  if (value === '—' || value === 'unset') return undefined;
  const mib = /^(\d+) MiB$/.exec(value);
  return mib ? String(Number(mib[1]) * 1024 * 1024) : value;
}

describe('config', () => {
  test('defaults are the documented ones', () => {
    const api = loadApiConfig({});
    expect(api).toMatchObject({ host: '127.0.0.1', port: 3000, dbEndpoint: 'tcp://127.0.0.1:5555', workerEndpoint: 'tcp://127.0.0.1:5556', maxUploadBytes: 50 * 1024 * 1024, scheduler: 'warm' });
    expect(api.limits).toEqual({ maxTimeoutMs: 300_000, maxMemoryMb: 2048, maxCpus: 4, maxConcurrency: 1000, allowNetwork: false });
    expect(loadWorkerConfig({ FAAS_NODE_ID: 'n1' })).toMatchObject({
      capacity: 8,
      callTimeoutMs: 60_000,
      platformLabel: 'faas',
      preload: 'function',
      keepAliveMs: 300_000,
      cpus: 1,
      functionUser: '65534:65534',
      dataDir: path.resolve('./data/worker-n1'),
      apiUrl: 'http://127.0.0.1:3000',
    });
    expect(loadDbConfig({})).toEqual({ dir: path.resolve('./data/db'), endpoint: 'tcp://127.0.0.1:5555', retentionDays: 30, retentionMaxCalls: 1_000_000, retentionIntervalMs: 60_000, secretsKeyFile: path.resolve('./data/db.secrets.key') });
  });

  test('an empty value takes the default, and values are read as given', () => {
    expect(loadApiConfig({ FAAS_API_PORT: '', FAAS_SCHEDULER: 'home', FAAS_ALLOW_FUNCTION_NETWORK: '1' })).toMatchObject({ port: 3000, scheduler: 'home', limits: { allowNetwork: true } });
    expect(loadWorkerConfig({ FAAS_NODE_ID: 'n1', FAAS_API_URL: 'http://api:3000//', FAAS_CPUS: '0.5', FAAS_API_USER: 'u', FAAS_API_PASSWORD: 'p' })).toMatchObject({
      apiUrl: 'http://api:3000',
      cpus: 0.5,
      apiCredentials: 'u:p',
    });
    expect(loadDbConfig({ FAAS_RETENTION_DAYS: '0.5', FAAS_RETENTION_MAX_CALLS: '0' })).toMatchObject({ retentionDays: 0.5, retentionMaxCalls: 0 });
  });

  test.each([
    [{ FAAS_API_PORT: 'abc' }, /^FAAS_API_PORT must be an integer, got "abc"$/],
    [{ FAAS_API_PORT: '70000' }, /FAAS_API_PORT must be at most 65535, got "70000"/],
    [{ FAAS_API_PORT: '1e3' }, /FAAS_API_PORT must be an integer/],
    [{ FAAS_DB_ENDPOINT: 'localhost:5555' }, /FAAS_DB_ENDPOINT must be a ZeroMQ endpoint/],
    [{ FAAS_WAIT_TIMEOUT_MS: '0' }, /FAAS_WAIT_TIMEOUT_MS must be at least 1/],
    [{ FAAS_SCHEDULER: 'random' }, /FAAS_SCHEDULER must be one of warm, home, least-loaded, got "random"/],
    [{ FAAS_ALLOW_UNAUTHENTICATED: 'yes' }, /FAAS_ALLOW_UNAUTHENTICATED must be true or false/],
    [{ FAAS_LOG_LEVEL: 'loud' }, /FAAS_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent/],
    [{ FAAS_API_HOST: '0.0.0.0' }, /FAAS_API_HOST=0.0.0.0 would serve everyone/],
    [{ FAAS_AUTH_USERS_FILE: '/nonexistent/users' }, /FAAS_AUTH_USERS_FILE cannot be read: ENOENT/],
  ])('a bad api value %j refuses to start', (env, message) => {
    expect(() => loadApiConfig(env)).toThrow(ConfigError);
    expect(() => loadApiConfig(env)).toThrow(message);
  });

  test('two bad values are both named', () => {
    expect(() => loadApiConfig({ FAAS_API_PORT: 'x', FAAS_MAX_QUEUE: '0' })).toThrow(/FAAS_API_PORT must be an integer.*; FAAS_MAX_QUEUE must be at least 1/);
  });

  test.each([
    [{ FAAS_WORKER_CAPACITY: '0' }, /FAAS_WORKER_CAPACITY must be at least 1/],
    [{ FAAS_PLATFORM_LABEL: 'Bad Label' }, /FAAS_PLATFORM_LABEL must match/],
    [{ FAAS_API_URL: 'ftp://x' }, /FAAS_API_URL must be an http\(s\) URL/],
    [{ FAAS_NODE_ID: '../etc' }, /FAAS_NODE_ID must be a simple name/],
    [{ FAAS_PRELOAD: 'always' }, /FAAS_PRELOAD must be one of none, runtime, function/],
    [{ FAAS_MINIWORKER_KIND: 'fiber' }, /FAAS_MINIWORKER_KIND must be one of thread, process/],
    [{ FAAS_WORKER_CAPACITY: '1025' }, /FAAS_WORKER_CAPACITY must be at most 1024/],
    [{ FAAS_CPUS: '-1' }, /FAAS_CPUS must be a number/],
    [{ FAAS_CPUS: '2000' }, /FAAS_CPUS must be between 0.01 and 1024/],
    [{ FAAS_FUNCTION_USER: '0:0' }, /FAAS_FUNCTION_USER must not be root/],
    [{ FAAS_FUNCTION_USER: 'nobody' }, /FAAS_FUNCTION_USER must be uid:gid in numbers/],
    [{ FAAS_API_USER: 'a:b', FAAS_API_PASSWORD: 'p' }, /FAAS_API_USER must not contain ":"/],
    [{ FAAS_API_USER: 'a' }, /FAAS_API_USER and FAAS_API_PASSWORD go together/],
  ])('a bad worker value %j refuses to start', (env, message) => {
    expect(() => loadWorkerConfig({ FAAS_NODE_ID: 'n1', ...env })).toThrow(ConfigError);
    expect(() => loadWorkerConfig({ FAAS_NODE_ID: 'n1', ...env })).toThrow(message);
  });

  test.each([
    [{ FAAS_RETENTION_DAYS: 'forever' }, /FAAS_RETENTION_DAYS must be a number/],
    [{ FAAS_RETENTION_MAX_CALLS: '-1' }, /FAAS_RETENTION_MAX_CALLS must be at least 0/],
    [{ FAAS_RETENTION_INTERVAL_MS: '10' }, /FAAS_RETENTION_INTERVAL_MS must be at least 100/],
  ])('a bad db-service value %j refuses to start', (env, message) => {
    expect(() => loadDbConfig(env)).toThrow(message);
  });

  test('a miniworker needs what its worker sets', () => {
    expect(() => loadMiniworkerConfig({})).toThrow(/FAAS_MINIWORKER_ENDPOINT is not set \(set by the worker\)/);
    expect(() => loadMiniworkerConfig({ FAAS_MINIWORKER_ENDPOINT: 'nowhere', FAAS_MINIWORKER_ID: 'mw-1' })).toThrow(/FAAS_MINIWORKER_ENDPOINT must be a ZeroMQ endpoint/);
    const env = { FAAS_MINIWORKER_ENDPOINT: 'ipc:///tmp/mw.sock', FAAS_MINIWORKER_ID: 'mw-1-2', FAAS_NODE_ID: 'n1' };
    expect(loadMiniworkerConfig(env)).toEqual({ endpoint: 'ipc:///tmp/mw.sock', routingId: 'mw-1-2', dbEndpoint: 'tcp://127.0.0.1:5555', nodeId: 'n1', platformLabel: 'faas' });
    expect(() => loadMiniworkerConfig({ ...env, FAAS_PLATFORM_LABEL: 'X' })).toThrow(/FAAS_PLATFORM_LABEL/);
  });

  test('secrets are not repeated in an error', () => {
    let message = '';
    try {
      loadWorkerConfig({ FAAS_NODE_ID: 'n1', FAAS_API_USER: 'a:hunter2', FAAS_API_PASSWORD: 'hunter2' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/FAAS_API_USER/);
    const secretOnly = (() => {
      try {
        loadApiConfig({ FAAS_AUTH_USERS: 'bob:plain-password' });
        return '';
      } catch (err) {
        return (err as Error).message;
      }
    })();
    expect(secretOnly).toMatch(/FAAS_AUTH_USERS/);
    expect(secretOnly).not.toMatch(/plain-password/);
  });

  describe("the README's configuration table", () => {
    const table = readmeTable();

    test('is found and has rows', () => {
      expect(table.size).toBeGreaterThan(40);
    });

    test.each(Object.entries(SCHEMAS))('lists every variable of the %s schema with its default', (_process, schema) => {
      const problems: string[] = [];
      for (const [name, variable] of Object.entries(schema.shape)) {
        const cell = table.get(name);
        if (cell === undefined) problems.push(`${name} is not in the table`);
        else if (normalize(cell) !== documentedDefault(variable as z.ZodTypeAny)) {
          problems.push(`${name}: the table says ${JSON.stringify(cell)}, the schema ${JSON.stringify(documentedDefault(variable as z.ZodTypeAny))}`);
        }
      }
      expect(problems).toEqual([]);
    });

    test('has no row that no schema reads', () => {
      const known = new Set([...Object.values(SCHEMAS).flatMap((schema) => Object.keys(schema.shape)), ...Object.keys(envReadElsewhere)]);
      expect([...table.keys()].filter((name) => !known.has(name))).toEqual([]);
    });

    test('agrees on the variables read outside the schemas', () => {
      for (const [name, { default: fallback }] of Object.entries(envReadElsewhere)) {
        expect([name, table.has(name)]).toEqual([name, true]);
        expect([name, normalize(table.get(name)!)]).toEqual([name, fallback]);
      }
    });

    test('a variable read by two processes has one default', () => {
      const defaults = new Map<string, string | undefined>();
      const problems: string[] = [];
      for (const schema of Object.values(SCHEMAS)) {
        for (const [name, variable] of Object.entries(schema.shape)) {
          const fallback = documentedDefault(variable as z.ZodTypeAny);
          if (defaults.has(name) && defaults.get(name) !== fallback) problems.push(name);
          defaults.set(name, fallback);
        }
      }
      expect(problems).toEqual([]);
    });
  });
});

describe('where a port is published', () => {
  test('Docker publication specs give their host addresses; a bare port is every interface', () => {
    expect(publishedHosts(undefined)).toBeUndefined();
    expect(publishedHosts(' ')).toBeUndefined();
    expect(publishedHosts('127.0.0.1:3000')).toEqual(['127.0.0.1']);
    expect(publishedHosts('3000')).toEqual(['0.0.0.0']);
    expect(publishedHosts('[::1]:3000, 10.0.0.5:3000')).toEqual(['::1', '10.0.0.5']);
  });

  test('the publication decides over the bind address; without one the bind address decides', () => {
    expect(onlyLocal('0.0.0.0', { FAAS_API_PUBLISHED: '127.0.0.1:3000' }, 'FAAS_API_PUBLISHED')).toBe(true);
    expect(onlyLocal('0.0.0.0', { FAAS_API_PUBLISHED: '127.0.0.1:3000,0.0.0.0:3001' }, 'FAAS_API_PUBLISHED')).toBe(false);
    expect(onlyLocal('127.0.0.1', { FAAS_API_PUBLISHED: '3000' }, 'FAAS_API_PUBLISHED')).toBe(false);
    expect(onlyLocal('0.0.0.0', {}, 'FAAS_API_PUBLISHED')).toBe(false);
    expect(onlyLocal('127.0.0.1', {}, 'FAAS_API_PUBLISHED')).toBe(true);
  });
});

describe('values given as files (FAAS_X_FILE, Docker secrets)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-env-files-'));
  const file = (name: string, text: string) => {
    writeFileSync(path.join(dir, name), text);
    return path.join(dir, name);
  };
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("a file's content becomes the variable, its trailing line end dropped, and the _FILE variable goes", () => {
    const env: Record<string, string | undefined> = { FAAS_API_PASSWORD_FILE: file('password', 'p4ss word \n'), FAAS_CURVE_PUBLIC_KEY_FILE: file('key', 'k\r\n'), FAAS_API_USER: 'worker' };
    loadEnvFiles(env);
    expect(env).toEqual({ FAAS_API_PASSWORD: 'p4ss word ', FAAS_CURVE_PUBLIC_KEY: 'k', FAAS_API_USER: 'worker' });
    // Read once: a second pass (a child process that inherits env) finds nothing to do.
    loadEnvFiles(env);
    expect(env.FAAS_API_PASSWORD).toBe('p4ss word ');
    expect(loadWorkerConfig({ FAAS_NODE_ID: 'n1', FAAS_API_USER: env.FAAS_API_USER, FAAS_API_PASSWORD: env.FAAS_API_PASSWORD })).toMatchObject({ apiCredentials: 'worker:p4ss word ' });
  });

  test('a missing file refuses to start, naming the variable and the file', () => {
    const env = { FAAS_API_PASSWORD_FILE: path.join(dir, 'nonexistent') };
    expect(() => loadEnvFiles(env)).toThrow(ConfigError);
    expect(() => loadEnvFiles(env)).toThrow(`FAAS_API_PASSWORD_FILE=${path.join(dir, 'nonexistent')} cannot be read: ENOENT`);
  });

  test('the variable and its file together are refused; an empty variable counts as unset', () => {
    const both = { FAAS_API_PASSWORD: 'a', FAAS_API_PASSWORD_FILE: file('p2', 'b\n') };
    expect(() => loadEnvFiles(both)).toThrow(new ConfigError('FAAS_API_PASSWORD and FAAS_API_PASSWORD_FILE are both set: give the value one way'));
    const empty: Record<string, string | undefined> = { FAAS_API_PASSWORD: '', FAAS_API_PASSWORD_FILE: file('p3', 'b\n') };
    loadEnvFiles(empty);
    expect(empty).toEqual({ FAAS_API_PASSWORD: 'b' });
  });

  test('settings that read a file of their own keep their meaning', () => {
    const env = { FAAS_AUTH_USERS_FILE: '/x/users', FAAS_SECRETS_KEY_FILE: '/x/key', FAAS_CURVE_ALLOWED_KEYS_FILE: '/x/keys', OTHER_FILE: '/x/other' };
    loadEnvFiles(env);
    expect(env).toEqual({ FAAS_AUTH_USERS_FILE: '/x/users', FAAS_SECRETS_KEY_FILE: '/x/key', FAAS_CURVE_ALLOWED_KEYS_FILE: '/x/keys', OTHER_FILE: '/x/other' });
  });
});
