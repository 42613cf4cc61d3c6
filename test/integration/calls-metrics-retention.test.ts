import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

const PYTHON = { name: 'python', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 /opt/faas/handler.py', mode: 'handler' };

async function handlerPackage(body: string): Promise<Buffer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-calls-'));
  writeFileSync(path.join(dir, 'handler.py'), body);
  return tarGzOf(dir);
}

/** A handler whose first call in each container fails: the failure a re-run is for. */
const FLAKY = 'calls = 0\n\ndef handle(params):\n    global calls\n    calls += 1\n    if calls == 1:\n        raise RuntimeError("first call fails")\n    return {"calls": calls, "v": VERSION, "p": params}\n';

/** The value of one sample in Prometheus text, 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = (match[3] ?? '').split(',').filter(Boolean);
    if (wanted.every((w) => have.includes(w)) && have.length === wanted.length) return Number(match[4]);
  }
  return 0;
}

describe('calls under /v1: invoke and re-run; metrics', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    platform = await TestPlatform.start({ env: { FAAS_PRELOAD: 'function', FAAS_WORKER_CAPACITY: '4' } });
    expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
    expect((await platform.upload('python', 'flaky', await handlerPackage(`VERSION = 1\n${FLAKY}`))).status).toBe(201);
  });
  afterAll(async () => platform?.stop());

  test('POST /v1/functions/:name/calls: 202 at once, 200 with ?wait=true, the Idempotency-Key replays, bad bodies are 400', async () => {
    const queued = await platform.json('POST', '/v1/functions/flaky/calls', { params: { a: 1 } });
    expect(queued.status).toBe(202);
    expect(queued.body).toMatchObject({ funcName: 'flaky', status: 'PENDING', params: { a: 1 } });
    await platform.waitFinal(queued.body.callNum);
    const waited = await platform.json('POST', '/v1/functions/flaky/calls?wait=true', { params: { a: 2 } });
    expect(waited.status).toBe(200);
    expect(['DONE', 'ERROR']).toContain(waited.body.status);

    const keyed = async () =>
      fetch(`${platform.url}/v1/functions/flaky/calls`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'v1-key-1' }, body: JSON.stringify({ params: { k: 1 }, wait: true }) });
    const first = await keyed();
    const again = await keyed();
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect((await again.json()).callNum).toBe((await first.json()).callNum);

    expect((await platform.json('POST', '/v1/functions/nope/calls', {})).body.error.code).toBe('FUNCTION_NOT_FOUND');
    expect((await platform.json('POST', '/v1/functions/flaky/calls', { params: {}, colour: 'red' })).body.error.code).toBe('BAD_REQUEST');
    expect((await platform.json('POST', '/v1/functions/flaky/calls', '{nope')).body.error.code).toBe('INVALID_JSON');
  });

  test('a failed call re-run: same version and params, a new call naming the old one, even after a new version', async () => {
    // A fresh version so that the first call lands in a fresh container and fails.
    expect((await platform.upload('python', 'flaky', await handlerPackage(`VERSION = 2\n${FLAKY}`))).status).toBe(200);
    const failed = (await platform.json('POST', '/v1/functions/flaky/calls?wait=true', { params: { x: 'y' } })).body;
    expect(failed).toMatchObject({ status: 'ERROR', reason: 'handler_error' });
    expect(failed.error).toContain('first call fails');

    // A newer version is registered meanwhile: the re-run still runs the failed call's version.
    expect((await platform.upload('python', 'flaky', await handlerPackage(`VERSION = 3\n${FLAKY}`))).status).toBe(200);
    const rerun = await platform.json('POST', `/v1/calls/${failed.callNum}/rerun?wait=true`);
    expect(rerun.status).toBe(200);
    expect(rerun.body).toMatchObject({ status: 'DONE', rerunOf: failed.callNum, functionVersion: failed.functionVersion, params: { x: 'y' } });
    expect(rerun.body.callNum).toBeGreaterThan(failed.callNum);
    expect(JSON.parse(rerun.body.result)).toMatchObject({ v: 2, p: { x: 'y' } });
    // The old call is unchanged.
    expect((await platform.json('GET', `/v1/calls/${failed.callNum}`)).body).toMatchObject({ status: 'ERROR' });

    const queued = await platform.json('POST', `/v1/calls/${failed.callNum}/rerun`);
    expect(queued.status).toBe(202);
    expect(queued.body).toMatchObject({ status: 'PENDING', rerunOf: failed.callNum });
    await platform.waitFinal(queued.body.callNum);
    // A retried re-run request with the same Idempotency-Key makes one call.
    const keyed = () => fetch(`${platform.url}/v1/calls/${failed.callNum}/rerun`, { method: 'POST', headers: { 'idempotency-key': `rerun-${failed.callNum}` } });
    const firstTry = await keyed();
    const secondTry = await keyed();
    expect(secondTry.headers.get('idempotent-replayed')).toBe('true');
    const rerunNum = (await firstTry.json()).callNum;
    expect((await secondTry.json()).callNum).toBe(rerunNum);
    // It ends before this test does, so that the next one's counters see only their own calls.
    await platform.waitFinal(rerunNum);
    expect((await platform.json('POST', '/v1/calls/999999/rerun')).body.error.code).toBe('CALL_NOT_FOUND');
  });

  test('GET /metrics: Prometheus counters move with calls; gauges show workers, queue and warm containers', async () => {
    const before = await (await fetch(`${platform.url}/metrics`)).text();
    expect(sample(before, 'faas_workers_connected')).toBe(1);
    const calls = await Promise.all([1, 2, 3].map(async (n) => (await platform.json('POST', '/v1/functions/flaky/calls?wait=true', { params: { n } })).body));
    const response = await fetch(`${platform.url}/metrics`);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const after = await response.text();
    const done = calls.filter((c) => c.status === 'DONE').length;
    const errors = calls.filter((c) => c.status === 'ERROR').length;
    expect(sample(after, 'faas_calls_total', { function: 'flaky', status: 'DONE' }) - sample(before, 'faas_calls_total', { function: 'flaky', status: 'DONE' })).toBe(done);
    expect(sample(after, 'faas_calls_total', { function: 'flaky', status: 'ERROR' }) - sample(before, 'faas_calls_total', { function: 'flaky', status: 'ERROR' })).toBe(errors);
    expect(sample(after, 'faas_invocations_total', { function: 'flaky' }) - sample(before, 'faas_invocations_total', { function: 'flaky' })).toBe(3);
    expect(sample(after, 'faas_call_duration_seconds_count', { function: 'flaky' }) - sample(before, 'faas_call_duration_seconds_count', { function: 'flaky' })).toBe(3);
    const cold = calls.filter((c) => c.coldStart).length;
    expect(sample(after, 'faas_cold_starts_total', { function: 'flaky' }) - sample(before, 'faas_cold_starts_total', { function: 'flaky' })).toBe(cold);
    expect(sample(after, 'faas_queue_depth')).toBe(0);
    expect(sample(after, 'faas_warm_containers', { kind: 'function' })).toBeGreaterThanOrEqual(1);
    expect(after).toMatch(/^# TYPE faas_call_duration_seconds histogram$/m);
    expect(after).toMatch(/^process_resident_memory_bytes \d+/m);
  });
});

describe('retention', () => {
  test('beyond FAAS_RETENTION_MAX_CALLS the oldest ended calls go, with their idempotency keys', async () => {
    const platform = await TestPlatform.start({ env: { FAAS_RETENTION_MAX_CALLS: '3', FAAS_RETENTION_INTERVAL_MS: '200' } });
    try {
      expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
      expect((await platform.upload('python', 'echo', await handlerPackage('def handle(params):\n    return params\n'))).status).toBe(201);
      const keyed = () => fetch(`${platform.url}/invokeFunction?wait=true`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'old-key' }, body: JSON.stringify({ funcName: 'echo', params: { k: 1 } }) });
      const first = (await (await keyed()).json()).callNum as number;
      for (let n = 0; n < 5; n++) expect((await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'echo', params: { n } })).body.status).toBe('DONE');
      const kept = await until(async () => (await platform.json('GET', '/v1/calls')).body.calls.map((c: { callNum: number }) => c.callNum), (nums: number[]) => nums.length === 3, 15_000, 'three calls kept');
      expect(kept).toEqual([first + 5, first + 4, first + 3]);
      expect((await platform.json('GET', `/v1/calls/${first}`)).body.error.code).toBe('CALL_NOT_FOUND');
      // The key of a removed call has expired with it: the same key makes a new call.
      const again = await keyed();
      expect(again.headers.get('idempotent-replayed')).toBeNull();
      expect((await again.json()).callNum).toBeGreaterThan(first + 5);
    } finally {
      await platform.stop();
    }
  });

  test('ended calls older than FAAS_RETENTION_DAYS go; running ones stay', async () => {
    // 0.00003 days is about 2.6 s.
    const platform = await TestPlatform.start({ env: { FAAS_RETENTION_DAYS: '0.00003', FAAS_RETENTION_INTERVAL_MS: '200' } });
    try {
      expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
      expect((await platform.upload('python', 'sleepy', await handlerPackage('import time\n\ndef handle(params):\n    time.sleep(params.get("s", 0))\n    return "ok"\n'))).status).toBe(201);
      const quick = (await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'sleepy', params: {} })).body;
      expect(quick.status).toBe('DONE');
      const slow = platform.json('POST', '/invokeFunction?wait=true', { funcName: 'sleepy', params: { s: 6 } });
      await until(async () => (await platform.json('GET', `/v1/calls/${quick.callNum}`)).status, (s) => s === 404, 15_000, 'the old call removed');
      // Older than the limit but still running: kept, and it ends normally.
      const running = (await platform.json('GET', '/v1/calls?function=sleepy')).body.calls;
      expect(running).toEqual([expect.objectContaining({ callNum: quick.callNum + 1, status: expect.stringMatching(/^(PENDING|RUNNING)$/) })]);
      expect((await slow).body).toMatchObject({ status: 'DONE', result: '"ok"' });
    } finally {
      await platform.stop();
    }
  });
});

describe('args and environment per function and per call', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    platform = await TestPlatform.start();
    const process = { name: 'pyproc', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py' };
    expect((await platform.json('POST', '/registerRuntime', process)).status).toBe(201);
    expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
  });
  afterAll(async () => platform?.stop());

  test('process mode: the function args then the call args, each one word; call env over function env', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-args-'));
    writeFileSync(path.join(dir, 'main.py'), 'import json, os, sys\nprint(json.dumps({"argv": sys.argv[1:], "a": os.environ.get("A"), "b": os.environ.get("B")}))\n');
    const fields = { args: JSON.stringify(['--from-fn', 'two words']), env: JSON.stringify({ A: 'fn', B: 'fn' }) };
    expect((await platform.upload('pyproc', 'argv', await tarGzOf(dir), 'p.tar.gz', fields)).status).toBe(201);
    const call = (await platform.json('POST', '/v1/functions/argv/calls?wait=true', { args: ["it's; rm -rf /", '$HOME'], env: { B: 'call' } })).body;
    expect(call).toMatchObject({ status: 'DONE', args: ["it's; rm -rf /", '$HOME'], env: { B: 'call' } });
    expect(JSON.parse(call.result)).toEqual({ argv: ['--from-fn', 'two words', "it's; rm -rf /", '$HOME'], a: 'fn', b: 'call' });
    // A re-run keeps the call's args and env.
    const again = (await platform.json('POST', `/v1/calls/${call.callNum}/rerun?wait=true`)).body;
    expect(JSON.parse(again.result)).toEqual(JSON.parse(call.result));
    for (const body of [{ args: 'x' }, { args: ['a\u0000b'] }, { env: { FAAS_X: '1' } }, { env: { A: 1 } }]) {
      expect((await platform.json('POST', '/v1/functions/argv/calls', body)).body.error.code).toBe('BAD_REQUEST');
    }
  });

  test('handler mode: a call env lasts for that call only; args are refused', async () => {
    expect((await platform.upload('python', 'envcall', await handlerPackage('import os\n\ndef handle(params):\n    return [os.environ.get("MODE"), os.environ.get("COLOUR")]\n'), 'p.tar.gz', { env: '{"MODE":"fn"}' })).status).toBe(201);
    const withEnv = (await platform.json('POST', '/v1/functions/envcall/calls?wait=true', { env: { MODE: 'call', COLOUR: 'blue' } })).body;
    expect(JSON.parse(withEnv.result)).toEqual(['call', 'blue']);
    const without = (await platform.json('POST', '/v1/functions/envcall/calls?wait=true', {})).body;
    expect(JSON.parse(without.result)).toEqual(['fn', null]);
    expect((await platform.json('POST', '/v1/functions/envcall/calls', { args: ['x'] })).body.error.message).toContain('handler mode');
    const refused = await platform.upload('python', 'withargs', await handlerPackage('def handle(p):\n    return 1\n'), 'p.tar.gz', { args: '["x"]' });
    expect(refused).toMatchObject({ status: 400, body: { error: { code: 'BAD_REQUEST' } } });
  });
});

/** The files of a zip, by name. */
async function unzip(data: Buffer): Promise<Record<string, string>> {
  const yauzl = await import('yauzl');
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(data, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err);
      const files: Record<string, string> = {};
      zip.on('entry', (entry: import('yauzl').Entry) => {
        if (entry.fileName.endsWith('/')) return zip.readEntry();
        zip.openReadStream(entry, (e, stream) => {
          if (e || !stream) return reject(e);
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            files[entry.fileName] = Buffer.concat(chunks).toString('utf8');
            zip.readEntry();
          });
        });
      });
      zip.on('end', () => resolve(files));
      zip.readEntry();
    });
  });
}

