import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { api } from '../api';
import { Chart, ErrorBox, Section, useNow, useThrottled } from '../common';
import { useEvents } from '../events';
import { ago, shortVersion } from '../format';
import { CallStats } from '../stats';
import type { CallPage, Health, Worker } from '../types';

interface ShownWorker extends Partial<Worker> {
  nodeId: string;
  gone?: string;
}

/**
 * Workers (with the ones that left while the page was open, marked gone), queue depth, and the
 * calls of the last ten minutes: per second, error rate, p50 and p99 duration.
 */
export function OverviewPage() {
  const [workers, setWorkers] = useState<Map<string, ShownWorker>>(new Map());
  const [health, setHealth] = useState<Health | null>(null);
  const [error, setError] = useState<unknown>(null);
  const stats = useRef(new CallStats());
  const [series, setSeries] = useState(() => stats.current.series());
  const now = useNow(5000);

  const refresh = async () => {
    try {
      const [list, h] = await Promise.all([api<Worker[]>('GET', '/v1/workers'), api<Health>('GET', '/health').catch(() => null)]);
      setHealth(h);
      setError(null);
      setWorkers((previous) => {
        const next = new Map<string, ShownWorker>();
        for (const w of list) next.set(w.nodeId, w);
        for (const [id, w] of previous) if (!next.has(id)) next.set(id, { ...w, gone: w.gone ?? new Date().toISOString() });
        return next;
      });
    } catch (err) {
      setError(err);
    }
  };

  useEffect(() => {
    void refresh();
    const since = new Date(Date.now() - stats.current.windowMs).toISOString();
    void api<CallPage>('GET', `/v1/calls?since=${encodeURIComponent(since)}&limit=1000`).then(
      (page) => {
        for (const call of page.calls) stats.current.addCall(call);
        setSeries(stats.current.series());
      },
      setError,
    );
    // Load, queue and warm containers change with every call: read them again every few seconds.
    const timer = setInterval(() => void refresh(), 3000);
    return () => clearInterval(timer);
  }, []);
  useEffect(() => setSeries(stats.current.series(now)), [now]);

  // Drawn again at most once a second, however many calls end.
  const redraw = useThrottled(() => setSeries(stats.current.series()), 1000);
  useEvents((event) => {
    if (event.type === 'call.ended') {
      const d = event.data as { callNum?: number; status?: string; durationMs?: number; at?: string };
      if (typeof d.callNum === 'number' && typeof d.status === 'string') {
        stats.current.add(d.callNum, Date.parse(d.at ?? '') || Date.now(), d.status, d.durationMs);
        redraw();
      }
    } else if (event.type === 'worker.left') {
      const nodeId = String(event.data.nodeId ?? '');
      setWorkers((previous) => {
        const next = new Map(previous);
        const w = next.get(nodeId);
        next.set(nodeId, { ...(w ?? { nodeId }), gone: String(event.data.at ?? new Date().toISOString()) });
        return next;
      });
    } else if (event.type.startsWith('worker.') || event.type === 'reset') {
      void refresh();
    }
  }, []);

  const totals = stats.current.totals();
  const rows = useMemo(() => [...workers.values()].sort((a, b) => Number(Boolean(a.gone)) - Number(Boolean(b.gone)) || a.nodeId.localeCompare(b.nodeId)), [workers]);
  const [times, perSecond, errorRate, p50, p99] = series;

  return (
    <>
      <h1>Overview</h1>
      <ErrorBox error={error} />
      <div class="tiles">
        <div class="tile">
          <span class="tile-label">Workers</span>
          <span class="tile-value" data-testid="workers-count">
            {rows.filter((w) => !w.gone).length}
          </span>
        </div>
        <div class="tile">
          <span class="tile-label">Queued calls</span>
          <span class="tile-value" data-testid="queue-depth">
            {health ? health.queue : '–'}
          </span>
        </div>
        <div class="tile">
          <span class="tile-label">Calls, last 10 min</span>
          <span class="tile-value">{totals.calls}</span>
        </div>
        <div class="tile">
          <span class="tile-label">Error rate, last 10 min</span>
          <span class="tile-value">{totals.calls ? `${((100 * totals.errors) / totals.calls).toFixed(1)} %` : '–'}</span>
        </div>
        <div class="tile">
          <span class="tile-label">Platform</span>
          <span class={`tile-value ${health?.status === 'ok' ? 'ok' : 'bad'}`}>{health ? health.status : '–'}</span>
        </div>
      </div>
      <Section title="Workers">
        <div class="table-wrap" role="region" aria-label="Workers" tabIndex={0}>
          <table class="workers">
            <thead>
              <tr>
                <th scope="col">Node</th>
                <th scope="col">State</th>
                <th scope="col">Load</th>
                <th scope="col">Queued</th>
                <th scope="col">Warm containers</th>
                <th scope="col">Stem cells</th>
                <th scope="col">Last seen</th>
              </tr>
            </thead>
            <tbody>
              {rows.length === 0 && (
                <tr>
                  <td colSpan={7} class="empty">
                    No worker is connected: calls wait in the queue until one joins.
                  </td>
                </tr>
              )}
              {rows.map((w) => (
                <tr key={w.nodeId} data-node={w.nodeId} class={w.gone ? 'gone' : ''}>
                  <th scope="row">{w.nodeId}</th>
                  <td data-testid="worker-state">{w.gone ? <span class="status status-gone">gone</span> : <span class={`status status-${w.state}`}>{w.state}</span>}</td>
                  <td>{w.gone ? '–' : `${w.load}/${w.capacity}`}</td>
                  <td>{w.gone ? '–' : w.queued}</td>
                  <td>
                    {w.gone || !w.warm?.length
                      ? '–'
                      : w.warm.map((c) => (
                          <span class="chip" key={`${c.function}@${c.version}`} title={c.version}>
                            {c.function}@{shortVersion(c.version).slice(0, 7)} ×{c.containers}
                          </span>
                        ))}
                  </td>
                  <td>
                    {w.gone || !w.stems?.length
                      ? '–'
                      : w.stems.map((s) => (
                          <span class="chip" key={s.runtime}>
                            {s.runtime} ×{s.containers}
                          </span>
                        ))}
                  </td>
                  <td>{w.gone ? `left ${ago(w.gone, now)}` : ago(w.lastSeen, now)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </Section>
      <div class="charts">
        <Section title="Calls">
          <Chart
            title="Calls per second and error rate, last 10 minutes"
            series={[
              { label: 'calls/s', color: '#2563eb', unit: '/s' },
              { label: 'errors %', color: '#dc2626', scale: '%', unit: '%' },
            ]}
            axes={[
              { scale: 'y', label: 'calls/s' },
              { scale: '%', label: 'error %' },
            ]}
            data={[times!, perSecond!, errorRate!]}
          />
        </Section>
        <Section title="Duration">
          <Chart
            title="p50 and p99 duration, last 10 minutes"
            series={[
              { label: 'p50', color: '#059669', unit: 'ms' },
              { label: 'p99', color: '#d97706', unit: 'ms' },
            ]}
            axes={[{ scale: 'y', label: 'ms' }]}
            data={[times!, p50!, p99!]}
          />
        </Section>
      </div>
      <p>
        <Link href="/calls">All calls</Link>
      </p>
    </>
  );
}
