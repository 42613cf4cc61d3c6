import pino from 'pino';
import * as zmq from 'zeromq';
import { encodeRequest, decodeMessage } from '../../protocol/envelope';
import type { Call, FunctionRecord, Runtime } from '../../protocol/types';
import { WorkerHub } from '../../api/worker-hub';
import { until } from '../helpers/until';

/**
 * The hub against a raw worker socket: a call the worker's heartbeats never list is taken back from
 * it (its slot freed) and reported 'unheld'; one the heartbeats list stays with the worker.
 */
const log = pino({ level: 'silent' });
const fn: FunctionRecord = {
  functionName: 'echo',
  runtimeName: 'py',
  version: 'ab'.repeat(32),
  size: 1,
  format: 'tar.gz',
  registeredAt: '2026-12-01T10:00:00.000Z',
};
const runtime: Runtime = { name: 'py', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py', mode: 'handler', registeredAt: '2026-12-01T10:00:00.000Z' };
const call = (callNum: number): Call => ({ callNum, funcName: 'echo', params: {}, status: 'PENDING', result: '', createdAt: new Date().toISOString() });

/** The call numbers an api message invokes: one for invoke, several for invokes. */
function invokedIn(msgType: string, content: unknown): number[] {
  if (msgType === 'invoke') return [(content as { call: Call }).call.callNum];
  if (msgType === 'invokes') return (content as { invocations: Array<{ call: Call }> }).invocations.map((i) => i.call.callNum);
  return [];
}

describe('the hub reconciles what it sent with what a worker says it holds', () => {
  let hub: WorkerHub;
  let worker: zmq.Dealer;
  let beating: NodeJS.Timeout | undefined;

  afterEach(async () => {
    if (beating) clearInterval(beating);
    worker?.close();
    await hub?.close();
  });

  test('an invoke the worker never lists is taken back; a listed one stays', async () => {
    hub = new WorkerHub({ heartbeatMs: 50, liveness: 100, snapshot: async () => ({ runtimes: [], functions: [] }), log });
    const endpoint = await hub.bind('tcp://127.0.0.1:*');
    const unheld: number[] = [];
    hub.on('unheld', (callNum: number) => unheld.push(callNum));
    worker = new zmq.Dealer({ routingId: 'node-a:1', linger: 0 });
    worker.connect(endpoint);
    const received: number[] = [];
    void (async () => {
      for await (const [frame] of worker) {
        const message = decodeMessage(frame);
        if ('msgType' in message) received.push(...invokedIn(message.msgType, message.content));
      }
    })().catch(() => undefined);
    await worker.send(encodeRequest('h', 'hello', { nodeId: 'node-a', capacity: 2, pid: 1, inflight: [] }));
    await until(async () => hub.list().length, (n) => n === 1, 5000, 'the worker registered');

    hub.dispatch({ call: call(1), fn, runtime });
    hub.dispatch({ call: call(2), fn, runtime });
    await until(async () => received.length, (n) => n === 2, 5000, 'both invokes received');
    // The worker holds call 2 only: call 1's invoke "was lost".
    beating = setInterval(() => void worker.send(encodeRequest(String(Math.random()), 'heartbeat', { load: 1, queued: 0, inflight: [2] })).catch(() => undefined), 50);

    await until(async () => unheld, (u) => u.includes(1), 5000, 'call 1 reported unheld');
    const node = hub.list()[0]!;
    expect([...node.inflight.keys()]).toEqual([2]);
    expect(unheld).toEqual([1]);
    // The freed slot takes the next call.
    hub.dispatch({ call: call(3), fn, runtime });
    await until(async () => received, (r) => r.includes(3), 5000, 'call 3 sent to the freed slot');
  });

  test('calls made in one turn leave in one invokes message; calls reported together in callsDone end one by one; one the worker does not hold is dropped', async () => {
    hub = new WorkerHub({ maxBodyBytes: 1024 * 1024, heartbeatMs: 50, liveness: 100, snapshot: async () => ({ runtimes: [], functions: [] }), log });
    const endpoint = await hub.bind('tcp://127.0.0.1:*');
    const ended: Call[] = [];
    hub.on('callDone', (done: Call) => ended.push(done));
    worker = new zmq.Dealer({ routingId: 'node-b:1', linger: 0 });
    worker.connect(endpoint);
    const received: number[] = [];
    const messages: string[] = [];
    void (async () => {
      for await (const [frame] of worker) {
        const message = decodeMessage(frame);
        if ('msgType' in message) messages.push(message.msgType);
        if ('msgType' in message) received.push(...invokedIn(message.msgType, message.content));
      }
    })().catch(() => undefined);
    await worker.send(encodeRequest('h', 'hello', { nodeId: 'node-b', capacity: 4, pid: 1, inflight: [] }));
    await until(async () => hub.list().length, (n) => n === 1, 5000, 'the worker registered');
    for (const n of [11, 12, 13]) hub.dispatch({ call: call(n), fn, runtime });
    await until(async () => received.length, (n) => n === 3, 5000, 'three invokes received');
    // Made in one turn, they left in one message.
    expect(messages.filter((m) => m === 'invokes')).toHaveLength(1);
    expect(messages.filter((m) => m === 'invoke')).toHaveLength(0);

    const final = (callNum: number): Call => ({ ...call(callNum), status: 'DONE', result: String(callNum), funcName: 'forged-name' });
    await worker.send(encodeRequest('d', 'callsDone', { calls: [final(11), final(99), final(12)] }));
    await until(async () => ended.length, (n) => n === 2, 5000, 'two calls ended');
    // Each is handed on under the function the api dispatched, whatever the worker said.
    expect(ended.map((c) => [c.callNum, c.funcName, c.result])).toEqual([
      [11, 'echo', '11'],
      [12, 'echo', '12'],
    ]);
    expect([...hub.list()[0]!.inflight.keys()]).toEqual([13]);
    expect(hub.channelStats().dropped).toMatchObject({ not_held: 1 });
  });
});
