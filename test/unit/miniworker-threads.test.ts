import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { PlatformError } from '../../protocol/errors';
import type { FinishCommand, StartCommand } from '../../protocol/call-lifecycle';
import type { MiniworkerDb } from '../../protocol/db-client';
import { warmKey, type Job, type Prewarm } from '../../protocol/worker-messages';
import { readFileSync } from 'node:fs';
import { MiniworkerPool } from '../../worker/miniworker-pool';
import { until } from '../helpers/until';

/**
 * Miniworkers as threads of the worker (FAAS_MINIWORKER_KIND=thread), with stand-in thread scripts
 * and a stand-in db client: what a thread says is checked as a process's frames are, its db
 * requests are made only for the call it holds, and a thread that fails, whatever the way, costs
 * its own call and nothing else.
 */
const log = pino({ level: 'silent' });
let dir = '';
let pools: MiniworkerPool[] = [];

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'faas-threads-'));
});
afterEach(async () => {
  await Promise.all(pools.map((p) => p.close()));
  pools = [];
  rmSync(dir, { recursive: true, force: true });
});

const sandbox = { memoryBytes: 128 * 1024 * 1024, nanoCpus: 1e9, pidsLimit: 64, nofile: 1024, tmpfsBytes: 64 * 1024 * 1024, user: '1000:1000', network: 'none' as const, maxResultBytes: 1024 * 1024, maxLogBytes: 1024 * 1024, outputs: false, maxOutputBytes: 0 };
function job(callNum: number): Job {
  return {
    call: { callNum, funcName: 'echo', params: { a: 1 }, status: 'PENDING', createdAt: '2026-12-01T10:00:01.000Z', attempts: 1 },
    fn: { functionName: 'echo', runtimeName: 'py', version: 'ab'.repeat(32), size: 120, format: 'tar.gz', registeredAt: '2026-12-01T10:00:00.000Z' },
    runtime: { name: 'py', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py', mode: 'handler', registeredAt: '2026-12-01T10:00:00.000Z' },
    image: 'img',
    timeoutMs: 1000,
    sandbox,
    keepWarm: true,
    injectable: false,
  } as Job;
}

/** A thread script: `onJob` is the body of a function of (job, post, answers) run for each job. */
function threadScript(name: string, onJob: string, extra = ''): string {
  const file = path.join(dir, `${name}.js`);
  writeFileSync(
    file,
    `const { parentPort } = require('node:worker_threads');
const answers = new Map();
const post = (m) => parentPort.postMessage(m);
${extra}
parentPort.on('message', async (m) => {
  if (m.msgType === 'dbAnswer') return answers.get(m.content.id)?.(m.content);
  if (m.msgType === 'stop') return process.exit(0);
  if (m.msgType === 'job') { const job = m.content; ${onJob} }
});
post({ msgType: 'ready', content: { pid: process.pid } });
`,
  );
  return file;
}

function fakeDb(): MiniworkerDb & { started: StartCommand[]; outputs: Array<[number, Buffer]> } {
  const started: StartCommand[] = [];
  const outputs: Array<[number, Buffer]> = [];
  return {
    started,
    outputs,
    startCall: async (command) => {
      started.push(command);
      return { applied: true } as never;
    },
    putOutputs: async (callNum, zip) => {
      outputs.push([callNum, zip]);
      return { ok: true };
    },
  };
}

function pool(script: string, db: MiniworkerDb = fakeDb(), options: { minSize?: number; maxSize?: number; stopGraceMs?: number } = {}): MiniworkerPool {
  const p = new MiniworkerPool({
    endpoint: `ipc://${path.join(dir, 'unused.sock')}`,
    minSize: options.minSize ?? 1,
    maxSize: options.maxSize ?? 1,
    keepAliveMs: 60_000,
    idleExitMs: 60_000,
    kind: 'thread',
    script: '/nonexistent',
    env: {},
    thread: { script, data: { nodeId: 'n1', platformLabel: 't' }, db },
    log,
    stopGraceMs: options.stopGraceMs ?? 300,
  });
  pools.push(p);
  return p;
}

async function idle(p: MiniworkerPool): Promise<void> {
  await until(async () => p.idleCount, (n) => n > 0, 10_000, 'an idle miniworker thread');
}

describe('miniworker threads', () => {
  test('a done for the job it holds is handed on; db requests are made for the held call only, and refused for another', async () => {
    const db = fakeDb();
    const script = threadScript(
      'honest',
      `const ask = (content) => new Promise((r) => { answers.set(content.id, r); post({ msgType: 'db', content }); });
       const own = await ask({ id: 1, op: 'startCall', command: { callNum: job.call.callNum, by: 'miniworker', attempt: 1, node: 'n1', startedAt: new Date().toISOString() } });
       const other = await ask({ id: 2, op: 'startCall', command: { callNum: job.call.callNum + 1, by: 'miniworker', attempt: 1, node: 'n1', startedAt: new Date().toISOString() } });
       const zip = await ask({ id: 3, op: 'putOutputs', callNum: job.call.callNum, zip: Buffer.from('zip bytes') });
       post({ msgType: 'done', content: { finish: { callNum: job.call.callNum, by: 'miniworker', attempt: 1, status: 'DONE', result: JSON.stringify([own.ok, other.ok, other.error && other.error.code, zip.ok]) }, warm: null } });`,
    );
    const p = pool(script, db);
    const done: FinishCommand[] = [];
    p.on('done', (finish: FinishCommand) => done.push(finish));
    await p.start();
    await idle(p);
    expect(p.assign(job(41))).toBe(true);
    await until(async () => done, (d) => d.length === 1, 10_000, 'the done');
    expect(JSON.parse(done[0]!.result!)).toEqual([true, false, 'FORBIDDEN', true]);
    expect(db.started.map((c) => c.callNum)).toEqual([41]);
    expect(db.outputs.map(([n, zip]) => [n, zip.toString()])).toEqual([[41, 'zip bytes']]);
    expect(p.busy).toBe(0);
  });

  test('forged and malformed messages from a thread are dropped; its real done still counts', async () => {
    const script = threadScript(
      'forger',
      `post({ msgType: 'done', content: { finish: { callNum: job.call.callNum + 1, by: 'miniworker', attempt: 1, status: 'DONE', result: '"forged"' }, warm: null } });
       post({ msgType: 'done', content: { finish: { callNum: job.call.callNum, by: 'worker', attempt: 1, status: 'DONE' }, warm: null } });
       post({ msgType: 'done', content: { finish: { callNum: job.call.callNum, by: 'miniworker', status: 'DONE', durationMs: Infinity }, warm: null } });
       post({ msgType: 'nonsense', content: {} });
       post('not even an object');
       post({ msgType: 'db', content: { op: 'startCall' } });
       post({ msgType: 'done', content: { finish: { callNum: job.call.callNum, by: 'miniworker', attempt: 1, status: 'DONE', result: '"real"' }, warm: null } });`,
    );
    const p = pool(script);
    const done: FinishCommand[] = [];
    p.on('done', (finish: FinishCommand) => done.push(finish));
    await p.start();
    await idle(p);
    p.assign(job(7));
    await until(async () => done, (d) => d.length === 1, 10_000, 'the real done');
    expect(done[0]).toMatchObject({ callNum: 7, result: '"real"' });
    await new Promise((r) => setImmediate(r));
    expect(done).toHaveLength(1);
  });

  test.each([
    ['throws', `throw new Error('boom');`],
    ['exits', `process.exit(3);`],
    ['outgrows its heap', `const keep = []; for (;;) keep.push(new Array(1e5).fill(keep.length));`],
  ])('a thread that %s mid-call loses that call only; the pool starts another and the worker lives on', async (_, body) => {
    const p = pool(threadScript('failing', body), fakeDb(), { minSize: 1 });
    const lost: Job[] = [];
    p.on('lost', (j: Job) => lost.push(j));
    await p.start();
    await idle(p);
    p.assign(job(9));
    await until(async () => lost, (l) => l.length === 1, 60_000, 'the call lost');
    expect(lost[0]!.call.callNum).toBe(9);
    await idle(p);
    expect(p.size).toBe(1);
  }, 90_000);

  test('a thread that ignores its stop is ended after the grace period; close() returns what it held', async () => {
    const p = pool(threadScript('stubborn', `setInterval(() => {}, 1000);`, `parentPort.removeAllListeners; process.exit = () => {};`), fakeDb(), { stopGraceMs: 200 });
    await p.start();
    await idle(p);
    p.assign(job(11));
    const cut = await p.close();
    expect(cut.map((j) => j.call.callNum)).toEqual([11]);
    expect(p.size).toBe(0);
  });

  test('a prewarm of many containers starts them a few at a time', async () => {
    // Each thread notes when its warm-up begins and ends; the intervals never overlap more than four deep.
    const log = path.join(dir, 'warmups.log');
    const script = path.join(dir, 'warming.js');
    writeFileSync(
      script,
      `const { parentPort, threadId } = require('node:worker_threads');
const fs = require('node:fs');
parentPort.on('message', (m) => {
  if (m.msgType === 'stop') return process.exit(0);
  if (m.msgType !== 'prewarm') return;
  fs.appendFileSync(${JSON.stringify(log)}, 'begin ' + threadId + '\\n');
  setTimeout(() => {
    fs.appendFileSync(${JSON.stringify(log)}, 'end ' + threadId + '\\n');
    parentPort.postMessage({ msgType: 'warmed', content: { warm: ${JSON.stringify(warmKey(job(1).fn))} } });
  }, 50);
});
parentPort.postMessage({ msgType: 'ready', content: { pid: process.pid } });
`,
    );
    const p = pool(script, fakeDb(), { minSize: 0, maxSize: 12 });
    await p.start();
    const { fn, runtime, image, sandbox: box } = job(1);
    p.prewarm({ fn, runtime, image, sandbox: box } as Prewarm, 12);
    await until(async () => p.warmCounts(), (w) => w[warmKey(fn)] === 12, 30_000, 'twelve containers warm');
    let open = 0;
    let deepest = 0;
    for (const line of readFileSync(log, 'utf8').trim().split('\n')) {
      open += line.startsWith('begin') ? 1 : -1;
      deepest = Math.max(deepest, open);
    }
    expect(deepest).toBeGreaterThan(0);
    expect(deepest).toBeLessThanOrEqual(4);
  });
});
