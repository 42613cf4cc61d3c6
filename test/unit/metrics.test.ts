import { PlatformMetrics, UNREGISTERED } from '../../api/metrics';
import type { Call, CallStatus } from '../../protocol/types';

const T0 = Date.parse('2026-12-01T10:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

/** PlatformMetrics over a fake source: a settable clock and a set of registered functions. */
function setup(names: string[] = ['echo', 'slow']) {
  const registered = new Set(names);
  const clock = { now: T0 };
  const metrics = new PlatformMetrics({
    queueDepth: () => 2,
    workers: () => [{ warm: { 'echo@abc': 2, 'stem:python': 1 }, inflight: { size: 3 } }],
    registered: (name) => registered.has(name),
    now: () => clock.now,
  });
  return { metrics, registered, clock };
}

function call(callNum: number, funcName: string, extra: Partial<Call> = {}): Call {
  return { callNum, funcName, params: {}, status: 'PENDING', createdAt: iso(T0), ...extra } as Call;
}

function final(c: Call, status: CallStatus, extra: Partial<Call> = {}): Call {
  return { ...c, status, ...extra };
}

/** One sample's value from the registry's text, undefined when there is no such series. */
async function sample(metrics: PlatformMetrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const text = await metrics.registry.metrics();
  const wanted = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = (match[2] ?? '').split(',').filter(Boolean).sort();
    if (have.join(',') === wanted.join(',')) return Number(match[3]);
  }
  return undefined;
}

