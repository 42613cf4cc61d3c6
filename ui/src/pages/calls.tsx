import { useMemo, useState } from 'preact/hooks';
import { Link, useSearch, useLocation } from 'wouter-preact';
import { api } from '../api';
import { ErrorBox, Status, useLoad } from '../common';
import { useEvents, usePollWhileOffline } from '../events';
import { formatMs, formatTime } from '../format';
import { STATUSES, type Call, type CallEvent, type CallPage, type CallStatus } from '../types';

const PAGE = 50;

/** Applies a call.* event to a list of calls: a new call on top (when `accept` takes it), a known one updated in place. */
export function applyCallEvent(calls: Call[], type: string, e: CallEvent, accept: (e: CallEvent) => boolean): Call[] {
  const index = calls.findIndex((c) => c.callNum === e.callNum);
  if (index >= 0) {
    const before = calls[index]!;
    const after: Call = {
      ...before,
      status: e.status,
      ...(e.node ? { node: e.node } : {}),
      ...(type === 'call.started' ? { startedAt: e.at } : {}),
      ...(type === 'call.ended' ? { endedAt: e.at } : {}),
      ...(e.durationMs !== undefined ? { durationMs: e.durationMs } : {}),
      ...(e.coldStart !== undefined ? { coldStart: e.coldStart } : {}),
      ...(e.reason ? { reason: e.reason } : {}),
    };
    return [...calls.slice(0, index), after, ...calls.slice(index + 1)];
  }
  if (type !== 'call.accepted' || !accept(e)) return calls;
  const call: Call = { callNum: e.callNum, funcName: e.funcName, status: 'PENDING', params: undefined, result: '', createdAt: e.at, ...(e.rerunOf ? { rerunOf: e.rerunOf } : {}) };
  return [call, ...calls].sort((a, b) => b.callNum - a.callNum);
}

export function isCallEvent(type: string, data: Record<string, unknown>): data is CallEvent & Record<string, unknown> {
  return type.startsWith('call.') && typeof data.callNum === 'number' && typeof data.funcName === 'string' && typeof data.status === 'string';
}

