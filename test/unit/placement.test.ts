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
