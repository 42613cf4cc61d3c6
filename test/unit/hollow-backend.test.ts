import pino from 'pino';
import { backendFromEnv } from '../../protocol/backend';
import type { MiniworkerDb } from '../../protocol/db-client';
import type { Job } from '../../protocol/worker-messages';
import { HollowContainer, HollowMiniworkerBackend, miniworkerBackend } from '../../miniworker/backend';
import { Miniworker } from '../../miniworker/miniworker';
import { HollowNodeBackend, nodeBackend } from '../../worker/backend';
import { loadWorkerConfig } from '../../worker/config';

/**
 * The hollow back-end: a node that runs no container, for control-plane scale tests. It is chosen
 * only when asked for, says so, and goes through the same Miniworker as Docker does.
 */
const log = pino({ level: 'silent' });
const sandbox = { memoryBytes: 128 * 1024 * 1024, nanoCpus: 1e9, pidsLimit: 64, nofile: 1024, tmpfsBytes: 64 * 1024 * 1024, user: '1000:1000', network: 'none' as const, maxResultBytes: 1024 * 1024, maxLogBytes: 1024 * 1024, outputs: false, maxOutputBytes: 0 };

function job(callNum: number, mode: 'handler' | 'process', version = 'ab'.repeat(32)): Job {
  return {
    call: { callNum, funcName: 'echo', params: { n: callNum }, status: 'PENDING', createdAt: '2026-12-01T10:00:01.000Z', attempts: 1 },
    fn: { functionName: 'echo', runtimeName: 'py', version, size: 120, format: 'tar.gz', registeredAt: '2026-12-01T10:00:00.000Z' },
    runtime: { name: 'py', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py', mode, registeredAt: '2026-12-01T10:00:00.000Z' },
    image: 'hollow/echo',
    timeoutMs: 1000,
    sandbox,
    keepWarm: true,
    injectable: false,
  } as Job;
}

function fakeDb(): MiniworkerDb & { starts: number[] } {
  const starts: number[] = [];
  return {
    starts,
    startCall: async (command: { callNum: number }) => {
      starts.push(command.callNum);
      return {} as never;
    },
    putOutputs: async () => undefined,
    getSecretValues: async () => ({}),
  } as unknown as MiniworkerDb & { starts: number[] };
}

describe('choosing the back-end', () => {
  test('docker unless FAAS_BACKEND says hollow, with its latencies', () => {
    expect(loadWorkerConfig({ FAAS_NODE_ID: 'n1' }).backend).toEqual({ name: 'docker' });
    expect(loadWorkerConfig({ FAAS_NODE_ID: 'n1', FAAS_BACKEND: 'hollow', FAAS_HOLLOW_START_MS: '5', FAAS_HOLLOW_CALL_MS: '0' }).backend).toEqual({
      name: 'hollow',
      startMs: 5,
      callMs: 0,
      prepareMs: 0,
    });
    expect(() => loadWorkerConfig({ FAAS_NODE_ID: 'n1', FAAS_BACKEND: 'kubernetes' })).toThrow(/FAAS_BACKEND/);
    expect(() => loadWorkerConfig({ FAAS_NODE_ID: 'n1', FAAS_BACKEND: 'hollow', FAAS_HOLLOW_CALL_MS: '-1' })).toThrow(/FAAS_HOLLOW_CALL_MS/);
    expect(backendFromEnv({}).name).toBe('docker');
    expect(miniworkerBackend({ name: 'docker' }).name).toBe('docker');
  });

  test('a hollow node warns that it is one, and prepares images without an engine', async () => {
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    const backend = nodeBackend({ name: 'hollow', startMs: 0, callMs: 0, prepareMs: 0 }, { log: logger } as never);
    expect(backend).toBeInstanceOf(HollowNodeBackend);
    expect(warnings.join('')).toMatch(/HOLLOW NODE/);
    expect(await backend.start()).toBe(0);
    const fn = job(1, 'handler').fn;
    expect(await backend.prepareFunction(fn, job(1, 'handler').runtime)).toEqual({ ref: `hollow/echo:${fn.version.slice(0, 12)}`, injectable: true });
    expect(await backend.cleanup(new Set(), new Set())).toBe(0);
    await backend.shutdown();
  });
});

describe('hollow containers', () => {
  test('answer each call with its params, time out past their timeout, and refuse calls once disposed of', async () => {
    const container = await HollowContainer.start({ startMs: 0, callMs: 0 });
    expect(await container.invoke(1, { a: [1, 2] }, 1000)).toMatchObject({ kind: 'ok', result: '{"a":[1,2]}' });
    const slow = await HollowContainer.start({ startMs: 0, callMs: 50 });
    expect(await slow.invoke(2, {}, 10)).toMatchObject({ kind: 'timeout' });
    await container.dispose();
    expect(container.alive).toBe(false);
    await expect(container.invoke(3, {}, 1000)).rejects.toThrow(/disposed/);
  });

  test('a miniworker on a hollow node keeps a warm container per function version, as on Docker', async () => {
    const db = fakeDb();
    const miniworker = new Miniworker(new HollowMiniworkerBackend({ startMs: 0, callMs: 0 }), db, { nodeId: 'n1', platformLabel: 'tx', miniworkerId: 'mw-0-1', log });
    const first = await miniworker.run(job(1, 'handler'));
    const second = await miniworker.run(job(2, 'handler'));
    const other = await miniworker.run(job(3, 'handler', 'cd'.repeat(32)));
    expect(first).toMatchObject({ callNum: 1, status: 'DONE', result: '{"n":1}', coldStart: true });
    expect(second).toMatchObject({ callNum: 2, status: 'DONE', result: '{"n":2}', coldStart: false });
    expect(other).toMatchObject({ callNum: 3, status: 'DONE', coldStart: true });
    expect(miniworker.warmKey).not.toBeNull();
    await miniworker.retire();
    expect(miniworker.warmKey).toBeNull();
  });

  test('process-mode calls on a hollow node record RUNNING and end DONE, a container each', async () => {
    const db = fakeDb();
    const miniworker = new Miniworker(new HollowMiniworkerBackend({ startMs: 0, callMs: 0 }), db, { nodeId: 'n1', platformLabel: 'tx', miniworkerId: 'mw-0-1', log });
    expect(await miniworker.run(job(7, 'process'))).toMatchObject({ callNum: 7, status: 'DONE', result: '{"n":7}', coldStart: true });
    expect(db.starts).toEqual([7]);
  });
});
