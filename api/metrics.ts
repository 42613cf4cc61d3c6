import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Call } from '../protocol/types';

/** What the gauges read at scrape time. */
export interface MetricsSource {
  queueDepth(): number;
  workers(): Array<{ warm: Record<string, number>; inflight: { size: number } }>;
}

/**
 * The api's Prometheus metrics, served at GET /metrics: calls by function and status, call durations,
 * cold starts, and at scrape time the queue, the connected workers and their warm containers.
 */
export class PlatformMetrics {
  readonly registry = new Registry();
  private readonly invocations: Counter<'function'>;
  private readonly calls: Counter<'function' | 'status'>;
  private readonly coldStarts: Counter<'function'>;
  private readonly duration: Histogram<'function'>;

  constructor(source: MetricsSource) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'faas_api_' });
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
      help: 'Time from a call starting on its node to its end.',
      labelNames: ['function'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
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

  invoked(funcName: string): void {
    this.invocations.inc({ function: funcName });
  }

  ended(call: Call): void {
    this.calls.inc({ function: call.funcName, status: call.status });
    if (call.coldStart) this.coldStarts.inc({ function: call.funcName });
    if (call.durationMs !== undefined) this.duration.observe({ function: call.funcName }, call.durationMs / 1000);
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