export function CallTable({ calls, showFunction = true, caption }: { calls: Call[]; showFunction?: boolean; caption: string }) {
  return (
    <div class="table-wrap" role="region" aria-label={caption} tabIndex={0}>
      <table class="calls">
        <caption class="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Call</th>
            {showFunction && <th scope="col">Function</th>}
            <th scope="col">Status</th>
            <th scope="col">Created</th>
            <th scope="col">Duration</th>
            <th scope="col" class="wide">
              Node
            </th>
            <th scope="col" class="wide">
              Start
            </th>
          </tr>
        </thead>
        <tbody>
          {calls.length === 0 && (
            <tr>
              <td colSpan={showFunction ? 7 : 6} class="empty">
                No calls.
              </td>
            </tr>
          )}
          {calls.map((c) => (
            <tr key={c.callNum} data-call={c.callNum}>
              <th scope="row">
                <Link href={`/calls/${c.callNum}`}>#{c.callNum}</Link>
                {c.rerunOf ? <span class="muted"> (rerun of #{c.rerunOf})</span> : null}
              </th>
              {showFunction && (
                <td>
                  <Link href={`/functions/${c.funcName}`}>{c.funcName}</Link>
                </td>
              )}
              <td data-testid="call-status">
                <Status status={c.status} />
                {c.reason ? <span class="muted"> {c.reason}</span> : null}
              </td>
              <td>{formatTime(c.createdAt)}</td>
              <td>{formatMs(c.durationMs)}</td>
              <td class="wide">{c.node ?? '–'}</td>
              <td class="wide">{c.coldStart === undefined ? '–' : c.coldStart ? 'cold' : 'warm'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

interface Filters {
  function: string;
  status: string;
  since: string;
  until: string;
  /** 'true': only dead letters (async calls whose retries ran out). */
  dead: string;
}

function readFilters(search: string): Filters {
  const q = new URLSearchParams(search);
  return { function: q.get('function') ?? '', status: q.get('status') ?? '', since: q.get('since') ?? '', until: q.get('until') ?? '', dead: q.get('dead') === 'true' ? 'true' : '' };
}

/** "2026-01-31T12:00" typed as UTC, as ISO 8601. */
function utc(value: string): string {
  return value ? new Date(`${value}Z`).toISOString() : '';
}

/** The history, newest first, a page at a time (the api's cursor), filtered; live on the first page. */
export function CallsPage() {
  const search = useSearch();
  const [, navigate] = useLocation();
  const filters = useMemo(() => readFilters(search), [search]);
  const [draft, setDraft] = useState<Filters>(filters);
  // Cursors of the pages before this one: [] on the first page.
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const functions = useLoad((signal) => api<Array<{ functionName: string }>>('GET', '/v1/functions', undefined, signal), []);
  const page = useLoad(
    (signal) => {
      const q = new URLSearchParams({ limit: String(PAGE) });
      if (filters.function) q.set('function', filters.function);
      if (filters.status) q.set('status', filters.status);
      if (filters.since) q.set('since', utc(filters.since));
      if (filters.until) q.set('until', utc(filters.until));
      if (filters.dead) q.set('deadLetter', 'true');
      if (cursor) q.set('cursor', cursor);
      return api<CallPage>('GET', `/v1/calls?${q}`, undefined, signal);
    },
    [filters, cursor],
  );

  const first = cursors.length === 0;
  useEvents(
    (event) => {
      if (event.type === 'reset' || (event.type === 'call.deadLettered' && filters.dead && first)) return page.reload();
      if (!isCallEvent(event.type, event.data)) return;
      const e = event.data;
      const accept = (c: CallEvent) =>
        first && !filters.until && !filters.dead && (!filters.function || c.funcName === filters.function) && (!filters.status || filters.status === 'PENDING');
      page.set((data) => {
        if (!data) return data;
        let calls = applyCallEvent(data.calls, event.type, e, accept);
        // A filter by status drops the calls that leave it.
        if (filters.status) calls = calls.filter((c) => c.status === (filters.status as CallStatus));
        return { ...data, calls: calls.slice(0, Math.max(PAGE, data.calls.length)) };
      });
    },
    [first, filters],
  );
  usePollWhileOffline(() => page.reload());

  const apply = (event: Event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    for (const [key, value] of Object.entries(draft)) if (value) q.set(key, value);
    setCursors([]);
    navigate(`/calls${q.toString() ? `?${q}` : ''}`);
  };
  const clear = () => {
    setDraft({ function: '', status: '', since: '', until: '', dead: '' });
    setCursors([]);
    navigate('/calls');
  };

  return (
    <>
      <h1>Calls</h1>
      <form class="filters card" onSubmit={apply} aria-label="Filter calls">
        <label>
          Function
          <select value={draft.function} onChange={(e) => setDraft({ ...draft, function: e.currentTarget.value })}>
            <option value="">any</option>
            {(functions.data ?? []).map((f) => (
              <option key={f.functionName} value={f.functionName}>
                {f.functionName}
              </option>
            ))}
            {draft.function && !(functions.data ?? []).some((f) => f.functionName === draft.function) && <option value={draft.function}>{draft.function}</option>}
          </select>
        </label>
        <label>
          Status
          <select value={draft.status} onChange={(e) => setDraft({ ...draft, status: e.currentTarget.value })}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label class="check">
          <input type="checkbox" checked={draft.dead === 'true'} onChange={(e) => setDraft({ ...draft, dead: e.currentTarget.checked ? 'true' : '' })} /> Dead letters only
        </label>
        <label>
          Since (UTC)
          <input type="datetime-local" step={1} value={draft.since} onInput={(e) => setDraft({ ...draft, since: e.currentTarget.value })} />
        </label>
        <label>
          Until (UTC)
          <input type="datetime-local" step={1} value={draft.until} onInput={(e) => setDraft({ ...draft, until: e.currentTarget.value })} />
        </label>
        <div class="buttons">
          <button type="submit" class="primary">
            Filter
          </button>
          <button type="button" onClick={clear}>
            Clear
          </button>
        </div>
      </form>
      <ErrorBox error={page.error ?? functions.error} />
      <CallTable calls={page.data?.calls ?? []} caption="Calls, newest first" />
      <nav class="pager" aria-label="Pages of calls">
        <button type="button" disabled={first} onClick={() => setCursors(cursors.slice(0, -1))}>
          ← Newer
        </button>
        <span>Page {cursors.length + 1}</span>
        <button type="button" disabled={!page.data?.next} onClick={() => page.data?.next && setCursors([...cursors, page.data.next])}>
          Older →
        </button>
      </nav>
    </>
  );
}
