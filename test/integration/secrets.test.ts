import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

/**
 * Secrets against the real processes and containers: a function reads its secret as a file, another
 * cannot; a changed value reaches new containers; and the value is in no answer, log, metric or
 * database file in clear.
 */
const PYTHON = { name: 'python', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 /opt/faas/handler.py', mode: 'handler' };
const PYPROC = { name: 'pyproc', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py' };
const VALUE = `s3cr3t-${Math.random().toString(36).slice(2)}-value`;
/** What the functions are told to compare with: never the value itself, which would then be in their params. */
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const READER = `import hashlib, os

def handle(params):
    path = "/run/secrets/" + params["name"]
    try:
        with open(path) as f:
            value = f.read()
        st = os.stat(path)
        return {"found": True, "length": len(value), "matches": hashlib.sha256(value.encode()).hexdigest() == params.get("sha256"), "mode": oct(st.st_mode & 0o777), "mine": st.st_uid == os.getuid()}
    except OSError as e:
        return {"found": False, "error": type(e).__name__}
`;

/** The secret files on the node's tmpfs, in every container's folder. */
function secretFiles(node: string): string[] {
  const root = path.join('/dev/shm/faas-secrets', node);
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(path.join(dir, entry.name));
      else found.push(path.join(dir, entry.name));
    }
  };
  try {
    walk(root);
  } catch {
    /* no folder: no files */
  }
  return found;
}

async function packageOf(files: Record<string, string>): Promise<Buffer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-secret-fn-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return tarGzOf(dir);
}

describe('secrets', () => {
  let platform: TestPlatform;
  /** Every answer's body this test received, to search for the value. */
  const answers: string[] = [];
  const api = async (method: string, route: string, body?: unknown) => {
    const response = await fetch(`${platform.url}${route}`, { method, ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}) });
    const text = await response.text();
    answers.push(text);
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  };
  const invoke = async (fn: string, params: unknown) => (await api('POST', '/invokeFunction?wait=true', { funcName: fn, params })).body;

  beforeAll(async () => {
    platform = await TestPlatform.start();
    expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
    expect((await platform.json('POST', '/registerRuntime', PYPROC)).status).toBe(201);
  }, 120_000);

  afterAll(async () => {
    await platform?.stop();
  });

  test('a function reads its secret as /run/secrets/<name>, owned by its user; a function without it finds nothing', async () => {
    const created = await api('POST', '/v1/secrets', { name: 'db-password', value: VALUE });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ name: 'db-password', createdAt: expect.any(String), updatedAt: expect.any(String) });
    const unknown = await platform.upload('python', 'wrong', await packageOf({ 'handler.py': READER }), 'p.tar.gz', { secrets: '["nosuch"]' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toMatch(/secret "nosuch" does not exist/);

    expect((await platform.upload('python', 'reader', await packageOf({ 'handler.py': READER }), 'p.tar.gz', { secrets: '["db-password"]' })).status).toBe(201);
    expect((await platform.upload('python', 'other', await packageOf({ 'handler.py': READER }), 'p.tar.gz')).status).toBe(201);
    const read = await invoke('reader', { name: 'db-password', sha256: sha256(VALUE) });
    expect(read.status).toBe('DONE');
    expect(JSON.parse(read.result)).toEqual({ found: true, length: VALUE.length, matches: true, mode: '0o400', mine: true });
    // The warm container's file is on the node's tmpfs, in a folder of its own.
    expect(secretFiles(`node-${platform.label}`).map((f) => path.basename(f))).toEqual(['db-password']);
    const other = await invoke('other', { name: 'db-password' });
    expect(JSON.parse(other.result)).toEqual({ found: false, error: 'FileNotFoundError' });

    // Process mode too.
    const main = 'import hashlib, json, sys\np = json.load(sys.stdin)\nprint(hashlib.sha256(open("/run/secrets/" + p["name"], "rb").read()).hexdigest() == p["sha256"])\n';
    expect((await platform.upload('pyproc', 'procreader', await packageOf({ 'main.py': main }), 'p.tar.gz', { secrets: '["db-password"]' })).status).toBe(201);
    const proc = await invoke('procreader', { name: 'db-password', sha256: sha256(VALUE) });
    expect([proc.status, proc.result]).toEqual(['DONE', 'True']);
  }, 120_000);

  test('a replaced value reaches the function through a new container; a secret in use cannot be removed', async () => {
    expect((await api('POST', '/v1/secrets', { name: 'db-password', value: `${VALUE}-2` })).status).toBe(200);
    const read = await invoke('reader', { name: 'db-password', sha256: sha256(`${VALUE}-2`) });
    expect(JSON.parse(read.result)).toMatchObject({ found: true, matches: true });
    expect(read.coldStart).toBe(true);
    const refused = await api('DELETE', '/v1/secrets/db-password');
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('SECRET_IN_USE');
    const listed = await api('GET', '/v1/secrets');
    expect(listed.body).toEqual([{ name: 'db-password', createdAt: expect.any(String), updatedAt: expect.any(String), usedBy: ['procreader', 'reader'] }]);
  }, 90_000);

  test('the value is in no answer, no log line, no metric, no event and no database file in clear; its files leave with their containers', async () => {
    answers.push(await (await fetch(`${platform.url}/metrics`)).text());
    answers.push(JSON.stringify((await platform.json('GET', '/v1/calls?limit=1000')).body));
    answers.push(JSON.stringify((await platform.json('GET', '/v1/functions')).body));
    for (const text of answers) {
      expect(text.includes(VALUE)).toBe(false);
    }
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(full);
        else if (entry.isFile() && statSync(full).size < 64 * 1024 * 1024) files.push(full);
      }
    };
    walk(platform.dataDir);
    expect(files.some((f) => f.includes(`${path.sep}db${path.sep}`))).toBe(true);
    expect(files.some((f) => f.endsWith('.log'))).toBe(true);
    for (const file of files) expect([file, readFileSync(file).includes(VALUE)]).toEqual([file, false]);
    // Removed, the function's containers and their secret folders go.
    expect((await api('DELETE', '/v1/functions/reader')).status).toBe(204);
    expect((await api('DELETE', '/v1/functions/procreader')).status).toBe(204);
    expect((await api('DELETE', '/v1/secrets/db-password')).status).toBe(204);
    await until(async () => secretFiles(`node-${platform.label}`), (left) => left.length === 0, 30_000, 'the secret files removed with their containers');
  }, 90_000);
});
