import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { errorText } from './api';

export function ErrorBox({ error }: { error: unknown }) {
  if (error === null || error === undefined) return null;
  return (
    <p class="error" role="alert">
      {errorText(error)}
    </p>
  );
}

export function Status({ status }: { status: string }) {
  return <span class={`status status-${status.toLowerCase()}`}>{status}</span>;
}

export function Section({ title, children, actions }: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section class="card" aria-label={title}>
      <div class="card-head">
        <h2>{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}

/** Loads with `load` when mounted and whenever `deps` change; `reload` loads again, keeping what is shown meanwhile. */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): { data: T | undefined; error: unknown; reload: () => void; set: (update: (data: T | undefined) => T | undefined) => void } {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const controller = new AbortController();
    load(controller.signal).then(
      (value) => {
        if (controller.signal.aborted) return;
        setData(value);
        setError(null);
      },
      (err) => {
        if (!controller.signal.aborted) setError(err);
      },
    );
    return () => controller.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, reload, set: setData };
}

/** Runs an action, keeping whether it runs and the error it ended with. */
export function useAction(): { busy: boolean; error: unknown; run: (action: () => Promise<void>) => Promise<void>; clear: () => void } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = useCallback(async (action: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, clear: () => setError(null) };
}

export interface Series {
  label: string;
  color: string;
  scale?: string;
  unit?: string;
}

/** A uPlot time chart as wide as its box; `data` is [times in s, ...one array per series]. */
export function Chart({ title, series, data, height = 180, axes, points = false }: { title: string; series: Series[]; data: Array<Array<number | null>>; height?: number; axes?: Array<{ scale: string; label: string }>; points?: boolean }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const scales = axes ?? [{ scale: 'y', label: series[0]?.unit ?? '' }];
    const options: uPlot.Options = {
      width: Math.max(el.clientWidth, 200),
      height,
      legend: { live: false },
      // Times in UTC, as everywhere else on the pages.
      tzDate: (ts: number) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      cursor: { drag: { x: false, y: false } },
      // One point, or none, still gets a readable minute around it.
      scales: { x: { time: true, range: (_u, min, max) => (min === null || max === null ? [Date.now() / 1000 - 600, Date.now() / 1000] : min === max ? [min - 60, max + 60] : [min, max]) } },
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: points ? 1 : 2,
          scale: s.scale ?? 'y',
          spanGaps: false,
          points: { show: points, size: 6 },
          value: (_u: uPlot, v: number | null) => (v === null ? '–' : `${Number(v.toFixed(2))}${s.unit ? ` ${s.unit}` : ''}`),
        })),
      ],
      axes: [
        { stroke: 'currentColor', grid: { stroke: 'rgba(127,127,127,0.15)' } },
        ...scales.map((a, i) => ({ scale: a.scale, label: a.label, stroke: 'currentColor', side: i === 0 ? 3 : 1, grid: { show: i === 0, stroke: 'rgba(127,127,127,0.15)' }, size: 50 })),
      ],
    };
    plot.current = new uPlot(options, data as uPlot.AlignedData, el);
    const observer = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(el.clientWidth, 200), height }));
    observer.observe(el);
    return () => {
      observer.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData);
  }, [data]);
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} class="chart-box" role="img" aria-label={`${title} chart`} />
    </figure>
  );
}

/** `fn` at most once every `ms`, the last call of a burst included. */
export function useThrottled(fn: () => void, ms: number): () => void {
  const latest = useRef(fn);
  latest.current = fn;
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const last = useRef(0);
  useEffect(() => () => {
    if (timer.current) clearTimeout(timer.current);
  }, []);
  return useCallback(() => {
    if (timer.current) return;
    const wait = Math.max(0, last.current + ms - Date.now());
    timer.current = setTimeout(() => {
      timer.current = null;
      last.current = Date.now();
      latest.current();
    }, wait);
  }, [ms]);
}

/** Re-renders every `ms`, for "n s ago" labels. */
export function useNow(ms = 5000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}
