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
        if ('msgType' in message && message.msgType === 'invoke') received.push((message.content as { call: Call }).call.callNum);
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
});
