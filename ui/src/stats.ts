import { FINAL, type Call } from './types';

/**
 * Calls that ended in the last minutes, in buckets of a few seconds: calls per second, error rate,
 * p50 and p99 duration. Fed from a page of recent calls, then live from `call.ended` events; a call
 * counted twice (in the page and as an event) is counted once.
 */
export class CallStats {
  private readonly ended = new Map<number, { at: number; error: boolean; durationMs?: number }>();

  constructor(
    readonly windowMs = 10 * 60_000,
    readonly bucketMs = 10_000,
  ) {}

  addCall(call: Call): void {
    if (!FINAL.has(call.status)) return;
    const at = Date.parse(call.endedAt ?? call.createdAt);
    this.add(call.callNum, at, call.status, call.durationMs);
  }

  add(callNum: number, at: number, status: string, durationMs?: number): void {
    if (!Number.isFinite(at)) return;
    this.ended.set(callNum, { at, error: status !== 'DONE', ...(typeof durationMs === 'number' ? { durationMs } : {}) });
  }

  /** [bucket starts in seconds, calls/s, error %, p50 ms, p99 ms] */
  series(now = Date.now()): Array<Array<number | null>> {
    const first = Math.floor((now - this.windowMs) / this.bucketMs) * this.bucketMs;
    const count = Math.ceil((now - first) / this.bucketMs);
    const buckets = Array.from({ length: count }, () => ({ calls: 0, errors: 0, durations: [] as number[] }));
    for (const [callNum, e] of this.ended) {
      if (e.at < first) {
        this.ended.delete(callNum);
        continue;
      }
      const bucket = buckets[Math.min(Math.floor((e.at - first) / this.bucketMs), count - 1)]!;
      bucket.calls++;
      if (e.error) bucket.errors++;
      if (e.durationMs !== undefined) bucket.durations.push(e.durationMs);
    }
    const times = buckets.map((_, i) => (first + i * this.bucketMs) / 1000);
    const perSecond = buckets.map((b) => b.calls / (this.bucketMs / 1000));
    const errorRate = buckets.map((b) => (b.calls ? (100 * b.errors) / b.calls : null));
    const p50 = buckets.map((b) => quantile(b.durations, 0.5));
    const p99 = buckets.map((b) => quantile(b.durations, 0.99));
    return [times, perSecond, errorRate, p50, p99];
  }

  /** Totals over the whole window. */
  totals(): { calls: number; errors: number } {
    let calls = 0;
    let errors = 0;
    for (const e of this.ended.values()) {
      calls++;
      if (e.error) errors++;
    }
    return { calls, errors };
  }
}

export function quantile(values: number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? null;
}