describe('outputs: the files a call leaves in /out, as a zip', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    platform = await TestPlatform.start();
    expect((await platform.json('POST', '/registerRuntime', { name: 'pyproc', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py' })).status).toBe(201);
    expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
  });
  afterAll(async () => platform?.stop());

  const download = async (callNum: number) => {
    const response = await fetch(`${platform.url}/v1/calls/${callNum}/outputs`);
    return { status: response.status, type: response.headers.get('content-type'), body: Buffer.from(await response.arrayBuffer()) };
  };

  test('process mode: files and folders written to FAAS_OUTPUT_DIR come back in the zip', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-out-'));
    writeFileSync(
      path.join(dir, 'main.py'),
      'import json, os, sys\np = json.load(sys.stdin)\nout = os.environ["FAAS_OUTPUT_DIR"]\nos.makedirs(out + "/sub", exist_ok=True)\nopen(out + "/report.txt", "w").write("report " + p["name"])\nopen(out + "/sub/data.json", "w").write(json.dumps(p))\nprint(json.dumps("written"))\n',
    );
    expect((await platform.upload('pyproc', 'writer', await tarGzOf(dir), 'p.tar.gz', { outputs: 'true' })).status).toBe(201);
    const call = (await platform.json('POST', '/v1/functions/writer/calls?wait=true', { params: { name: 'ada' } })).body;
    expect(call).toMatchObject({ status: 'DONE', outputs: { bytes: expect.any(Number) } });
    const zip = await download(call.callNum);
    expect(zip.status).toBe(200);
    expect(zip.type).toBe('application/zip');
    expect(await unzip(zip.body)).toEqual({ 'report.txt': 'report ada', 'sub/data.json': '{"name": "ada"}' });
    // No container or volume of the call is left.
    expect(await platform.containers([`io.faas.call=${call.callNum}`])).toEqual([]);
  });

  test('handler mode: each call gets an empty folder, and its zip holds only its own files', async () => {
    const body = 'import os\n\ndef handle(params):\n    out = os.environ["FAAS_OUTPUT_DIR"]\n    open(os.path.join(out, params["file"]), "w").write(params["file"])\n    return sorted(os.listdir(out))\n';
    expect((await platform.upload('python', 'hwriter', await handlerPackage(body), 'p.tar.gz', { outputs: 'true' })).status).toBe(201);
    const one = (await platform.json('POST', '/v1/functions/hwriter/calls?wait=true', { params: { file: 'one.txt' } })).body;
    const two = (await platform.json('POST', '/v1/functions/hwriter/calls?wait=true', { params: { file: 'two.txt' } })).body;
    expect(JSON.parse(two.result)).toEqual(['two.txt']);
    expect(await unzip((await download(one.callNum)).body)).toEqual({ 'one.txt': 'one.txt' });
    expect(await unzip((await download(two.callNum)).body)).toEqual({ 'two.txt': 'two.txt' });
  });

  test('outputs past FAAS_MAX_OUTPUT_BYTES are not kept (the call still ends DONE); names a zip cannot hold are made safe', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-out-'));
    writeFileSync(
      path.join(dir, 'main.py'),
      'import json, os, sys\np = json.load(sys.stdin)\nout = os.environ["FAAS_OUTPUT_DIR"]\nif p.get("big"):\n    open(out + "/big.bin", "wb").write(os.urandom(9 * 1024 * 1024))\nelse:\n    open(out + "/a\\\\b.txt", "w").write("back")\n    open(out + "/C:drive.txt", "w").write("drive")\nprint(json.dumps("ok"))\n',
    );
    expect((await platform.upload('pyproc', 'oddout', await tarGzOf(dir), 'p.tar.gz', { outputs: 'true' })).status).toBe(201);
    const big = (await platform.json('POST', '/v1/functions/oddout/calls?wait=true', { params: { big: true } })).body;
    expect(big).toMatchObject({ status: 'DONE', result: '"ok"', outputs: { truncated: true } });
    const refused = await platform.json('GET', `/v1/calls/${big.callNum}/outputs`);
    expect(refused.status).toBe(404);
    expect(refused.body.error.message).toContain('past the platform');
    const odd = (await platform.json('POST', '/v1/functions/oddout/calls?wait=true', { params: {} })).body;
    expect(odd.status).toBe('DONE');
    expect(await unzip((await download(odd.callNum)).body)).toEqual({ 'a_b.txt': 'back', 'C_drive.txt': 'drive' });
  });

  test('a function without outputs, or a call that wrote none, answers 404 OUTPUTS_NOT_FOUND', async () => {
    expect((await platform.upload('python', 'plain', await handlerPackage('def handle(p):\n    return 1\n'))).status).toBe(201);
    const plain = (await platform.json('POST', '/v1/functions/plain/calls?wait=true', {})).body;
    const answer = await platform.json('GET', `/v1/calls/${plain.callNum}/outputs`);
    expect(answer).toMatchObject({ status: 404, body: { error: { code: 'OUTPUTS_NOT_FOUND' } } });
    expect((await platform.json('GET', '/v1/calls/999999/outputs')).body.error.code).toBe('CALL_NOT_FOUND');
  });
});

