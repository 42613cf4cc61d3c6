import { createHash } from 'node:crypto';
import path from 'node:path';
import { FIXTURES, tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

/**
 * Where calls go with two workers (FAAS_SCHEDULER), and the per-function concurrency limit across
 * them. Node A is the platform's own worker, node B a second one started by the test.
 */
const TRICKY = path.join(FIXTURES, '..', 'handlers', 'tricky');
const HANDLER = { name: 'pyhandler', image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 /opt/faas/handler.py', mode: 'handler' };
const PROCESS = { name: 'pyproc', image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 main.py' };

/** The README's rendezvous hashing: a function's home is the node with the highest score. */
function homeOf(funcName: string, nodes: string[]): string {
  const score = (node: string) => createHash('sha1').update(`${funcName}\0${node}`).digest().readUInt32BE(0);
  return nodes.reduce((a, b) => (score(b) > score(a) ? b : a));
}

/** A function name whose home is `node` among `nodes`. */
function nameHomedAt(prefix: string, node: string, nodes: string[]): string {
  for (let i = 0; ; i++) if (homeOf(`${prefix}${i}`, nodes) === node) return `${prefix}${i}`;
}

interface WorkerView {
  nodeId: string;
  warm: Array<{ function: string; containers: number }>;
}

async function nodeOfSyncCall(platform: TestPlatform, funcName: string, params: unknown = {}): Promise<string> {
  const answer = await platform.json('POST', '/invokeFunction?wait=true', { funcName, params });
  expect({ status: answer.status, call: answer.body.status }).toEqual({ status: 200, call: 'DONE' });
  return answer.body.node;
}

describe.each([
  // warm: the node with a warm container first, even when the function's home is elsewhere.
  ['warm', 'a'],
  // home: the function's home node first (while it is less than 3/4 busy), warm or not.
  ['home', 'b'],
] as const)('FAAS_SCHEDULER=%s', (policy, expected) => {
  let platform: TestPlatform;
  let nodeA: string;
  let nodeB: string;
  beforeAll(async () => {
    // No prewarm: a warm container exists only where a call ran.
    platform = await TestPlatform.start({ env: { FAAS_SCHEDULER: policy, FAAS_PREWARM: '0', FAAS_WORKER_CAPACITY: '4' } });
    nodeA = platform.env.FAAS_NODE_ID!;
    nodeB = `${nodeA}-b`;
    expect((await platform.json('POST', '/registerRuntime', HANDLER)).status).toBe(201);
  });
  afterAll(async () => platform?.stop());

  test(`a function homed on B and warm only on A runs on ${expected.toUpperCase()}; one warm nowhere runs at home`, async () => {
    const nodes = [nodeA, nodeB];
    const warmed = nameHomedAt('warmed', nodeB, nodes);
    const fresh = nameHomedAt('fresh', nodeB, nodes);
    for (const name of [warmed, fresh]) expect((await platform.upload('pyhandler', name, await tarGzOf(TRICKY))).status).toBe(201);

    // While A is the only node, the first call warms a container there.
    expect(await nodeOfSyncCall(platform, warmed)).toBe(nodeA);
    await until(
      async () => (await platform.json('GET', '/workers')).body as WorkerView[],
      (ws) => ws.some((w) => w.nodeId === nodeA && w.warm.some((f) => f.function === warmed && f.containers > 0)),
      15_000,
      'node A reporting its warm container',
    );
    platform.spawnWorker('b');
    await until(async () => ((await platform.json('GET', '/workers')).body as WorkerView[]).length, (n) => n === 2, 30_000, 'two workers');

    const ran: string[] = [];
    for (let i = 0; i < 4; i++) ran.push(await nodeOfSyncCall(platform, warmed, { i }));
    expect(ran).toEqual(Array(4).fill(expected === 'a' ? nodeA : nodeB));
    // Warm nowhere: both policies fall back to the home node.
    expect(await nodeOfSyncCall(platform, fresh)).toBe(nodeB);
  });
});

describe('a function with concurrency 1 on two workers', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    // least-loaded: with a limit counted per worker instead of across them, the second call would
    // go to the idle node at once.
    platform = await TestPlatform.start({ env: { FAAS_SCHEDULER: 'least-loaded', FAAS_WORKER_CAPACITY: '2' } });
    platform.spawnWorker('b');
    await until(async () => ((await platform.json('GET', '/workers')).body as unknown[]).length, (n) => n === 2, 30_000, 'two workers');
    expect((await platform.json('POST', '/registerRuntime', PROCESS)).status).toBe(201);
  });
  afterAll(async () => platform?.stop());

  /** The most calls that were running at one instant, from their startedAt/endedAt. */
  function peakOverlap(calls: Array<{ startedAt: string; endedAt: string }>): number {
    const edges = calls.flatMap((c) => [
      { at: Date.parse(c.startedAt), step: 1 },
      { at: Date.parse(c.endedAt), step: -1 },
    ]);
    // An end and a start at the same millisecond do not overlap.
    edges.sort((x, y) => x.at - y.at || x.step - y.step);
    let running = 0;
    let peak = 0;
    for (const edge of edges) peak = Math.max(peak, (running += edge.step));
    return peak;
  }

  async function burst(funcName: string, count: number): Promise<any[]> {
    const nums = await Promise.all(Array.from({ length: count }, async (_, i) => (await platform.json('POST', '/invokeFunction', { funcName, params: { s: 1.5, i } })).body.callNum as number));
    const calls = [];
    for (const n of nums) calls.push(await platform.waitFinal(n, 120_000));
    expect(calls.map((c) => c.status)).toEqual(Array(count).fill('DONE'));
    return calls;
  }

  test('never runs two of its calls at once; without the limit the same burst overlaps', async () => {
    expect((await platform.upload('pyproc', 'single', await tarGzOf(path.join(FIXTURES, 'nap')), 'package.tar.gz', { concurrency: '1' })).status).toBe(201);
    expect((await platform.upload('pyproc', 'many', await tarGzOf(path.join(FIXTURES, 'nap')))).status).toBe(201);

    const single = await burst('single', 5);
    expect(peakOverlap(single)).toBe(1);
    // The control: the measurement sees overlap where the platform allows it.
    const many = await burst('many', 4);
    expect(peakOverlap(many)).toBeGreaterThan(1);
    expect(new Set(many.map((c) => c.node)).size).toBe(2);
  });
});
