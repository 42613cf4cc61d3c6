import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

/**
 * Scheduling with many nodes, without Docker: db-service and the api for real, and 10 workers on the
 * hollow back-end as real processes over real ZeroMQ (their calls answer their params). The api
 * asks them for a beat every 50 ms: as many beats as 200 nodes give at the default second.
 */
const NODES = 10;
const HOLLOW = { FAAS_BACKEND: 'hollow', FAAS_HOLLOW_START_MS: '50', FAAS_HOLLOW_CALL_MS: '1', FAAS_WORKER_CAPACITY: '2', FAAS_PREWARM: '0', FAAS_MIN_MINIWORKERS: '1' };
const RUNTIME = { name: 'py', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 /opt/faas/handler.py', mode: 'handler' };

describe('many hollow nodes', () => {
  let platform: TestPlatform;
  let nodeIds: string[] = [];

  const workers = async (): Promise<Array<{ nodeId: string; draining?: boolean }>> => (await platform.json('GET', '/v1/workers')).body;
  const invokeWait = async (funcName: string, params: unknown) => {
    const answer = await platform.json('POST', '/invokeFunction?wait=true', { funcName, params });
    expect(answer.status).toBe(200);
    return answer.body as { callNum: number; status: string; node: string; result: string };
  };

  beforeAll(async () => {
    // Twenty beats a second from each of 10 nodes, with the default three seconds before a silent node is lost.
    platform = await TestPlatform.start({ services: ['db', 'api'], env: { FAAS_HEARTBEAT_MS: '50', FAAS_WORKER_LIVENESS: '60', FAAS_LOG_LEVEL: 'warn' } });
    await platform.waitApi();
    await until(async () => (await platform.json('GET', '/health')).body?.db?.connected, (up) => up === true, 30_000, 'db-service connected');
    expect((await platform.json('POST', '/registerRuntime', RUNTIME)).status).toBe(201);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-hollow-'));
    writeFileSync(path.join(dir, 'handler.py'), 'def handle(params):\n    return params\n');
    const pkg = await tarGzOf(dir);
    rmSync(dir, { recursive: true, force: true });
    for (let f = 0; f < 40; f++) expect((await platform.upload('py', `f${f}`, pkg, 'f.tar.gz')).status).toBe(201);
    for (let i = 0; i < NODES; i++) platform.spawnWorker(`h${i}`, HOLLOW);
    const list = await until(workers, (w) => Array.isArray(w) && w.length === NODES, 120_000, `${NODES} hollow workers joined`);
    nodeIds = list.map((w) => w.nodeId);
  }, 180_000);

  afterAll(async () => platform?.stop());

  test('300 calls of 40 functions at once: every one ends DONE with its params, and every node serves some', async () => {
    const accepted = await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        const answer = await platform.json('POST', '/invokeFunction', { funcName: `f${i % 40}`, params: { i } });
        expect(answer.status).toBe(202);
        return answer.body.callNum as number;
      }),
    );
    // One poller at a time: 300 of them would load the api more than the calls do.
    const calls: any[] = [];
    for (const n of accepted) calls.push(await platform.waitFinal(n, 120_000));
    const lost = calls.filter((c) => c.status !== 'DONE');
    expect(lost).toEqual([]);
    calls.forEach((c, i) => expect(JSON.parse(c.result)).toEqual({ i }));
    const perNode = new Map<string, number>();
    for (const c of calls) perNode.set(c.node, (perNode.get(c.node) ?? 0) + 1);
    expect([...perNode.keys()].sort()).toEqual([...nodeIds].sort());
    // Every node still there: 200 beats a second did not make the api lose one.
    expect((await workers()).length).toBe(NODES);
  }, 180_000);

  test('a function stays on its warm node while other nodes leave and join; when its node goes, its calls move', async () => {
    const first = await invokeWait('f7', { n: 0 });
    expect(first.status).toBe('DONE');
    const home = first.node;
    for (let n = 1; n <= 5; n++) expect(await invokeWait('f7', { n })).toMatchObject({ status: 'DONE', node: home });

    const other = nodeIds.find((id) => id !== home)!;
    await platform.stopWorker(other.slice(other.lastIndexOf('-') + 1));
    await until(workers, (w) => !w.some((x) => x.nodeId === other), 30_000, 'the stopped node gone');
    platform.spawnWorker(`late`, HOLLOW);
    await until(workers, (w) => w.some((x) => x.nodeId.endsWith('-late')), 60_000, 'a new node joined');
    for (let n = 6; n <= 10; n++) expect(await invokeWait('f7', { n })).toMatchObject({ status: 'DONE', node: home });

    await platform.stopWorker(home.slice(home.lastIndexOf('-') + 1));
    await until(workers, (w) => !w.some((x) => x.nodeId === home), 30_000, 'the warm node gone');
    const moved = await invokeWait('f7', { n: 11 });
    expect(moved.status).toBe('DONE');
    expect(moved.node).not.toBe(home);
  }, 180_000);
});
