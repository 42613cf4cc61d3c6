import { CallQueue } from '../../api/call-queue';
import { choose, homeScore, type PlacementNode } from '../../api/placement';
import { warmKey, type WarmCounts } from '../../protocol/warm-key';
import type { FunctionRecord } from '../../protocol/types';
import type { Invocation } from '../../protocol/worker-messages';

/** Placement (FAAS_SCHEDULER: warm, home, least-loaded) and the call queue, without any process. */

const fn = (functionName: string): FunctionRecord => ({
  functionName,
  runtimeName: 'py',
  version: 'cd'.repeat(32),
  size: 1,
  format: 'tar.gz',
  registeredAt: '2026-12-01T10:00:00.000Z',
});

function node(nodeId: string, running: number, capacity = 4, warm: WarmCounts = {} as WarmCounts, draining = false): PlacementNode {
  return { nodeId, capacity, draining, warm, inflight: { size: running } };
}

/** The node a function calls home among these, by rendezvous hashing. */
function homeOf(name: string, nodes: PlacementNode[]): PlacementNode {
  return nodes.reduce((a, b) => (homeScore(name, b.nodeId) > homeScore(name, a.nodeId) ? b : a));
}

describe('choose', () => {
  test('no node with a free slot: none; draining and full nodes are never chosen', () => {
    expect(choose([], fn('f'))).toBeUndefined();
    expect(choose([node('a', 4), node('b', 0, 4, {} as WarmCounts, true)], fn('f'))).toBeUndefined();
    expect(choose([node('a', 4), node('b', 3)], fn('f'))?.nodeId).toBe('b');
  });

  test('warm: a node with a warm container of the function first, even when busier', () => {
    const f = fn('f');
    const warm = { [warmKey(f)]: 1 } as WarmCounts;
    const nodes = [node('a', 0), node('b', 3, 4, warm), node('c', 1)];
    expect(choose(nodes, f, 'warm')?.nodeId).toBe('b');
    // A container of another version of the function does not count.
    const other = { [warmKey({ ...f, version: 'ef'.repeat(32) })]: 1 } as WarmCounts;
    expect(choose([node('a', 0), node('b', 0, 4, other)], f, 'warm')?.nodeId).toBe(homeOf('f', [node('a', 0), node('b', 0)]).nodeId);
  });

  test('home: the same node for a function while it is less than 3/4 busy, then the least loaded', () => {
    const names = ['n1', 'n2', 'n3', 'n4'];
    for (const name of ['alpha', 'beta', 'gamma', 'delta']) {
      const idle = names.map((id) => node(id, 0));
      const home = homeOf(name, idle);
      expect(choose(idle, fn(name), 'home')?.nodeId).toBe(home.nodeId);
      expect(choose(idle, fn(name), 'warm')?.nodeId).toBe(home.nodeId);
      // At 3/4 of its capacity the home node gives way to the least loaded.
      const busy = names.map((id) => node(id, id === home.nodeId ? 3 : id === 'n4' && home.nodeId !== 'n4' ? 0 : 1));
      const least = busy.filter((n) => n.nodeId !== home.nodeId).reduce((a, b) => (b.inflight.size < a.inflight.size ? b : a));
      expect(choose(busy, fn(name), 'home')?.nodeId).toBe(least.nodeId);
    }
  });

  test('least-loaded: only the load counts, relative to capacity', () => {
    const nodes = [node('a', 2, 4), node('b', 3, 8), node('c', 1, 1)];
    expect(choose(nodes, fn('f'), 'least-loaded')?.nodeId).toBe('b');
    const warm = { [warmKey(fn('f'))]: 1 } as WarmCounts;
    expect(choose([node('a', 2, 4, warm), node('b', 0, 4)], fn('f'), 'least-loaded')?.nodeId).toBe('b');
  });
});