describe('PlatformMetrics', () => {
  test('a call that waited 3 s in the queue and ran 4 ms: queue 3 s, run time 4 ms, end to end 3.01 s', async () => {
    const { metrics, clock } = setup();
    const c = call(1, 'slow');
    metrics.invoked('slow');
    clock.now = T0 + 3000;
    metrics.dispatched(c);
    clock.now = T0 + 3010;
    metrics.ended(final(c, 'DONE', { durationMs: 4, startedAt: iso(T0 + 3002), endedAt: iso(T0 + 3006) }));

    expect(await sample(metrics, 'faas_invocations_total', { function: 'slow' })).toBe(1);
    expect(await sample(metrics, 'faas_calls_total', { function: 'slow', status: 'DONE' })).toBe(1);
    expect(await sample(metrics, 'faas_call_queue_seconds_count', { function: 'slow' })).toBe(1);
    expect(await sample(metrics, 'faas_call_queue_seconds_sum', { function: 'slow' })).toBeCloseTo(3, 6);
    expect(await sample(metrics, 'faas_call_queue_seconds_bucket', { function: 'slow', le: '2.5' })).toBe(0);
    expect(await sample(metrics, 'faas_call_queue_seconds_bucket', { function: 'slow', le: '5' })).toBe(1);
    expect(await sample(metrics, 'faas_call_duration_seconds_sum', { function: 'slow' })).toBeCloseTo(0.004, 6);
    expect(await sample(metrics, 'faas_call_duration_seconds_bucket', { function: 'slow', le: '0.005' })).toBe(1);
    expect(await sample(metrics, 'faas_call_end_to_end_seconds_count', { function: 'slow', status: 'DONE' })).toBe(1);
    expect(await sample(metrics, 'faas_call_end_to_end_seconds_sum', { function: 'slow', status: 'DONE' })).toBeCloseTo(3.01, 6);
  });

  test('sub-millisecond waits land in a bucket of their own', async () => {
    const { metrics, clock } = setup();
    const c = call(1, 'echo');
    clock.now = T0 + 0.2;
    metrics.dispatched(c);
    expect(await sample(metrics, 'faas_call_queue_seconds_bucket', { function: 'echo', le: '0.00025' })).toBe(1);
  });

  test('the dispatch time the invocation carries is used when present', async () => {
    const { metrics, clock } = setup();
    clock.now = T0 + 9000;
    metrics.dispatched(call(1, 'echo'), iso(T0 + 1500));
    expect(await sample(metrics, 'faas_call_queue_seconds_sum', { function: 'echo' })).toBeCloseTo(1.5, 6);
  });

  test('a call handed back and sent again has its queue wait observed once', async () => {
    const { metrics, clock } = setup();
    const c = call(1, 'echo');
    clock.now = T0 + 100;
    metrics.dispatched(c);
    clock.now = T0 + 700;
    metrics.dispatched(c);
    metrics.ended(final(c, 'DONE', { durationMs: 1, dispatchedAt: iso(T0 + 700) }));
    expect(await sample(metrics, 'faas_call_queue_seconds_count', { function: 'echo' })).toBe(1);
    expect(await sample(metrics, 'faas_call_queue_seconds_sum', { function: 'echo' })).toBeCloseTo(0.1, 6);
  });

  test('a call dispatched before this api started: its queue wait comes from createdAt → dispatchedAt; without dispatchedAt there is none', async () => {
    const { metrics, clock } = setup();
    clock.now = T0 + 5000;
    metrics.ended(final(call(1, 'echo'), 'DONE', { durationMs: 2, dispatchedAt: iso(T0 + 250) }));
    expect(await sample(metrics, 'faas_call_queue_seconds_count', { function: 'echo' })).toBe(1);
    expect(await sample(metrics, 'faas_call_queue_seconds_sum', { function: 'echo' })).toBeCloseTo(0.25, 6);
    metrics.ended(final(call(2, 'echo'), 'DONE', { durationMs: 2 }));
    expect(await sample(metrics, 'faas_call_queue_seconds_count', { function: 'echo' })).toBe(1);
    expect(await sample(metrics, 'faas_calls_total', { function: 'echo', status: 'DONE' })).toBe(2);
    expect(await sample(metrics, 'faas_call_end_to_end_seconds_count', { function: 'echo', status: 'DONE' })).toBe(2);
  });

  test('the end-to-end histogram is by status; cold starts are counted', async () => {
    const { metrics, clock } = setup();
    clock.now = T0 + 40;
    metrics.ended(final(call(1, 'echo'), 'DONE', { durationMs: 30, coldStart: true }));
    metrics.ended(final(call(2, 'echo'), 'TIMEOUT', { durationMs: 30 }));
    metrics.ended(final(call(3, 'echo'), 'ERROR', { reason: 'node_lost' }));
    for (const status of ['DONE', 'TIMEOUT', 'ERROR']) {
      expect(await sample(metrics, 'faas_call_end_to_end_seconds_count', { function: 'echo', status })).toBe(1);
    }
    expect(await sample(metrics, 'faas_call_duration_seconds_count', { function: 'echo' })).toBe(2);
    expect(await sample(metrics, 'faas_cold_starts_total', { function: 'echo' })).toBe(1);
  });

  test('hostile values are not observed and do not throw: non-final status, non-finite duration, bad times', async () => {
    const { metrics } = setup();
    expect(() => metrics.ended(call(1, 'echo', { status: 'RUNNING' }))).not.toThrow();
    expect(() => metrics.ended(final(call(2, 'echo'), 'BOGUS' as CallStatus))).not.toThrow();
    expect(() => metrics.ended(final(call(3, 'echo', { createdAt: 'yesterday' }), 'DONE', { durationMs: Infinity, dispatchedAt: 'soon' }))).not.toThrow();
    expect(() => metrics.ended(final(call(4, 'echo'), 'DONE', { durationMs: NaN }))).not.toThrow();
    expect(() => metrics.ended(final(call(5, 'echo'), 'DONE', { durationMs: -5 }))).not.toThrow();
    expect(() => metrics.dispatched(call(6, 'echo', { createdAt: 42 as unknown as string }))).not.toThrow();
    expect(await sample(metrics, 'faas_calls_total', { function: 'echo', status: 'RUNNING' })).toBeUndefined();
    expect(await sample(metrics, 'faas_calls_total', { function: 'echo', status: 'BOGUS' })).toBeUndefined();
    expect(await sample(metrics, 'faas_calls_total', { function: 'echo', status: 'DONE' })).toBe(3);
    expect(await sample(metrics, 'faas_call_duration_seconds_count', { function: 'echo' })).toBeUndefined();
    expect(await sample(metrics, 'faas_call_queue_seconds_count', { function: 'echo' })).toBeUndefined();
    // Only calls 4 and 5 have a createdAt that is a time.
    expect(await sample(metrics, 'faas_call_end_to_end_seconds_count', { function: 'echo', status: 'DONE' })).toBe(2);
  });

  test('names of functions nobody registered never become label values: 5,000 forged names add no series', async () => {
    const { metrics } = setup();
    const faasSeries = (text: string) => text.split('\n').filter((line) => line.startsWith('faas_')).length;
    const seriesBefore = faasSeries(await metrics.registry.metrics());
    metrics.ended(final(call(1, 'forged-0'), 'DONE', { durationMs: 1 }));
    const seriesWithOne = faasSeries(await metrics.registry.metrics());
    for (let n = 1; n < 5000; n++) {
      const c = call(n + 1, `forged-${n}`);
      metrics.invoked(c.funcName);
      metrics.dispatched(c);
      metrics.ended(final(c, 'DONE', { durationMs: 1, coldStart: true }));
    }
    const text = await metrics.registry.metrics();
    expect(text).not.toMatch(/forged-/);
    expect(await sample(metrics, 'faas_calls_total', { function: UNREGISTERED, status: 'DONE' })).toBe(5000);
    expect(await sample(metrics, 'faas_invocations_total', { function: UNREGISTERED })).toBe(4999);
    // The first forged call made the UNREGISTERED series; the next 4,999 (and their invocations,
    // queue waits and cold starts: one series set each) add a bounded number of series, not thousands.
    expect(seriesWithOne).toBeGreaterThan(seriesBefore);
    expect(faasSeries(text) - seriesWithOne).toBeLessThan(60);
  });

  test('a removed function loses its series; its calls ending later count as unregistered', async () => {
    const { metrics, registered, clock } = setup();
    for (const [n, fn] of [[1, 'echo'], [2, 'slow']] as const) {
      const c = call(n, fn);
      metrics.invoked(fn);
      clock.now = T0 + 10;
      metrics.dispatched(c);
      metrics.ended(final(c, 'DONE', { durationMs: 5, coldStart: true }));
      metrics.ended(final(call(n + 10, fn), 'ERROR', { reason: 'handler_error' }));
    }
    const running = call(3, 'echo');
    metrics.dispatched(running);
    expect(await metrics.registry.metrics()).toMatch(/function="echo"/);

    registered.delete('echo');
    metrics.removed('echo');
    const text = await metrics.registry.metrics();
    expect(text).not.toMatch(/function="echo"/);
    expect(await sample(metrics, 'faas_calls_total', { function: 'slow', status: 'DONE' })).toBe(1);
    expect(await sample(metrics, 'faas_call_end_to_end_seconds_count', { function: 'slow', status: 'ERROR' })).toBe(1);

    metrics.ended(final(running, 'DONE', { durationMs: 5 }));
    expect(await metrics.registry.metrics()).not.toMatch(/function="echo"/);
    expect(await sample(metrics, 'faas_calls_total', { function: UNREGISTERED, status: 'DONE' })).toBe(1);
  });

  test('gauges read the source at scrape time', async () => {
    const { metrics } = setup();
    expect(await sample(metrics, 'faas_queue_depth')).toBe(2);
    expect(await sample(metrics, 'faas_workers_connected')).toBe(1);
    expect(await sample(metrics, 'faas_calls_running')).toBe(3);
    expect(await sample(metrics, 'faas_warm_containers', { kind: 'function' })).toBe(2);
    expect(await sample(metrics, 'faas_warm_containers', { kind: 'stem' })).toBe(1);
    expect(await sample(metrics, 'faas_event_streams', { kind: 'events' })).toBe(0);
  });

  test('open event streams are counted by kind', async () => {
    const streams = { events: 2, logs: 1 };
    const metrics = new PlatformMetrics({ queueDepth: () => 0, workers: () => [], registered: () => true, streams: () => streams });
    expect(await sample(metrics, 'faas_event_streams', { kind: 'events' })).toBe(2);
    expect(await sample(metrics, 'faas_event_streams', { kind: 'logs' })).toBe(1);
    streams.events = 0;
    expect(await sample(metrics, 'faas_event_streams', { kind: 'events' })).toBe(0);
  });

  test('names follow Prometheus conventions; the Node.js process metrics keep their standard names', async () => {
    const { metrics, clock } = setup();
    clock.now = T0 + 5;
    metrics.invoked('echo');
    metrics.dispatched(call(1, 'echo'));
    metrics.ended(final(call(1, 'echo'), 'DONE', { durationMs: 1, coldStart: true }));
    const text = (await metrics.text()).body;
    const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    const helps = new Map([...text.matchAll(/^# HELP (\S+) (.*)$/gm)].map((m) => [m[1]!, m[2]!]));
    expect(types.size).toBeGreaterThan(20);
    for (const [name, type] of types) {
      expect({ name, help: (helps.get(name) ?? '').length > 0 }).toEqual({ name, help: true });
      if (type === 'counter') expect(name).toMatch(/_total$/);
      else expect(name).not.toMatch(/_total$/);
    }
    expect(Object.fromEntries([...types].filter(([name]) => name.startsWith('faas_')))).toEqual({
      faas_invocations_total: 'counter',
      faas_frames_dropped_total: 'counter',
      faas_auth_scrypt_total: 'counter',
      faas_auth_refused_total: 'counter',
      faas_calls_total: 'counter',
      faas_cold_starts_total: 'counter',
      faas_call_duration_seconds: 'histogram',
      faas_call_queue_seconds: 'histogram',
      faas_call_end_to_end_seconds: 'histogram',
      faas_queue_depth: 'gauge',
      faas_workers_connected: 'gauge',
      faas_calls_running: 'gauge',
      faas_warm_containers: 'gauge',
      faas_event_streams: 'gauge',
    });
    expect(types.get('process_cpu_seconds_total')).toBe('counter');
    expect(types.get('process_resident_memory_bytes')).toBe('gauge');
    expect(types.get('process_start_time_seconds')).toBe('gauge');
    expect(types.get('nodejs_eventloop_lag_seconds')).toBe('gauge');
    expect(types.get('nodejs_heap_size_used_bytes')).toBe('gauge');
    // prom-client's nodejs_active_handles_total (a gauge) is left out; its per-type gauge stays.
    expect(types.get('nodejs_active_handles')).toBe('gauge');
    expect(types.has('nodejs_active_handles_total')).toBe(false);
    expect(text).not.toMatch(/faas_api_/);
  });

  test('frames the channels dropped are counted by channel and reason, from the counters of the channels', async () => {
    let dropped: Record<string, Record<string, number>> = { workers: { bad_content: 2 } };
    const metrics = new PlatformMetrics({ queueDepth: () => 0, workers: () => [], registered: () => true, droppedFrames: () => dropped });
    expect(await metrics.registry.getSingleMetricAsString('faas_frames_dropped_total')).toContain('faas_frames_dropped_total{channel="workers",reason="bad_content"} 2');
    dropped = { workers: { bad_content: 5, not_held: 1 } };
    const text = await metrics.registry.getSingleMetricAsString('faas_frames_dropped_total');
    expect(text).toContain('faas_frames_dropped_total{channel="workers",reason="bad_content"} 5');
    expect(text).toContain('faas_frames_dropped_total{channel="workers",reason="not_held"} 1');
  });
});
