import { createHash } from 'node:crypto';
import { warmKey, type WarmCounts } from '../protocol/warm-key';
import type { FunctionRecord } from '../protocol/types';

/** The seed's invocation policies (FAAS_SCHEDULER). */
export type PlacementPolicy = 'warm' | 'home' | 'least-loaded';

/** What placement needs to know of a worker. */
export interface PlacementNode {
  nodeId: string;
  capacity: number;
  draining: boolean;
  /** Calls the node runs now. */
  inflight: { readonly size: number };
  warm: WarmCounts;
}

/** The home node is preferred while it is less busy than this. */
const HOME_MAX_LOAD = 0.75;

/**
 * Picks the worker for one call of `fn`, or undefined when no worker has a free slot. `warm`
 * (default): a node with a warm container of the function, then the function's home node
 * (rendezvous hashing, as OpenWhisk and Fn place functions for locality) while it is less than 3/4
 * busy, then the least loaded. `home`: the home node first. `least-loaded`: only load counts.
 */
export function choose<T extends PlacementNode>(workers: Iterable<T>, fn: FunctionRecord, policy: PlacementPolicy = 'warm'): T | undefined {
  const free = [...workers].filter((w) => !w.draining && w.inflight.size < w.capacity);
  if (free.length === 0) return undefined;
  if (policy === 'least-loaded') return leastLoaded(free);
  if (policy === 'warm') {
    const key = warmKey(fn);
    const warm = free.filter((w) => (w.warm[key] ?? 0) > 0);
    if (warm.length > 0) return leastLoaded(warm);
  }
  const home = free.reduce((a, b) => (homeScore(fn.functionName, b.nodeId) > homeScore(fn.functionName, a.nodeId) ? b : a));
  if (load(home) < HOME_MAX_LOAD) return home;
  return leastLoaded(free);
}

function load(node: PlacementNode): number {
  return node.inflight.size / node.capacity;
}

function leastLoaded<T extends PlacementNode>(nodes: T[]): T {
  return nodes.reduce((a, b) => (load(b) < load(a) ? b : a));
}

/** Scores kept: past this many the cache starts over (a few tens of MB at most). */
const MAX_CACHED_SCORES = 500_000;
const scores = new Map<string, Map<string, number>>();
let cachedScores = 0;

/**
 * Rendezvous hashing: each function has a stable order of preference over the nodes. A score is a
 * SHA-1, about 1 µs, and placing a call without a warm node scores every free node: with 200 nodes
 * that was over a millisecond of the api's time per call, so scores are kept.
 */
export function homeScore(funcName: string, nodeId: string): number {
  let byNode = scores.get(funcName);
  if (byNode === undefined) {
    byNode = new Map();
    scores.set(funcName, byNode);
  }
  let score = byNode.get(nodeId);
  if (score === undefined) {
    score = createHash('sha1').update(`${funcName}\0${nodeId}`).digest().readUInt32BE(0);
    if (cachedScores >= MAX_CACHED_SCORES) {
      scores.clear();
      cachedScores = 0;
      scores.set(funcName, byNode);
      byNode.clear();
    }
    byNode.set(nodeId, score);
    cachedScores += 1;
  }
  return score;
}
