import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hashPassword } from '../../api/auth';
import { DICE } from '../helpers/archives';
import { freePort } from '../helpers/ports';
import { docker, TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

const BIN = path.resolve(__dirname, '..', '..', 'dist', 'cli', 'main.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface RunOptions {
  env?: NodeJS.ProcessEnv;
  input?: string;
  /** Run under a pseudo-terminal (util-linux `script`): stdout and stderr arrive together in stdout. */
  tty?: boolean;
}

/** The environment of a user who has set nothing: no FAAS_ variables, no colour preferences. */
function cleanEnv(configFile: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('FAAS_') && k !== 'NO_COLOR' && k !== 'FORCE_COLOR') env[k] = v;
  return { ...env, FAAS_CONFIG: configFile, ...extra };
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs the real `faas` binary as a child process. */
function faas(args: string[], configFile: string, options: RunOptions = {}): Promise<Run> {
  const env = cleanEnv(configFile, options.env);
  const [file, argv] = options.tty
    ? ['script', ['-qec', [process.execPath, BIN, ...args].map(shellQuote).join(' '), '/dev/null']]
    : [process.execPath, [BIN, ...args]];
  return new Promise((resolve) => {
    const child = execFile(file, argv, { env, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    child.stdin?.end(options.input ?? '');
  });
}

/** A function folder for the seed's process contract (`python3 test.py`, params on stdin). */
function functionDir(root: string, name: string, testPy: string, extra: Record<string, Buffer | string> = {}, requirements = true): string {
  const dir = path.join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'test.py'), testPy);
  if (requirements) writeFileSync(path.join(dir, 'requirements.txt'), '');
  for (const [file, content] of Object.entries(extra)) writeFileSync(path.join(dir, file), content);
  return dir;
}

const RUNTIME_FLAGS = ['runtime', 'register', '--image', 'pythonruntime', '--path', '/ws', '--deps', 'pip3 install -r requirements.txt', '--run', 'python3 test.py'];

describe('the faas binary against a running platform', () => {
  let platform: TestPlatform;
  let work: string;
  let config: string;
  let url: string;
  const run = (args: string[], options: RunOptions = {}) => faas(['--url', url, ...args], config, options);

  beforeAll(async () => {
    platform = await TestPlatform.start();
    url = platform.url;
    work = mkdtempSync(path.join(os.tmpdir(), 'faas-cli-'));
    config = path.join(work, 'config', 'faas.json');
  });
  afterAll(async () => {
    await platform?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('register the runtime, deploy dice from its folder, invoke it with --wait and --json, list it', async () => {
    const rt = await run(['--json', ...RUNTIME_FLAGS]);
    expect(rt).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(rt.stdout)).toMatchObject({ name: 'pythonruntime', image: 'pythonruntime', mode: 'process' });

    const deploy = await run(['fn', 'deploy', DICE, '--runtime', 'pythonruntime']);
    expect(deploy.code).toBe(0);
    expect(deploy.stdout).toMatch(/^function dice deployed on pythonruntime, version [0-9a-f]{12} /);

    const invoke = await run(['--json', 'invoke', 'dice', '-p', 'roll=3d6', '--wait']);
    expect(invoke.code).toBe(0);
    const call = JSON.parse(invoke.stdout);
    expect(call).toMatchObject({ funcName: 'dice', status: 'DONE', params: { roll: '3d6' } });
    const dice = JSON.parse(call.result) as number[];
    expect(dice).toHaveLength(3);
    for (const d of dice) expect(d >= 1 && d <= 6).toBe(true);

    // Piped: the result alone, nothing on stderr.
    const piped = await run(['invoke', 'dice', '--data', '{"roll":"2d6"}', '--wait']);
    expect(piped.code).toBe(0);
    expect(piped.stderr).toBe('');
    expect(JSON.parse(piped.stdout)).toHaveLength(2);
    expect(piped.stdout.trim().split('\n')).toHaveLength(1);

    // On a terminal: the elapsed time follows the result.
    const onTty = await run(['invoke', 'dice', '-p', 'roll=1d6'], { tty: true });
    expect(onTty.code).toBe(0);
    expect(onTty.stdout).toMatch(/^\[[1-6]\]\r?\n.*call \d+ DONE in \d+\.\d\d s/s);

    const ls = await run(['fn', 'ls']);
    expect(ls.code).toBe(0);
    expect(ls.stdout.split('\n')[0]).toMatch(/^NAME\s+RUNTIME\s+VERSION\s+SIZE\s+LIMITS\s+REGISTERED$/);
    expect(ls.stdout).toMatch(/\ndice\s+pythonruntime\s+[0-9a-f]{12}\s/);
    expect(ls.stdout).not.toContain('\x1b['); // no colours when piped
    expect((await run(['fn', 'ls', '-q'])).stdout).toBe('dice\n');
    expect(JSON.parse((await run(['fn', 'ls', '--json'])).stdout)).toEqual([expect.objectContaining({ functionName: 'dice', runtimeName: 'pythonruntime' })]);
    expect((await run(['runtime', 'ls', '--quiet'])).stdout).toBe('pythonruntime\n');
    expect(JSON.parse((await run(['rt', 'get', 'pythonruntime', '--json'])).stdout)).toMatchObject({ run: 'python3 test.py' });

    const got = await run(['call', 'get', String(call.callNum)]);
    expect(got.stdout).toMatch(new RegExp(`^call:\\s+${call.callNum}\\n`));
    expect(got.stdout).toMatch(/status:\s+DONE/);
    // Times: UTC with the zone said, the same convention in tables and in one call's view.
    expect(got.stdout).toMatch(/\ncreated:\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC\n/);
    expect(got.stdout).toMatch(/\nended:\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC \(\d+ ms\)\n/);
    expect(call.createdAt).toMatch(/T.*Z$/); // --json keeps ISO 8601
    expect((await run(['calls', '--limit', '1'])).stdout).toMatch(/\n\d+\s+dice\s+DONE\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\s+\d+ ms/);
    expect(ls.stdout).toMatch(/\ndice\s.*\d\d:\d\d:\d\d UTC\n/);
    expect((await run(['rt', 'ls'])).stdout).toMatch(/\npythonruntime\s.*\d\d:\d\d:\d\d UTC\n/);
    expect((await run(['workers'])).stdout).toMatch(/\d\d:\d\d:\d\d UTC\n/);

    // A process-mode call's stdout became its result: `faas logs` says so rather than "wrote nothing".
    const logs = await run(['logs', String(call.callNum)]);
    expect(logs).toMatchObject({ code: 0, stdout: '' });
    expect(logs.stderr).toBe(`call ${call.callNum} printed ${Buffer.byteLength(call.result)} bytes on stdout, which became its result: \`faas call get ${call.callNum}\` shows it; it wrote nothing on stderr\n`);

    const workers = JSON.parse((await run(['workers', '--json'])).stdout);
    expect(workers).toEqual([expect.objectContaining({ nodeId: `node-${platform.label}`, state: 'ready' })]);
    const health = await run(['health']);
    expect(health.code).toBe(0);
    expect(health.stdout).toContain(': ok;');
  });

  test('--async prints the call number; calls filters and pages; logs show what one call wrote', async () => {
    const greet = functionDir(work, 'greet', [
      'import json, os, sys',
      'params = json.load(sys.stdin)',
      'print(f"greeting {params.get(\'who\')} with {os.environ.get(\'GREETING\')}", file=sys.stderr)',
      'print(json.dumps(os.environ.get("GREETING") + ", " + params.get("who", "nobody")))',
    ].join('\n'));
    const deploy = await run(['fn', 'deploy', greet, '--runtime', 'pythonruntime', '--env', 'GREETING=hello', '--timeout', '20s', '--memory', '128m']);
    expect(deploy.code).toBe(0);
    const shown = JSON.parse((await run(['fn', 'get', 'greet', '--json'])).stdout);
    expect(shown).toMatchObject({ env: { GREETING: 'hello' }, limits: { timeoutMs: 20_000, memoryMb: 128 } });

    const queued = await run(['invoke', 'greet', '-p', 'who=ada', '--async', '-q']);
    expect(queued.code).toBe(0);
    expect(queued.stdout).toMatch(/^\d+\n$/);
    const callNum = Number(queued.stdout);
    const status = await until(async () => (await run(['call', 'get', String(callNum), '-q'])).stdout.trim(), (s) => ['DONE', 'ERROR', 'TIMEOUT'].includes(s), 60_000, `call ${callNum} final`);
    expect(status).toBe('DONE');
    const result = await run(['invoke', 'greet', '-p', 'who=grace']);
    expect(JSON.parse(result.stdout)).toBe('hello, grace');

    const logs = await run(['logs', String(callNum)]);
    expect(logs.code).toBe(0);
    expect(logs.stdout).toBe('');
    expect(logs.stderr).toBe(`greeting ada with hello\ncall ${callNum} printed ${Buffer.byteLength('"hello, ada"')} bytes on stdout, which became its result: \`faas call get ${callNum}\` shows it\n`);
    expect(JSON.parse((await run(['logs', String(callNum), '--json'])).stdout)).toMatchObject({ callNum, status: 'DONE', truncated: false });

    const onlyGreet = JSON.parse((await run(['calls', '--fn', 'greet', '--status', 'done', '--json'])).stdout);
    expect(onlyGreet.calls.map((c: { callNum: number }) => c.callNum)).toEqual([callNum + 1, callNum]);
    expect(onlyGreet.calls.every((c: { funcName: string; status: string }) => c.funcName === 'greet' && c.status === 'DONE')).toBe(true);

    // Pages: newest first, each call once, the last page without a cursor.
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const page: { calls: { callNum: number }[]; next: string | null } = JSON.parse((await run(['calls', '--limit', '2', '--json', ...(cursor ? ['--cursor', cursor] : [])])).stdout);
      seen.push(...page.calls.map((c) => c.callNum));
      cursor = page.next;
    } while (cursor);
    expect(seen.length).toBeGreaterThanOrEqual(5);
    expect(seen).toEqual([...seen].sort((a, b) => b - a));
    expect(new Set(seen).size).toBe(seen.length);
    const table = await run(['calls', '--limit', '1']);
    expect(table.stdout).toMatch(new RegExp(`^CALL\\s+FUNCTION\\s+STATUS\\s+CREATED\\s+DURATION\\s+NODE\\n${seen[0]}\\s+greet\\s+DONE\\s`));
    expect(table.stderr).toContain(`faas calls --cursor ${seen[0]}`);
  });

  test('a failed call exits 1 with its reason; versions; rm; a runtime in use is kept', async () => {
    const broken = functionDir(work, 'broken', ['import sys', 'print("partial output")', 'print("something went wrong", file=sys.stderr)', 'sys.exit(3)'].join('\n'));
    expect((await run(['fn', 'deploy', broken, '--runtime', 'pythonruntime'])).code).toBe(0);
    const failed = await run(['invoke', 'broken']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^error: call \d+ ended ERROR \(exit_code\): .*something went wrong/s);
    expect(failed.stderr).toContain('`faas logs');
    const failedJson = await run(['invoke', 'broken', '--json']);
    expect(failedJson.code).toBe(1);
    expect(JSON.parse(failedJson.stdout)).toMatchObject({ status: 'ERROR', reason: 'exit_code', exitCode: 3 });

    // A second version of dice: the same files and one more.
    const dice2 = path.join(work, 'dice2');
    cpSync(DICE, dice2, { recursive: true });
    writeFileSync(path.join(dice2, 'NOTES'), 'second version\n');
    expect((await run(['fn', 'deploy', dice2, '--name', 'dice', '--runtime', 'pythonruntime'])).code).toBe(0);
    const versions = JSON.parse((await run(['fn', 'versions', 'dice', '--json'])).stdout) as { version: string; current: boolean }[];
    expect(versions).toHaveLength(2);
    expect(versions.map((v) => v.current)).toEqual([true, false]);
    const versionTable = await run(['fn', 'versions', 'dice']);
    expect(versionTable.stdout).toMatch(new RegExp(`\\n${versions[0]!.version.slice(0, 12)}\\s+\\*\\s`));

    const inUse = await run(['runtime', 'rm', 'pythonruntime']);
    expect(inUse.code).toBe(1);
    expect(inUse.stderr).toMatch(/runtime "pythonruntime" is used by .*dice.*remove those functions first/);

    expect(await run(['fn', 'rm', 'broken'])).toMatchObject({ code: 0, stdout: 'function broken removed (its calls are kept)\n' });
    const gone = await run(['invoke', 'broken']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe('error: no function named "broken"; `faas fn ls` lists them\n');
    expect((await run(['fn', 'get', 'broken'])).code).toBe(1);
    expect((await run(['fn', 'ls', '-q'])).stdout.split('\n')).not.toContain('broken');
  });

  test('per-call --arg and --env, outputs saved as a zip, rerun of a call', async () => {
    const maker = functionDir(work, 'maker', [
      'import json, os, sys',
      'p = json.load(sys.stdin)',
      'open(os.path.join(os.environ["FAAS_OUTPUT_DIR"], "made.txt"), "w").write(" ".join(sys.argv[1:]) + " " + os.environ.get("COLOUR", "-"))',
      'print(json.dumps(sys.argv[1:]))',
    ].join('\n'));
    expect((await run(['fn', 'deploy', maker, '--runtime', 'pythonruntime', '--outputs', '--arg', 'first'])).code).toBe(0);
    expect(JSON.parse((await run(['fn', 'get', 'maker', '--json'])).stdout)).toMatchObject({ outputs: true, args: ['first'] });
    const made = await run(['invoke', 'maker', '--arg', 'second word', '-e', 'COLOUR=blue', '--json']);
    expect(made.code).toBe(0);
    const call = JSON.parse(made.stdout);
    expect(JSON.parse(call.result)).toEqual(['first', 'second word']);
    expect(call.outputs.bytes).toBeGreaterThan(0);

    const zipFile = path.join(work, 'made.zip');
    const saved = await run(['outputs', String(call.callNum), '-o', zipFile]);
    expect(saved).toMatchObject({ code: 0, stdout: expect.stringContaining(`saved ${zipFile}`) });
    const zip = readFileSync(zipFile);
    expect(zip.subarray(0, 2).toString()).toBe('PK');
    expect(zip.includes(Buffer.from('made.txt'))).toBe(true);
    const noOutputs = await run(['outputs', '1']);
    expect(noOutputs.code).toBe(1);
    expect(noOutputs.stderr).toContain('kept no outputs');

    const again = await run(['rerun', String(call.callNum), '--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ status: 'DONE', rerunOf: call.callNum, args: ['second word'], env: { COLOUR: 'blue' } });
    const queued = await run(['rerun', String(call.callNum), '--async', '-q']);
    expect(queued.stdout).toMatch(/^\d+\n$/);
  });

  test('a large package shows upload progress on a terminal', async () => {
    const big = functionDir(work, 'big', 'print("1")', { 'blob.bin': randomBytes(3 * 1024 * 1024) });
    const deploy = await run(['fn', 'deploy', big, '--runtime', 'pythonruntime'], { tty: true });
    expect(deploy.code).toBe(0);
    expect(deploy.stdout).toMatch(/uploading big: \d+% of 3\.\d MB/);
    expect(deploy.stdout).toMatch(/uploading big: 100% of/);
    expect(deploy.stdout).toContain('function big deployed');
    const piped = await run(['fn', 'deploy', big, '--runtime', 'pythonruntime']);
    expect(piped.stderr).toBe('');
  });

  test('runtime build makes an image from a folder; a Dockerfile taking BASE_IMAGE gets the offline fallback', async () => {
    const dir = path.join(work, 'myruntime');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'Dockerfile'), 'ARG BASE_IMAGE=python:3.12-slim\nFROM ${BASE_IMAGE}\nCOPY marker.txt /opt/marker.txt\n');
    writeFileSync(path.join(dir, 'marker.txt'), `built by ${platform.label}\n`);
    const tag = `faas-cli-test-${platform.label}:1`;
    try {
      const built = await run(['runtime', 'build', dir, '--tag', tag, '--json']);
      expect(built.code).toBe(0);
      expect(JSON.parse(built.stdout)).toMatchObject({ image: tag, pushed: false });
      const image = await docker.getImage(tag).inspect();
      expect(image.Id).toBe(JSON.parse(built.stdout).id);
      const empty = path.join(work, 'not-a-runtime');
      mkdirSync(empty, { recursive: true });
      expect(await run(['runtime', 'build', empty])).toMatchObject({ code: 2, stderr: `error: ${empty} has no Dockerfile\n` });
      expect((await run(['runtime', 'build', dir, '--push'])).stderr).toContain('--push needs a registry');
    } finally {
      await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
    }
  });

  test('usage errors exit 2, a platform that is down exits 3, an unknown call exits 1', async () => {
    const unknown = await run(['invoke', 'nosuch', '--wait']);
    expect(unknown).toMatchObject({ code: 1, stdout: '', stderr: 'error: no function named "nosuch"; `faas fn ls` lists them\n' });

    const badFlag = await run(['invoke', 'dice', '--no-such-flag']);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain("unknown option '--no-such-flag'");
    expect((await run(['invoke', 'dice', '--data', '{nope'])).code).toBe(2);
    expect((await run(['invoke', 'dice', '-p', 'novalue'])).code).toBe(2);
    expect((await run(['fn', 'deploy', DICE, '--runtime', 'pythonruntime', '--timeout', '30'])).stderr).toContain('--timeout takes a duration with its unit');
    expect((await run(['nosuchcommand'])).code).toBe(2);
    expect((await run([])).code).toBe(2);
    expect((await run(['call', 'get', 'x'])).code).toBe(2);
    expect(await run(['call', 'get', '999999'])).toMatchObject({ code: 1, stderr: 'error: no call 999999; `faas calls` lists them\n' });

    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Exit codes:');
    expect(help.stdout).toMatch(/3\s+platform unreachable, or credentials refused/);

    const downUrl = `http://127.0.0.1:${await freePort()}`;
    const down = await faas(['--url', downUrl, 'calls'], config);
    expect(down.code).toBe(3);
    expect(down.stderr).toContain(`cannot reach the platform at ${downUrl}`);
    expect(down.stderr).toContain('`faas up` starts one');
  });

  test('a runtime registered from a registry image without --name is named after the image, by the CLI and by the api', async () => {
    const image = '127.0.0.1:5000/team/newuser-rt:v1';
    const registered = await run(['--json', 'runtime', 'register', '--image', image, '--path', '/ws', '--deps', 'pip3 install -r requirements.txt', '--run', 'python3 test.py']);
    expect(registered).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(registered.stdout)).toMatchObject({ name: 'newuser-rt', image });
    expect((await run(['rt', 'rm', 'newuser-rt'])).code).toBe(0);
    // The api derives the same name when the body has none (the seed's curl).
    const answer = await fetch(`${url}/registerRuntime`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ image: '127.0.0.1:5000/Other.Runtime_2', path: '/ws', dependencies: '', run: 'python3 test.py' }),
    });
    expect(answer.status).toBe(400); // upper case is not an image reference at all
    const viaApi = await fetch(`${url}/registerRuntime`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ image: `127.0.0.1:5000/other.runtime_2@sha256:${'a'.repeat(64)}`, path: '/ws', dependencies: '', run: 'python3 test.py' }),
    });
    expect(viaApi.status).toBe(201);
    expect(await viaApi.json()).toMatchObject({ name: 'other-runtime_2' });
    expect((await run(['rt', 'rm', 'other-runtime_2'])).code).toBe(0);
  });

  test('login with a user on a platform without users is refused and saves nothing', async () => {
    const own = path.join(work, 'open-login.json');
    const refused = await faas(['--url', url, 'login', '--user', 'bob', '--password-stdin'], own, { input: 'any password\n' });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`error: the platform at ${url} has no users: there is nothing to log in to, and no credentials were checked or saved (\`faas login\` without --user saves its address only)\n`);
    expect(() => statSync(own)).toThrow();
  });

  test('a folder without requirements.txt deploys to the python runtime and its first call runs', async () => {
    const plain = functionDir(work, 'plain', 'import json, sys\nprint(json.dumps({"got": json.load(sys.stdin)}))\n', {}, false);
    expect((await run(['fn', 'deploy', plain, '--runtime', 'pythonruntime'])).code).toBe(0);
    const called = await run(['invoke', 'plain', '-p', 'x=1', '--json']);
    expect(called.code).toBe(0);
    expect(JSON.parse(called.stdout)).toMatchObject({ status: 'DONE', result: '{"got": {"x": "1"}}' });
  });

  test("a failing handler's error starts with the exception line, then the function's own traceback", async () => {
    // An image of this checkout's python runtime of its own: the shared pythonruntime image may be
    // rebuilt meanwhile from another checkout's bootstrap.
    const image = `faas-cli-test-${platform.label}-python:1`;
    expect((await run(['runtime', 'build', path.join(__dirname, '..', '..', 'runtimes', 'python'), '--tag', image, '-q'])).code).toBe(0);
    expect((await run(['runtime', 'register', '--name', 'pyhandler', '--image', image, '--path', '/ws', '--run', 'python3 /opt/faas/handler.py', '--mode', 'handler'])).code).toBe(0);
    const dir = path.join(work, 'divide');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'handler.py'), 'def ratio(a, b):\n    return a / b\n\n\ndef handle(params):\n    return ratio(1, int(params.get("b", 0)))\n');
    expect((await run(['fn', 'deploy', dir, '--runtime', 'pyhandler'])).code).toBe(0);
    expect(JSON.parse((await run(['invoke', 'divide', '-p', 'b=4'])).stdout)).toBe(0.25);
    const failed = await run(['invoke', 'divide', '-p', 'b=0']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^error: call \d+ ended ERROR \(handler_error\): ZeroDivisionError: division by zero\nTraceback \(most recent call last\):\n {2}File "\/ws\/handler\.py", line 6, in handle\n/);
    expect(failed.stderr).toMatch(/line 2, in ratio\n\s+return a \/ b\n/);
    expect(failed.stderr).not.toContain('/opt/faas/handler.py');
    const callNum = Number(/call (\d+) ended/.exec(failed.stderr)![1]);
    const stored = JSON.parse((await run(['call', 'get', String(callNum), '--json'])).stdout);
    expect(stored.error.split('\n')[0]).toBe('ZeroDivisionError: division by zero');
    expect((await run(['fn', 'rm', 'divide'])).code).toBe(0);
    expect((await run(['rt', 'rm', 'pyhandler'])).code).toBe(0);
    await docker.getImage(image).remove({ force: true }).catch(() => undefined);
  });

  test('the address comes from --url, then FAAS_URL, then the config file, then the default', async () => {
    const own = path.join(work, 'precedence.json');
    const deadUrl = `http://127.0.0.1:${await freePort()}`;
    // Env only.
    expect((await faas(['fn', 'ls', '-q'], own, { env: { FAAS_URL: url } })).stdout).toContain('dice');
    // On a platform without users, login saves the address only, and says there is nothing to log in to.
    const login = await faas(['--url', url, 'login'], own);
    expect(login.code).toBe(0);
    expect(login.stdout).toContain('has no users (nothing to log in to)');
    expect(JSON.parse(readFileSync(own, 'utf8')).url).toBe(url);
    expect((await faas(['fn', 'ls', '-q'], own)).stdout).toContain('dice');
    // FAAS_URL wins over the saved address, as DOCKER_HOST wins over docker's context.
    const envWins = await faas(['fn', 'ls', '-q'], own, { env: { FAAS_URL: deadUrl } });
    expect(envWins.code).toBe(3);
    expect(envWins.stderr).toContain(`cannot reach the platform at ${deadUrl}`);
    // The flag wins over both.
    expect((await faas(['--url', url, 'fn', 'ls', '-q'], own, { env: { FAAS_URL: deadUrl } })).stdout).toContain('dice');
    expect((await faas(['--url', deadUrl, 'fn', 'ls'], own)).code).toBe(3);
    // Nothing set: the default address, where the test listens and records what comes.
    const asked: string[] = [];
    const server = http.createServer((req, res) => {
      asked.push(`${req.method} ${req.url}`);
      res.writeHead(200, { 'content-type': 'application/json' }).end('[]');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new Error(`this test needs 127.0.0.1:3000 free: ${err.message}`)));
      server.listen(3000, '127.0.0.1', resolve);
    });
    try {
      const none = await faas(['fn', 'ls', '--json'], path.join(work, 'absent.json'));
      expect(asked.length).toBeGreaterThan(0);
      expect(asked.every((line) => /^GET \/(v1\/)?functions\b/.test(line))).toBe(true);
      expect(none.stderr).not.toContain('cannot reach');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('the faas binary against a platform with users', () => {
  let platform: TestPlatform;
  let work: string;

  beforeAll(async () => {
    const hash = await hashPassword('correct horse');
    platform = await TestPlatform.start({ services: ['db', 'api'], env: { FAAS_AUTH_USERS: `alice:${hash}` } });
    await platform.waitApi();
    work = mkdtempSync(path.join(os.tmpdir(), 'faas-cli-auth-'));
  });
  afterAll(async () => {
    await platform?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('401 says to run faas login; login checks and saves the credentials for that address only', async () => {
    const config = path.join(work, 'cfg', 'config.json');
    const anonymous = await faas(['--url', platform.url, 'fn', 'ls'], config);
    expect(anonymous.code).toBe(3);
    expect(anonymous.stderr).toBe(`error: the platform at ${platform.url} asks for a user: run \`faas login\` (or give --user and --password)\n`);

    const wrong = await faas(['--url', platform.url, '--user', 'alice', '--password', 'wrong horse', 'fn', 'ls'], config);
    expect(wrong.code).toBe(3);
    expect(wrong.stderr).toContain('refused user "alice"');
    expect((await faas(['--url', platform.url, '--user', 'alice', '--password', 'correct horse', 'fn', 'ls'], config)).code).toBe(0);
    expect((await faas(['--url', platform.url, 'fn', 'ls'], config, { env: { FAAS_USER: 'alice', FAAS_PASSWORD: 'correct horse' } })).code).toBe(0);

    const badLogin = await faas(['--url', platform.url, 'login', '--user', 'alice', '--password-stdin'], config, { input: 'wrong horse\n' });
    expect(badLogin.code).toBe(3);
    expect(badLogin.stderr).toContain('refused user "alice"');
    expect(() => statSync(config)).toThrow();

    const login = await faas(['--url', platform.url, 'login', '--user', 'alice', '--password-stdin'], config, { input: 'correct horse\n' });
    expect(login).toMatchObject({ code: 0, stderr: '' });
    expect(login.stdout).toContain(`logged in to ${platform.url} as alice`);
    expect(statSync(config).mode & 0o777).toBe(0o600);

    // Later commands need neither the address nor the credentials.
    const after = await faas(['rt', 'ls', '--json'], config);
    expect(after).toMatchObject({ code: 0, stdout: '[]\n' });
    // FAAS_USER/FAAS_PASSWORD beat the saved login, as FAAS_URL beats the saved address.
    const envCredentials = await faas(['rt', 'ls'], config, { env: { FAAS_USER: 'alice', FAAS_PASSWORD: 'wrong horse' } });
    expect(envCredentials.code).toBe(3);
    expect(envCredentials.stderr).toBe(`error: the platform at ${platform.url} refused user "alice" of FAAS_USER/FAAS_PASSWORD: correct them, or unset them to use \`faas login\`\n`);
    expect((await faas(['rt', 'ls', '-q'], config, { env: { FAAS_USER: 'alice' } })).code).toBe(0);
    // Saved credentials are not sent to another address.
    const other = await TestPlatform.start({ services: ['db', 'api'], env: { FAAS_AUTH_USERS: `alice:${await hashPassword('other')}` } });
    try {
      await other.waitApi();
      const elsewhere = await faas(['--url', other.url, 'rt', 'ls'], config);
      expect(elsewhere.code).toBe(3);
      expect(elsewhere.stderr).toContain('asks for a user');
    } finally {
      await other.stop();
    }

    expect((await faas(['logout'], config)).code).toBe(0);
    expect((await faas(['--url', platform.url, 'rt', 'ls'], config)).code).toBe(3);
  });
});

describe('faas up', () => {
  test('starts a one-node platform that the other commands use, and Ctrl-C stops it with its containers', async () => {
    const work = mkdtempSync(path.join(os.tmpdir(), 'faas-up-'));
    const config = path.join(work, 'config.json');
    const [port, dbPort, workerPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const label = `t${randomBytes(4).toString('hex')}`;
    const url = `http://127.0.0.1:${port}`;
    const env = cleanEnv(config, {
      FAAS_DB_ENDPOINT: `tcp://127.0.0.1:${dbPort}`,
      FAAS_WORKER_ENDPOINT: `tcp://127.0.0.1:${workerPort}`,
      FAAS_PLATFORM_LABEL: label,
      FAAS_NODE_ID: `node-${label}`,
    });
    const child = spawn(process.execPath, [BIN, 'up', '--port', String(port), '--data-dir', path.join(work, 'data')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let said = '';
    child.stdout.on('data', (chunk: Buffer) => (said += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await until(async () => said, (text) => text.includes('faas platform up'), 90_000, '`faas up` saying it is up');
      expect(said).toContain(`faas platform up: api ${url}`);
      expect(await faas(['--url', url, 'health', '-q'], config)).toMatchObject({ code: 0, stdout: 'ok\n' });
      expect((await faas(['--url', url, ...RUNTIME_FLAGS], config)).code).toBe(0);
      expect((await faas(['--url', url, 'fn', 'deploy', DICE, '--runtime', 'pythonruntime'], config)).code).toBe(0);
      const rolled = await faas(['--url', url, 'invoke', 'dice', '-p', 'roll=2d6'], config);
      expect(rolled.code).toBe(0);
      expect(JSON.parse(rolled.stdout)).toHaveLength(2);
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
    expect(said).toMatch(/stopping…\nstopped\n$/);
    expect(await docker.listContainers({ all: true, filters: { label: [`io.faas.platform=${label}`] } })).toEqual([]);
    expect((await faas(['--url', url, 'health'], config)).code).toBe(3);
    rmSync(work, { recursive: true, force: true });
  });
});
