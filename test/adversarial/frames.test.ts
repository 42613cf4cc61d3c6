import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as zmq from 'zeromq';
import { encodeRequest } from '../../protocol/envelope';
import { FIXTURES, tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

/**
 * Forged frames on the api's worker socket and on a worker's miniworker socket, sent by a local
 * process without keys (a raw ZeroMQ DEALER), against the real db-service, api and worker. After
 * each, the real worker is still listed and a new call ends DONE.
 */

const RUNTIME = { name: 'pyfixture', image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 main.py' };

interface Received {
  msgType?: string;
  content?: any;
}

/** A local process that speaks ZeroMQ to a platform socket, as a worker or miniworker would. */
class Rogue {
  readonly socket: zmq.Dealer;

  constructor(endpoint: string, routingId: string) {
    this.socket = new zmq.Dealer({ routingId, linger: 0, receiveTimeout: 20_000 });
    this.socket.connect(endpoint);
  }

  async raw(frame: Buffer | string): Promise<void> {
    await this.socket.send(frame);
  }

  async send(msgType: string, content: unknown): Promise<void> {
    await this.socket.send(encodeRequest(`rogue-${Math.random()}`, msgType, content));
  }

  /** The next message for this peer; heartbeats from the api are skipped. */
  async next(): Promise<Received> {
    for (;;) {
      const [frame] = await this.socket.receive();
      const message = JSON.parse(frame!.toString()) as Received;
      if (message.msgType !== 'heartbeat') return message;
    }
  }

  /**
   * Probes the api as an unregistered peer: a heartbeat is answered `reregister`. Frames are
   * handled in order, so the answer also says that every frame sent before it was handled.
   */
  async probeUnregistered(): Promise<void> {
    await this.send('heartbeat', { load: 0, queued: 0 });
    expect((await this.next()).msgType).toBe('reregister');
  }

  close(): void {
    this.socket.close();
  }
}

/** A finished call, as a worker would report it, with what the forger wants in it. */
function forgedCall(callNum: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = new Date().toISOString();
  return { callNum, funcName: 'echo', params: {}, status: 'DONE', result: '"forged"', createdAt: now, startedAt: now, endedAt: now, durationMs: 1, node: 'rogue', ...extra };
}

describe('adversarial: forged frames on the worker channels', () => {
  let platform: TestPlatform;
  let endpoint = '';
  let realNode = '';
  let rogueCount = 0;

  const rogue = (routingId = `rogue-${++rogueCount}`) => new Rogue(endpoint, routingId);

  /** Lines the api (or worker) logged for frames it dropped, with this reason. */
  function drops(service: 'api' | 'worker', reason: string): Array<Record<string, unknown>> {
    const text = readFileSync(path.join(platform.dataDir, `${service}.log`), 'utf8');
    return text
      .split('\n')
      .filter((line) => line.includes('"dropped a frame'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((entry) => entry.reason === reason);
  }

  async function dropLogged(service: 'api' | 'worker', reason: string, before: number): Promise<void> {
    await until(async () => drops(service, reason).length, (n) => n > before, 15_000, `a ${reason} drop logged by the ${service}`);
  }

  async function invoke(params: unknown = { n: Math.random() }, funcName = 'echo'): Promise<number> {
    const { status, body } = await platform.json('POST', '/invokeFunction', { funcName, params });
    expect(status).toBe(202);
    return body.callNum as number;
  }

  /** The real worker is the one listed, and a new call ends DONE with its real result. */
  async function stillServing(): Promise<void> {
    const health = await platform.json('GET', '/health');
    expect(health.status).toBe(200);
    expect(health.body.workers.nodes).toEqual([realNode]);
    const params = { check: Math.random() };
    const call = await platform.waitFinal(await invoke(params));
    expect(call.status).toBe('DONE');
    expect(JSON.parse(call.result).params).toEqual(params);
  }

  beforeAll(async () => {
    // Miniworkers as processes: the miniworker socket is what the forgeries below aim at.
    platform = await TestPlatform.start({ env: { FAAS_CALL_TIMEOUT_MS: '20000', FAAS_MINIWORKER_KIND: 'process' } });
    endpoint = platform.env.FAAS_WORKER_ENDPOINT!;
    realNode = platform.env.FAAS_NODE_ID!;
    expect((await platform.json('POST', '/registerRuntime', RUNTIME)).status).toBe(201);
    expect((await platform.upload('pyfixture', 'echo', await tarGzOf(path.join(FIXTURES, 'echo')))).status).toBe(201);
    expect((await platform.upload('pyfixture', 'nap', await tarGzOf(path.join(FIXTURES, 'nap')))).status).toBe(201);
    // Both function images are built before the cases: a call a client waits on then takes seconds.
    expect((await platform.waitFinal(await invoke({ s: 0 }, 'nap'))).status).toBe('DONE');
    await stillServing();
  }, 300_000);

  afterAll(async () => platform?.stop());

  test('a callDone whose durationMs is 1e999 (Infinity once parsed) is dropped; the receive loop goes on', async () => {
    const before = drops('api', 'bad_content').length;
    const peer = rogue();
    try {
      const callNum = await invoke();
      await peer.raw(`{"v":1,"id":"x","msgType":"callDone","content":{"call":{"callNum":${callNum},"funcName":"echo","params":{},"status":"DONE","result":"","createdAt":"x","durationMs":1e999}}}`);
      await peer.probeUnregistered();
      await dropLogged('api', 'bad_content', before);
      expect((await platform.waitFinal(callNum)).result).not.toBe('');
    } finally {
      peer.close();
    }
    await stillServing();
  });

  test('a callDone from a peer that never said hello, for a call a client waits on: the client gets the real result', async () => {
    const before = drops('api', 'unregistered').length;
    const peer = rogue();
    try {
      const last = await invoke();
      await platform.waitFinal(last);
      // Call numbers follow each other: the waiting call is the next one.
      const waiting = platform.json('POST', '/invokeFunction?wait=true', { funcName: 'nap', params: { s: 2 } });
      await until(async () => (await platform.json('GET', `/call/${last + 1}`)).status, (s) => s === 200, 15_000, 'the waiting call created');
      await peer.send('callDone', { call: forgedCall(last + 1, { funcName: 'nap' }) });
      await peer.probeUnregistered();
      await dropLogged('api', 'unregistered', before);
      const answer = await waiting;
      expect(answer.body).toMatchObject({ callNum: last + 1, status: 'DONE', result: 'rested' });
    } finally {
      peer.close();
    }
    await stillServing();
  });

  test('a registered rogue: a callDone for a call it does not hold and a replayed callDone of an ended call are dropped', async () => {
    const ended = await invoke();
    const endedCall = await platform.waitFinal(ended);
    const before = drops('api', 'not_held').length;
    const peer = rogue();
    try {
      // Without CURVE a local process can register (the allow-list of keys is the CURVE setup's);
      // draining at once, it takes no calls. It claims the call that already ended.
      await peer.send('hello', { nodeId: 'rogue-node', capacity: 1, pid: 1, inflight: [ended] });
      await peer.send('draining', {});
      expect((await peer.next()).msgType).toBe('welcome');

      const last = await invoke();
      await platform.waitFinal(last);
      const waiting = platform.json('POST', '/invokeFunction?wait=true', { funcName: 'nap', params: { s: 2 } });
      await until(async () => (await platform.json('GET', `/call/${last + 1}`)).status, (s) => s === 200, 15_000, 'the waiting call created');
      await peer.send('callDone', { call: forgedCall(last + 1, { funcName: 'nap' }) });
      await peer.send('callDone', { call: forgedCall(ended) });
      await peer.send('handBack', { callNum: last + 1 });
      await until(async () => drops('api', 'not_held').length, (n) => n >= before + 3, 15_000, 'three not_held drops logged');
      const held = drops('api', 'not_held').slice(before).map((d) => d.detail);
      expect(held).toEqual([`call ${last + 1}`, `call ${ended}`, `call ${last + 1}`]);

      const answer = await waiting;
      expect(answer.body).toMatchObject({ callNum: last + 1, status: 'DONE', result: 'rested' });
      expect((await platform.json('GET', `/call/${ended}`)).body).toMatchObject({ status: 'DONE', result: endedCall.result });
      await peer.send('bye', {});
      await until(async () => (await platform.json('GET', '/health')).body.workers.nodes, (nodes) => !nodes.includes('rogue-node'), 15_000, 'the rogue gone');
    } finally {
      peer.close();
    }
    await stillServing();
  });

  test.each([
    ['an oversized frame (17 MiB)', 'too_large', () => Buffer.alloc(17 * 1024 * 1024, 0x20)],
    ['a frame that is not JSON', 'not_json', () => Buffer.from('{"v":1,"msgType":"callDone",')],
    ['another protocol version', 'version', () => encodeRequest('x', 'callDone', { call: forgedCall(1) }).toString().replace('"v":1', '"v":2')],
    ['an unknown msgType', 'unknown_type', () => encodeRequest('x', 'takeOver', {})],
  ])('%s is dropped', async (_what, reason, frame) => {
    const before = drops('api', reason).length;
    const peer = rogue();
    try {
      await peer.raw(frame());
      if (reason === 'too_large') {
        // ZeroMQ itself refuses a frame past the socket's maxMessageSize: it drops that connection
        // (and what was queued behind the frame). Another peer is still heard.
        const other = rogue();
        try {
          await other.probeUnregistered();
        } finally {
          other.close();
        }
      } else {
        await peer.probeUnregistered();
        await dropLogged('api', reason, before);
      }
    } finally {
      peer.close();
    }
    await stillServing();
  });

  test('a heartbeat before hello is answered reregister and registers nothing', async () => {
    const before = drops('api', 'unregistered').length;
    const peer = rogue();
    try {
      await peer.send('heartbeat', { load: 0, queued: 0, inflight: [1, 2, 3] });
      expect((await peer.next()).msgType).toBe('reregister');
      await dropLogged('api', 'unregistered', before);
    } finally {
      peer.close();
    }
    await stillServing();
  });

  test.each([
    ['capacity 1e9', { nodeId: 'rogue-big', capacity: 1e9, pid: 1 }],
    ['a node id with spaces and a newline', { nodeId: 'rogue node\n{"level":60}', capacity: 1, pid: 1 }],
    ['a node id of 4 kB', { nodeId: 'n'.repeat(4096), capacity: 1, pid: 1 }],
  ])('a hello with %s gets no welcome, no function env and no calls', async (_what, hello) => {
    const before = drops('api', 'bad_content').length;
    const peer = rogue();
    try {
      await peer.send('hello', hello);
      // The first thing it hears is reregister: it was never registered, so no welcome came.
      await peer.probeUnregistered();
      await dropLogged('api', 'bad_content', before);
    } finally {
      peer.close();
    }
    await stillServing();
  });

  test('forged frames on the miniworker socket: a done for a job never given is dropped and the worker keeps serving', async () => {
    const workerPid = platform.procs.get('worker')!.pid!;
    const ipc = `ipc://${path.join(platform.dataDir, 'worker', `miniworkers-${workerPid}.sock`)}`;
    const unknown = drops('worker', 'unknown_peer').length;
    const notJson = drops('worker', 'not_json').length;
    const badContent = drops('worker', 'bad_content').length;
    const callNum = await invoke();
    await platform.waitFinal(callNum);
    const peer = new Rogue(ipc, `mw-9999-${workerPid}`);
    try {
      await peer.send('ready', { pid: 1 });
      await peer.send('done', { finish: { callNum: callNum + 1, by: 'miniworker', attempt: 1, status: 'DONE', result: '"forged"' }, warm: null });
      await peer.raw('not json');
      await peer.raw(`{"v":1,"id":"x","msgType":"done","content":{"finish":{"callNum":1,"by":"miniworker","status":"DONE","result":"","durationMs":1e999},"warm":null}}`);
      await dropLogged('worker', 'unknown_peer', unknown + 1);
      await dropLogged('worker', 'not_json', notJson);
      await dropLogged('worker', 'bad_content', badContent);
    } finally {
      peer.close();
    }
    await stillServing();
    const next = await platform.waitFinal(await invoke({ after: 'miniworker forgery' }));
    expect(next.status).toBe('DONE');
  });
});
