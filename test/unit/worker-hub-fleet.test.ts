import pino from 'pino';
import * as zmq from 'zeromq';
import { decodeMessage, encodeRequest } from '../../protocol/envelope';
import type { FunctionRecord, Runtime } from '../../protocol/types';
import { WorkerHub } from '../../api/worker-hub';
import { until } from '../helpers/until';

/**
 * The hub with a fleet: many workers saying hello at once share one catalog read, a read begun
 * before a catalog change is not reused after it, and a beat of the api's that comes late (the api
 * stalled) judges nobody while the next one does.
 */
const log = pino({ level: 'silent' });
const fn: FunctionRecord = { functionName: 'echo', runtimeName: 'py', version: 'ab'.repeat(32), size: 1, format: 'tar.gz', registeredAt: '2026-12-01T10:00:00.000Z' };
const runtime: Runtime = { name: 'py', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py', mode: 'handler', registeredAt: '2026-12-01T10:00:00.000Z' };

let hub: WorkerHub | undefined;
let sockets: zmq.Dealer[] = [];
afterEach(async () => {
  for (const s of sockets) s.close();
  sockets = [];
  await hub?.close();
  hub = undefined;
});

/** A raw worker socket that says hello and counts the welcomes it gets. */
function worker(endpoint: string, nodeId: string): { socket: zmq.Dealer; welcomes: () => number; reregisters: () => number; hello: () => Promise<void> } {
  const socket = new zmq.Dealer({ routingId: `${nodeId}:1`, linger: 0 });
  sockets.push(socket);
  socket.connect(endpoint);
  let welcomes = 0;
  let reregisters = 0;
  void (async () => {
    for await (const [frame] of socket) {
      const message = decodeMessage(frame);
      if ('msgType' in message && message.msgType === 'welcome') welcomes += 1;
      if ('msgType' in message && message.msgType === 'reregister') reregisters += 1;
    }
  })().catch(() => undefined);
  return { socket, welcomes: () => welcomes, reregisters: () => reregisters, hello: () => socket.send(encodeRequest(nodeId, 'hello', { nodeId, capacity: 2, pid: 1, inflight: [] })) };
}

test('thirty workers saying hello together share one catalog read, and each is welcomed', async () => {
  let reads = 0;
  hub = new WorkerHub({
    heartbeatMs: 1000,
    liveness: 3,
    snapshot: async () => {
      reads += 1;
      // The read lasts until every hello has arrived, however slowly this machine delivers them.
      await until(async () => hub!.list().length, (n) => n === 30, 10_000, 'all thirty registered');
      return { runtimes: [runtime], functions: [fn] };
    },
    log,
  });
  const endpoint = await hub.bind('tcp://127.0.0.1:*');
  const fleet = Array.from({ length: 30 }, (_, i) => worker(endpoint, `node-${i}`));
  await Promise.all(fleet.map((w) => w.hello()));
  await until(async () => fleet.every((w) => w.welcomes() === 1), (all) => all, 5000, 'every worker welcomed');
  expect(reads).toBe(1);
  expect(hub.list()).toHaveLength(30);
});

test('a catalog change during a read makes the next hello read again', async () => {
  let reads = 0;
  let release: () => void = () => undefined;
  hub = new WorkerHub({
    heartbeatMs: 1000,
    liveness: 3,
    snapshot: async () => {
      reads += 1;
      if (reads === 1) await new Promise<void>((r) => (release = r));
      return { runtimes: [runtime], functions: [fn] };
    },
    log,
  });
  const endpoint = await hub.bind('tcp://127.0.0.1:*');
  const a = worker(endpoint, 'node-a');
  await a.hello();
  await until(async () => reads, (n) => n === 1, 5000, 'the first read begun');
  hub.broadcast('functionRegistered', { fn: { ...fn, version: 'cd'.repeat(32) } });
  const b = worker(endpoint, 'node-b');
  await b.hello();
  await until(async () => b.welcomes(), (n) => n === 1, 5000, 'node-b welcomed with a read of its own');
  expect(reads).toBe(2);
  release();
  await until(async () => a.welcomes(), (n) => n === 1, 5000, 'node-a welcomed');
});

test('a late beat of a stalled api expires nobody; the next beat does', async () => {
  hub = new WorkerHub({ heartbeatMs: 200, liveness: 10, snapshot: async () => ({ runtimes: [], functions: [] }), log });
  const endpoint = await hub.bind('tcp://127.0.0.1:*');
  const left: string[] = [];
  hub.on('workerLeft', (w: { nodeId: string }) => left.push(w.nodeId));
  const silent = worker(endpoint, 'node-quiet');
  await silent.hello();
  await until(async () => hub!.list().length, (n) => n === 1, 5000, 'the worker registered');
  // The api stalls for 2.5 s: past the worker's liveness (2 s), but it is the api that was away.
  const stalledUntil = Date.now() + 2500;
  while (Date.now() < stalledUntil) {
    /* a stalled event loop */
  }
  // The late beat was due during the stall: it runs before a timer set now.
  const afterLateBeat = await new Promise<number>((r) => setTimeout(() => r(hub!.list().length), 1));
  expect(afterLateBeat).toBe(1);
  expect(left).toEqual([]);
  // The worker stays silent: the next beat expires it.
  await until(async () => left, (l) => l.includes('node-quiet'), 5000, 'the silent worker expired');
});

test('a worker whose welcome could not be read is asked to say hello again, and welcomed then', async () => {
  let reads = 0;
  hub = new WorkerHub({
    heartbeatMs: 50,
    liveness: 4,
    snapshot: async () => {
      reads += 1;
      if (reads === 1) throw new Error('db-service did not answer');
      return { runtimes: [runtime], functions: [fn] };
    },
    log,
  });
  const endpoint = await hub.bind('tcp://127.0.0.1:*');
  const a = worker(endpoint, 'node-a');
  await a.hello();
  await until(async () => a.reregisters(), (n) => n === 1, 5000, 'asked to say hello again');
  expect(a.welcomes()).toBe(0);
  await a.hello();
  await until(async () => a.welcomes(), (n) => n === 1, 5000, 'welcomed on the second hello');
  expect(reads).toBe(2);
});