describe('structured logs', () => {
  test('at debug level every process logs JSON lines, and each line about a call carries its callNum', async () => {
    const platform = await TestPlatform.start({ env: { FAAS_LOG_LEVEL: 'debug' } });
    let callNums: number[] = [];
    let lines: string[] = [];
    try {
      expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
      expect((await platform.upload('python', 'logged', await handlerPackage('def handle(p):\n    return p\n'))).status).toBe(201);
      callNums = await Promise.all([1, 2, 3].map(async (n) => (await platform.json('POST', '/v1/functions/logged/calls?wait=true', { params: { n } })).body.callNum as number));
      const { readFileSync } = await import('node:fs');
      const read = async () => ['api', 'worker'].flatMap((name) => readFileSync(path.join(platform.dataDir, `${name}.log`), 'utf8').split('\n')).filter((line) => line.startsWith('{'));
      // Log lines reach the files a little after the answers: wait for the last kind of each call.
      lines = await until(read, (ls) => callNums.every((n) => ls.some((l) => l.includes('"call ended"') && l.includes(`"callNum":${n}`))), 15_000, 'the call ended lines');
    } finally {
      await platform.stop();
    }
    const records = lines.map((line) => JSON.parse(line) as { msg: string; callNum?: number; level: number });
    for (const callNum of callNums) {
      const about = records.filter((r) => r.callNum === callNum).map((r) => r.msg);
      expect(about).toEqual(expect.arrayContaining(['call accepted', 'call ran', 'call ended']));
    }
    for (const r of records.filter((r) => /^call /.test(r.msg))) expect(typeof r.callNum).toBe('number');
  });
});
