import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { FINAL_STATUSES, type Call } from '../protocol/types';

/** What the gauges read at scrape time, and which function names may become label values. */
export interface MetricsSource {
  queueDepth(): number;
  workers(): Array<{ warm: Record<string, number>; inflight: { size: number } }>;
  /** Whether a function of this name is registered: only those get series of their own. */
  registered(funcName: string): boolean;
  /** The api's clock, in ms since the epoch (tests set it). */
  now?: () => number;
  /** Frames dropped on the api's ZeroMQ channels, by channel and reason (counters since start). */
  droppedFrames?: () => Record<string, Record<string, number>>;
  /** Open event streams: of GET /v1/events, and of followed logs of running calls. */
  streams?: () => { events: number; logs: number };
}

/**
 * The `function` label value of a call whose function is not (or no longer) registered: a call that
 * ends after its function was removed, or a report naming a function nobody registered. Function
 * names match ^[a-z0-9][a-z0-9_-]*$, so this value is never a function's own.
 */
export const UNREGISTERED = '_unregistered';

/** Seconds, from a quarter of a millisecond (a warm call's queue wait) to ten minutes (a long call). */
const SECONDS_BUCKETS = [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** Calls whose queue wait was observed and that have not ended; bounded should an end never come. */
const MAX_TRACKED = 100_000;

/**
 * The api's Prometheus metrics, served at GET /metrics: calls by function and status; for each call
 * its queue wait (accepted → handed to a worker), its run time (durationMs, as the node measured it)
 * and its end-to-end time (accepted → the api learns its final state); cold starts; at scrape time
 * the queue, the workers and their warm containers; and Node.js's standard process metrics, under
 * their standard names. Times of a call are taken on the api's clock (createdAt is db-service's,
 * which runs beside the api), never mixing in a worker's clock.
 */
export class PlatformMetrics {
  readonly registry = new Registry();
  private readonly invocations: Counter<'function'>;
  private readonly calls: Counter<'function' | 'status'>;
  private readonly coldStarts: Counter<'function'>;
  private readonly duration: Histogram<'function'>;
  private readonly queue: Histogram<'function'>;
  private readonly endToEnd: Histogram<'function' | 'status'>;
  private readonly authHashes: Counter;
  private readonly authRefusals: Counter<'reason'>;
  private readonly queueObserved = new Set<number>();
  private readonly now: () => number;

  constructor(private readonly source: MetricsSource) {
    this.now = source.now ?? Date.now;
    const registers = [this.registry];
    // No prefix: stock Node.js dashboards look for process_cpu_seconds_total, nodejs_eventloop_lag_seconds...
    collectDefaultMetrics({ register: this.registry });
    // ...except prom-client's gauges named like counters (nodejs_active_handles_total and its kin), which
    // break the convention promtool checks; their per-type gauges (nodejs_active_handles...) stay and sum to the same.
    for (const metric of this.registry.getMetricsAsArray()) {
      const { name, type } = metric as unknown as { name: string; type: string };
      if (type !== 'counter' && name.endsWith('_total')) this.registry.removeSingleMetric(name);
    }
    this.invocations = new Counter({ name: 'faas_invocations_total', help: 'Calls accepted, by function.', labelNames: ['function'], registers });
    this.calls = new Counter({ name: 'faas_calls_total', help: 'Calls ended, by function and final status.', labelNames: ['function', 'status'], registers });
    this.coldStarts = new Counter({
      name: 'faas_cold_starts_total',
      help: 'Calls that started a container (every process-mode call; a handler-mode call no warm container served).',
      labelNames: ['function'],
      registers,
    });
    this.duration = new Histogram({
      name: 'faas_call_duration_seconds',
      help: 'Run time of a call: from its start on its node to its end (durationMs); queue wait not included.',
      labelNames: ['function'],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.queue = new Histogram({
      name: 'faas_call_queue_seconds',
      help: 'Queue wait of a call: from its acceptance to the api handing it to a worker (its first dispatch).',
      labelNames: ['function'],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.endToEnd = new Histogram({
      name: 'faas_call_end_to_end_seconds',
      help: 'End-to-end time of a call: from its acceptance to the api learning its final state (queue wait, start and run).',
      labelNames: ['function', 'status'],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.authHashes = new Counter({ name: 'faas_auth_scrypt_total', help: 'Password hashes (scrypt) computed to check HTTP credentials; one runs at a time.', registers });
    this.authRefusals = new Counter({
      name: 'faas_auth_refused_total',
      help: 'HTTP credentials answered without a password hash: locked out (429), too many checks waiting (503), a wrong pair seen before (401).',
      labelNames: ['reason'],
      registers,
    });
    // Counters kept by the channels themselves: each scrape adds what they counted since the last one.
    const reported = new Map<string, number>();
    new Counter({
      name: 'faas_frames_dropped_total',
      help: 'Frames dropped on the api’s ZeroMQ channels (malformed, another protocol version, failing their schema, from a peer that may not send them), by channel and reason.',
      labelNames: ['channel', 'reason'],
      registers,
      collect() {
        for (const [channel, reasons] of Object.entries(source.droppedFrames?.() ?? {})) {
          for (const [reason, count] of Object.entries(reasons)) {
            const key = `${channel}\0${reason}`;
            const delta = count - (reported.get(key) ?? 0);
            if (delta > 0) this.inc({ channel, reason }, delta);
            reported.set(key, count);
          }
        }
      },
    });
    new Gauge({
      name: 'faas_queue_depth',
      help: 'Calls waiting in the api for a free worker slot.',
      registers,
      collect() {
        this.set(source.queueDepth());
      },
    });
    new Gauge({
      name: 'faas_event_streams',
      help: 'Open Server-Sent Events streams: of GET /v1/events (kind events), and following the logs of running calls (kind logs).',
      labelNames: ['kind'],
      registers,
      collect() {
        const streams = source.streams?.() ?? { events: 0, logs: 0 };
        this.set({ kind: 'events' }, streams.events);
        this.set({ kind: 'logs' }, streams.logs);
      },
    });
    new Gauge({
      name: 'faas_workers_connected',
      help: 'Workers connected to the api.',
      registers,
      collect() {
        this.set(source.workers().length);
      },
    });
    new Gauge({
      name: 'faas_calls_running',
      help: 'Calls handed to workers and not yet ended.',
      registers,
      collect() {
        this.set(source.workers().reduce((sum, w) => sum + w.inflight.size, 0));
      },
    });
    new Gauge({
      name: 'faas_warm_containers',
      help: 'Containers kept started on the workers: warm ones hold a function, stem cells only a runtime.',
      labelNames: ['kind'],
      registers,
      collect() {
        let warm = 0;
        let stems = 0;
        for (const w of source.workers()) {
          for (const [key, count] of Object.entries(w.warm)) {
            if (key.startsWith('stem:')) stems += count;
            else warm += count;
          }
        }
        this.set({ kind: 'function' }, warm);
        this.set({ kind: 'stem' }, stems);
      },
    });
  }

  /** A password hash ran (`reason` absent), or credentials were answered without one. */
  authChecked(refused?: 'locked' | 'busy' | 'known_wrong'): void {
    if (refused) this.authRefusals.inc({ reason: refused });
    else this.authHashes.inc();
  }

  invoked(funcName: string): void {
    this.invocations.inc({ function: this.label(funcName) });
  }

  /**
   * The api handed a call to a worker (`at`: the invocation's dispatchedAt, else now). A call's queue
   * wait is observed once, at its first dispatch; a call handed back and sent again is not counted twice.
   */
  dispatched(call: Call, at?: string): void {
    if (this.queueObserved.has(call.callNum)) return;
    const seconds = secondsBetween(call.createdAt, at === undefined ? this.now() : Date.parse(at));
    if (seconds === undefined) return;
    this.track(call.callNum);
    this.queue.observe({ function: this.label(call.funcName) }, seconds);
  }

  /** A call reached its final state: counted by status, its run time and end-to-end time observed. */
  ended(call: Call): void {
    if (!FINAL_STATUSES.has(call.status)) return;
    const fn = this.label(call.funcName);
    const now = this.now();
    // A call dispatched before this api started: its record says when (dispatchedAt), the hook did not.
    if (!this.queueObserved.delete(call.callNum) && call.dispatchedAt !== undefined) {
      const queued = secondsBetween(call.createdAt, Date.parse(call.dispatchedAt));
      if (queued !== undefined) this.queue.observe({ function: fn }, queued);
    }
    this.calls.inc({ function: fn, status: call.status });
    if (call.coldStart === true) this.coldStarts.inc({ function: fn });
    if (typeof call.durationMs === 'number' && Number.isFinite(call.durationMs) && call.durationMs >= 0) {
      this.duration.observe({ function: fn }, call.durationMs / 1000);
    }
    const total = secondsBetween(call.createdAt, now);
    if (total !== undefined) this.endToEnd.observe({ function: fn, status: call.status }, total);
  }

  /** A function was removed: its series go (calls of it that end later count under UNREGISTERED). */
  removed(funcName: string): void {
    const fn = { function: funcName };
    this.invocations.remove(fn);
    this.coldStarts.remove(fn);
    this.duration.remove(fn);
    this.queue.remove(fn);
    for (const status of FINAL_STATUSES) {
      this.calls.remove({ ...fn, status });
      this.endToEnd.remove({ ...fn, status });
    }
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private label(funcName: unknown): string {
    return typeof funcName === 'string' && this.source.registered(funcName) ? funcName : UNREGISTERED;
  }

  private track(callNum: number): void {
    this.queueObserved.add(callNum);
    if (this.queueObserved.size > MAX_TRACKED) this.queueObserved.delete(this.queueObserved.values().next().value as number);
  }
}

/** Seconds from an ISO time to a time in ms; undefined when either is not a time. A clock step back reads 0. */
function secondsBetween(fromIso: unknown, toMs: number): number | undefined {
  const from = typeof fromIso === 'string' ? Date.parse(fromIso) : NaN;
  if (!Number.isFinite(from) || !Number.isFinite(toMs)) return undefined;
  return Math.max(0, toMs - from) / 1000;
}
