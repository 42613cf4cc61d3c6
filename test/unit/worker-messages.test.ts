import { randomBytes } from 'node:crypto';
import {
  apiToWorkerSchemas,
  callSchema,
  miniworkerToWorkerSchemas,
  workerToApiSchemas,
  workerToMiniworkerSchemas,
} from '../../protocol/worker-messages';
import { describeWarmCounts, describeWarmKey, isKeyOfFunction, isStemKey, isWarmKey, stemKey, warmKey, warmKeySchema } from '../../protocol/warm-key';
import type { Call, FunctionRecord, Runtime } from '../../protocol/types';

/** The schemas of the api–worker and worker–miniworker channels, and the warm key. */

const version = 'ab'.repeat(32);
const fn: FunctionRecord = {
  functionName: 'echo',
  runtimeName: 'py',
  version,
  size: 120,
  format: 'tar.gz',
  registeredAt: '2026-12-01T10:00:00.000Z',
};
const runtime: Runtime = { name: 'py', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py', mode: 'handler', registeredAt: '2026-12-01T10:00:00.000Z' };
const call: Call = { callNum: 7, funcName: 'echo', params: { a: 1 }, status: 'DONE', result: '"ok"', createdAt: '2026-12-01T10:00:01.000Z', durationMs: 12, exitCode: 0 };
const sandbox = {
  memoryBytes: 128 * 1024 * 1024,
  nanoCpus: 1e9,
  pidsLimit: 64,
  nofile: 1024,
  tmpfsBytes: 64 * 1024 * 1024,
  user: '1000:1000',
  network: 'none' as const,
  maxResultBytes: 1024 * 1024,
  maxLogBytes: 1024 * 1024,
  outputs: false,
  maxOutputBytes: 0,
};

/** JSON as it arrives: what a peer can send, including 1e999 (Infinity once parsed). */
function wire(text: string): unknown {
  return JSON.parse(text);
}

describe('callDone and the CALL schema', () => {
  test('a real call passes and keeps its params', () => {
    const parsed = workerToApiSchemas.callDone.parse({ call });
    expect(parsed.call).toEqual(call);
  });

  test('params may be null or absent values stay as sent', () => {
    expect(callSchema.parse({ ...call, params: null }).params).toBeNull();
  });

  test.each([
    ['durationMs 1e999 (Infinity)', '{"call":{"callNum":7,"funcName":"echo","params":{},"status":"DONE","result":"","createdAt":"x","durationMs":1e999}}'],
    ['durationMs -1e999', '{"call":{"callNum":7,"funcName":"echo","params":{},"status":"DONE","result":"","createdAt":"x","durationMs":-1e999}}'],
    ['exitCode 1e999', '{"call":{"callNum":7,"funcName":"echo","params":{},"status":"DONE","result":"","createdAt":"x","exitCode":1e999}}'],
    ['callNum 0', '{"call":{"callNum":0,"funcName":"echo","params":{},"status":"DONE","result":"","createdAt":"x"}}'],
    ['callNum 1.5', '{"call":{"callNum":1.5,"funcName":"echo","params":{},"status":"DONE","result":"","createdAt":"x"}}'],
    ['callNum 1e999', '{"call":{"callNum":1e999,"funcName":"echo","params":{},"status":"DONE","result":"","createdAt":"x"}}'],
    ['callNum as a string', '{"call":{"callNum":"7","funcName":"echo","params":{},"status":"DONE","result":"","createdAt":"x"}}'],
    ['an unknown status', '{"call":{"callNum":7,"funcName":"echo","params":{},"status":"WON","result":"","createdAt":"x"}}'],
    ['an unknown reason', '{"call":{"callNum":7,"funcName":"echo","params":{},"status":"ERROR","result":"","createdAt":"x","reason":"because"}}'],
    ['a function name that is no name', '{"call":{"callNum":7,"funcName":"../../etc","params":{},"status":"DONE","result":"","createdAt":"x"}}'],
    ['a result that is not a string', '{"call":{"callNum":7,"funcName":"echo","params":{},"status":"DONE","result":{"a":1},"createdAt":"x"}}'],
    ['no call at all', '{}'],
    ['a call that is null', '{"call":null}'],
  ])('%s is refused', (_what, text) => {
    expect(workerToApiSchemas.callDone.safeParse(wire(text)).success).toBe(false);
  });

  test('a call with a key the platform does not know loses that key', () => {
    const parsed = callSchema.parse({ ...call, isAdmin: true });
    expect(parsed).not.toHaveProperty('isAdmin');
  });

  test('bounded strings: a node name of 10 kB is refused', () => {
    expect(callSchema.safeParse({ ...call, node: 'n'.repeat(10_000) }).success).toBe(false);
  });
});

describe('hello and heartbeat', () => {
  const hello = { nodeId: 'node-1', capacity: 4, pid: 123, inflight: [1, 2] };

  test('a worker hello passes', () => {
    expect(workerToApiSchemas.hello.parse(hello)).toEqual(hello);
  });

  test.each([
    ['capacity 1e9', { ...hello, capacity: 1e9 }],
    ['capacity 0', { ...hello, capacity: 0 }],
    ['capacity 1025', { ...hello, capacity: 1025 }],
    ['capacity 2.5', { ...hello, capacity: 2.5 }],
    ['a node id with a space', { ...hello, nodeId: 'node 1' }],
    ['a node id with a newline', { ...hello, nodeId: 'node\n1' }],
    ['an empty node id', { ...hello, nodeId: '' }],
    ['a node id of 129 characters', { ...hello, nodeId: 'n'.repeat(129) }],
    ['an unknown key', { ...hello, admin: true }],
    ['an inflight list of 10001 calls', { ...hello, inflight: Array.from({ length: 10_001 }, (_, i) => i + 1) }],
    ['an inflight call 0', { ...hello, inflight: [0] }],
  ])('a hello with %s is refused', (_what, content) => {
    expect(workerToApiSchemas.hello.safeParse(content).success).toBe(false);
  });

  test('capacity 1024 is the most a hello may ask for', () => {
    expect(workerToApiSchemas.hello.safeParse({ ...hello, capacity: 1024 }).success).toBe(true);
  });

  test('a heartbeat carries warm keys; one that is not a warm key is refused', () => {
    const key = warmKey(fn);
    expect(workerToApiSchemas.heartbeat.parse({ load: 1, queued: 0, warm: { [key]: 2, [stemKey('py')]: 1 }, inflight: [3] })).toMatchObject({ warm: { [key]: 2 } });
    expect(workerToApiSchemas.heartbeat.safeParse({ load: 1, queued: 0, warm: { 'echo@notahash': 1 } }).success).toBe(false);
    expect(workerToApiSchemas.heartbeat.safeParse({ load: 1e999, queued: 0 }).success).toBe(false);
    const many = Object.fromEntries(Array.from({ length: 4097 }, (_, i) => [warmKey({ ...fn, functionName: `f${i}` }), 1]));
    expect(workerToApiSchemas.heartbeat.safeParse({ load: 0, queued: 0, warm: many }).success).toBe(false);
  });

  test('handBack needs a call number', () => {
    expect(workerToApiSchemas.handBack.safeParse({ callNum: 5 }).success).toBe(true);
    expect(workerToApiSchemas.handBack.safeParse({ callNum: -5 }).success).toBe(false);
  });
});

describe('api to worker', () => {
  test('an invoke carries the call, the function, the runtime and when it was dispatched', () => {
    const invoke = { call, fn, runtime, dispatchedAt: '2026-12-01T10:00:01.500Z' };
    expect(apiToWorkerSchemas.invoke.parse(invoke)).toEqual(invoke);
    expect(apiToWorkerSchemas.invoke.safeParse({ call, fn }).success).toBe(false);
    expect(apiToWorkerSchemas.invoke.safeParse({ call, fn: { ...fn, version: 'short' }, runtime }).success).toBe(false);
  });

  test('welcome carries the heartbeat interval, a positive whole number', () => {
    expect(apiToWorkerSchemas.welcome.parse({ runtimes: [runtime], functions: [fn], heartbeatMs: 500 }).heartbeatMs).toBe(500);
    for (const heartbeatMs of [0, -1, 1.5, Infinity, '500']) {
      expect(apiToWorkerSchemas.welcome.safeParse({ runtimes: [], functions: [], heartbeatMs }).success).toBe(false);
    }
  });
});

describe('worker and miniworker', () => {
  test('a job needs a sandbox with whole numbers', () => {
    const job = { call, fn, runtime, image: 'img', timeoutMs: 1000, sandbox, keepWarm: true, injectable: false };
    expect(workerToMiniworkerSchemas.job.parse(job)).toEqual(job);
    expect(workerToMiniworkerSchemas.job.safeParse({ ...job, sandbox: { ...sandbox, memoryBytes: Infinity } }).success).toBe(false);
    expect(workerToMiniworkerSchemas.job.safeParse({ ...job, sandbox: { ...sandbox, network: 'host' } }).success).toBe(false);
  });

  test('done carries a finish command and a warm key or null; warmed a warm key', () => {
    const finish = { callNum: 7, by: 'miniworker', attempt: 1, status: 'DONE', result: '1', stdout: '', stderr: '' };
    expect(miniworkerToWorkerSchemas.done.parse({ finish, warm: warmKey(fn) }).warm).toBe(warmKey(fn));
    expect(miniworkerToWorkerSchemas.done.parse({ finish, warm: null }).warm).toBeNull();
    expect(miniworkerToWorkerSchemas.done.safeParse({ finish, warm: 'anything' }).success).toBe(false);
    // The stored call is not what a miniworker sends, nor a status no finish has, nor a field of another command.
    expect(miniworkerToWorkerSchemas.done.safeParse({ call, warm: null }).success).toBe(false);
    expect(miniworkerToWorkerSchemas.done.safeParse({ finish: { ...finish, status: 'PENDING' }, warm: null }).success).toBe(false);
    expect(miniworkerToWorkerSchemas.done.safeParse({ finish: { ...finish, funcName: 'x' }, warm: null }).success).toBe(false);
    expect(miniworkerToWorkerSchemas.warmed.safeParse({ warm: stemKey('py'), error: 'x'.repeat(70_000) }).success).toBe(false);
  });
});

describe('the warm key', () => {
  const withEverything: FunctionRecord = {
    ...fn,
    outputs: true,
    limits: { memoryMb: 64, cpus: 0.5, timeoutMs: 1500, concurrency: 2, network: true },
    env: { A: '1', B: 'two' },
  };

  test('every key the platform makes is a valid key that says its function and version', () => {
    for (const record of [fn, { ...fn, outputs: true }, { ...fn, limits: { cpus: 1e-7 } }, { ...fn, env: { X: 'y' } }, withEverything]) {
      const key = warmKey(record);
      expect(isWarmKey(key)).toBe(true);
      expect(warmKeySchema.parse(key)).toBe(key);
      expect(describeWarmKey(key)).toEqual({ kind: 'function', function: 'echo', version });
      expect(isKeyOfFunction(key, 'echo')).toBe(true);
      expect(isKeyOfFunction(key, 'ech')).toBe(false);
      expect(isStemKey(key)).toBe(false);
    }
  });

  test('other settings give another key; the order of env entries does not', () => {
    expect(warmKey({ ...fn, limits: { memoryMb: 64 } })).not.toBe(warmKey({ ...fn, limits: { memoryMb: 65 } }));
    expect(warmKey({ ...fn, env: { A: '1', B: '2' } })).toBe(warmKey({ ...fn, env: { B: '2', A: '1' } }));
    expect(warmKey({ ...fn, outputs: true })).not.toBe(warmKey(fn));
  });

  test('stem keys', () => {
    expect(describeWarmKey(stemKey('py'))).toEqual({ kind: 'stem', runtime: 'py' });
    expect(isStemKey(stemKey('py'))).toBe(true);
  });

  test.each(['', 'echo', 'echo@', `echo@${version}~`, `Echo@${version}`, `echo@${version}#short`, 'stem:', 'stem:Py', `echo@${version}\n`, randomBytes(40).toString('latin1')])(
    '%j is no warm key',
    (key) => {
      expect(isWarmKey(key)).toBe(false);
      expect(describeWarmKey(key)).toBeUndefined();
    },
  );

  test('a node\'s warm counts for display', () => {
    expect(describeWarmCounts({ [warmKey(withEverything)]: 2, [stemKey('py')]: 1 } as never)).toEqual({
      warm: [{ function: 'echo', version, containers: 2 }],
      stems: [{ runtime: 'py', containers: 1 }],
    });
  });
});