describe('choose among many nodes', () => {
  const ids = (n: number, prefix = 'node') => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
  const idle = (names: string[]) => names.map((id) => node(id, 0));
  const homes = (functions: string[], nodes: PlacementNode[]) => new Map(functions.map((f) => [f, choose(nodes, fn(f))!.nodeId]));
  const functions = Array.from({ length: 2000 }, (_, i) => `fn-${i}`);

  test('a node leaving moves only the functions whose home it was; a node joining takes only functions that move to it', () => {
    const names = ids(200);
    const before = homes(functions, idle(names));
    const gone = names[17]!;
    const after = homes(functions, idle(names.filter((id) => id !== gone)));
    const moved = functions.filter((f) => before.get(f) !== after.get(f));
    expect(moved.length).toBeGreaterThan(0);
    expect(moved.every((f) => before.get(f) === gone)).toBe(true);
    expect(functions.filter((f) => before.get(f) === gone).every((f) => moved.includes(f))).toBe(true);

    const joined = homes(functions, idle([...names, 'node-new']));
    const taken = functions.filter((f) => before.get(f) !== joined.get(f));
    expect(taken.every((f) => joined.get(f) === 'node-new')).toBe(true);
    // About 1/201 of them: rendezvous hashing moves no more than its share.
    expect(taken.length).toBeLessThan((functions.length / 201) * 3);
  });

  test('homes spread over 200 nodes: every node is home to some function, none to many more than its share', () => {
    const names = ids(200);
    const perNode = new Map<string, number>();
    for (const home of homes(functions, idle(names)).values()) perNode.set(home, (perNode.get(home) ?? 0) + 1);
    expect(perNode.size).toBe(200);
    expect(Math.max(...perNode.values())).toBeLessThan((functions.length / 200) * 3);
  });

  test('under steady load no node starves: 200 nodes, 500 functions, 20,000 calls, every node serves its share within a factor', () => {
    const names = ids(200);
    const nodes = names.map((id) => ({ ...node(id, 0, 4), inflight: new Set<number>(), warm: {} as WarmCounts }));
    const served = new Map<string, number>(names.map((id) => [id, 0]));
    const running: Array<{ call: number; node: (typeof nodes)[number] }> = [];
    // A fixed pseudo-random sequence (xorshift), so the test is the same on every run.
    let seed = 0x9e3779b9;
    const random = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    for (let call = 0; call < 20_000; call++) {
      // 600 calls in flight over 800 slots: busy enough that homes fill up and spill over.
      while (running.length >= 600) {
        const [done] = running.splice(Math.floor(random() * running.length), 1);
        done!.node.inflight.delete(done!.call);
      }
      const f = fn(`fn-${Math.floor(random() * 500)}`);
      const chosen = choose(nodes, f)!;
      expect(chosen).toBeDefined();
      chosen.inflight.add(call);
      const key = warmKey(f);
      chosen.warm[key] = 1;
      running.push({ call, node: chosen });
      served.set(chosen.nodeId, served.get(chosen.nodeId)! + 1);
    }
    const counts = [...served.values()];
    const mean = 20_000 / 200;
    expect(Math.min(...counts)).toBeGreaterThan(mean / 4);
    expect(Math.max(...counts)).toBeLessThan(mean * 4);
  });

  test('warm first among 200 nodes: the one warm node is chosen while it has a free slot, then the home', () => {
    const f = fn('lonely');
    const names = ids(200);
    const warmNode = names[123]!;
    const warm = { [warmKey(f)]: 1 } as WarmCounts;
    const nodes = names.map((id) => (id === warmNode ? node(id, 3, 4, warm) : node(id, 0)));
    expect(choose(nodes, f)?.nodeId).toBe(warmNode);
    const full = names.map((id) => (id === warmNode ? node(id, 4, 4, warm) : node(id, 0)));
    expect(choose(full, f)?.nodeId).toBe(homeOf('lonely', full.filter((n) => n.nodeId !== warmNode)).nodeId);
  });
});

describe('CallQueue', () => {
  const inv = (callNum: number, funcName = 'f'): Invocation => ({
    call: { callNum, funcName, params: {}, status: 'PENDING', result: '', createdAt: '2026-12-01T10:00:00.000Z' },
    fn: fn(funcName),
    runtime: { name: 'py', image: 'i', path: '/ws', dependencies: '', run: 'r', mode: 'process', registeredAt: 'x' },
  });

  test('oldest first; a handed-back call goes to the front; counts by function and membership follow', () => {
    const queue = new CallQueue();
    queue.add(inv(1));
    queue.add(inv(2, 'g'));
    queue.add(inv(3), 'front');
    expect(queue.length).toBe(3);
    expect(queue.countFor('f')).toBe(2);
    expect(queue.has(2)).toBe(true);
    const order: number[] = [];
    queue.pump((i) => (order.push(i.call.callNum), 'taken'), 100);
    expect(order).toEqual([3, 1, 2]);
    expect(queue.length).toBe(0);
    expect(queue.countFor('f')).toBe(0);
    expect(queue.has(2)).toBe(false);
  });

  test('a held call waits without holding up the ones behind it; full stops the pump', () => {
    const queue = new CallQueue();
    for (const n of [1, 2, 3, 4]) queue.add(inv(n, n % 2 === 1 ? 'limited' : 'free'));
    const taken: number[] = [];
    queue.pump((i) => (i.call.funcName === 'limited' ? 'held' : (taken.push(i.call.callNum), 'taken')), 100);
    expect(taken).toEqual([2, 4]);
    expect(queue.length).toBe(2);
    let offers = 0;
    queue.pump(() => (offers++, 'full'), 100);
    expect(offers).toBe(1);
    expect(queue.length).toBe(2);
  });

  test('the scan past held calls is bounded', () => {
    const queue = new CallQueue();
    for (let n = 1; n <= 50; n++) queue.add(inv(n, 'limited'));
    queue.add(inv(51, 'free'));
    let offers = 0;
    queue.pump((i) => (offers++, i.call.funcName === 'limited' ? 'held' : 'taken'), 10);
    expect(offers).toBe(10);
    expect(queue.has(51)).toBe(true);
  });
});
