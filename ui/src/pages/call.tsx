import { useEffect, useRef, useState } from 'preact/hooks';
import { Link, useLocation } from 'wouter-preact';
import { api, download } from '../api';
import { ErrorBox, Section, Status, useAction, useLoad, useNow } from '../common';
import { useEvents } from '../events';
import { between, cleanText, formatBytes, formatMs, formatTime, prettyResult, shortVersion } from '../format';
import { readStream } from '../sse';
import { FINAL, type Call } from '../types';

interface Logs {
  stdout: string;
  stderr: string;
  truncated: boolean;
  following: boolean;
}

/**
 * What a call wrote: all of it at once for an ended call; for a running one, followed live through
 * GET /v1/calls/:n/logs?follow=true until its `end` (read again from the JSON route when the api
 * does not stream it).
 */
function useLogs(callNum: number, running: boolean | undefined, onEnd: () => void): { logs: Logs; error: unknown } {
  const [logs, setLogs] = useState<Logs>({ stdout: '', stderr: '', truncated: false, following: false });
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (running === undefined) return;
    const controller = new AbortController();
    const { signal } = controller;
    const readAll = async () => {
      const all = await api<{ stdout: string; stderr: string; truncated: boolean; status: string }>('GET', `/v1/calls/${callNum}/logs`, undefined, signal);
      setLogs({ stdout: all.stdout, stderr: all.stderr, truncated: all.truncated, following: false });
      return all.status;
    };
    void (async () => {
      try {
        if (!running) return void (await readAll());
        setLogs({ stdout: '', stderr: '', truncated: false, following: true });
        let ended = false;
        try {
          await readStream(
            `/v1/calls/${callNum}/logs?follow=true`,
            (message) => {
              let data: { text?: unknown; truncated?: unknown } = {};
              try {
                data = JSON.parse(message.data) as typeof data;
              } catch {
                return;
              }
              if ((message.event === 'stdout' || message.event === 'stderr') && typeof data.text === 'string') {
                const text = data.text;
                const stream = message.event;
                setLogs((l) => ({ ...l, [stream]: l[stream] + text }));
              } else if (message.event === 'end') {
                ended = true;
                setLogs((l) => ({ ...l, truncated: data.truncated === true, following: false }));
              }
            },
            signal,
          );
        } catch {
          if (signal.aborted) return;
          // No stream from this api: read the logs again every second until the call ends.
          for (;;) {
            const status = await readAll();
            if (FINAL.has(status) || signal.aborted) break;
            setLogs((l) => ({ ...l, following: true }));
            await new Promise((resolve) => setTimeout(resolve, 1000));
          }
          ended = true;
        }
        if (!signal.aborted) {
          if (!ended) await readAll();
          onEnd();
        }
      } catch (err) {
        if (!signal.aborted) setError(err);
      }
    })();
    return () => controller.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [callNum, running]);
  return { logs, error };
}

function Field({ label, children, testid }: { label: string; children: preact.ComponentChildren; testid?: string }) {
  return (
    <>
      <dt>{label}</dt>
      <dd data-testid={testid}>{children}</dd>
    </>
  );
}

export function CallPage({ callNum }: { callNum: number }) {
  const [, navigate] = useLocation();
  const call = useLoad((signal) => api<Call>('GET', `/v1/calls/${callNum}`, undefined, signal), [callNum]);
  const c = call.data;
  const running = c ? !FINAL.has(c.status) : undefined;
  // Whether to follow is decided once: a running call is followed until its end, then read whole.
  const followed = useRef<boolean | undefined>(undefined);
  if (followed.current === undefined && running !== undefined) followed.current = running;
  const { logs, error: logsError } = useLogs(callNum, followed.current, () => call.reload());
  const rerun = useAction();
  const outputs = useAction();

  useEvents(
    (event) => {
      if (event.type === 'reset' || (event.type.startsWith('call.') && event.data.callNum === callNum)) call.reload();
    },
    [callNum],
  );

  const clock = useNow(1000);
  if (Number.isNaN(callNum) || callNum < 1) return <p class="error">Not a call number.</p>;
  const result = c && c.result ? prettyResult(c.result) : null;
  const queued = c ? between(c.createdAt, c.startedAt ?? c.dispatchedAt) : undefined;
  // While the call runs, its run and total times count up.
  const now = new Date(clock).toISOString();
  const end = c && !FINAL.has(c.status) ? now : c?.endedAt;
  const run = c ? (c.durationMs ?? between(c.startedAt, end)) : undefined;
  const total = c ? between(c.createdAt, end) : undefined;

  return (
    <>
      <h1>
        Call #{callNum}
        {c && (
          <>
            {' '}
            of <Link href={`/functions/${c.funcName}`}>{c.funcName}</Link> <Status status={c.status} />
          </>
        )}
      </h1>
      <ErrorBox error={call.error} />
      {c && (
        <>
          <div class="actions">
            <button
              type="button"
              class="primary"
              disabled={rerun.busy}
              onClick={() =>
                void rerun.run(async () => {
                  const next = await api<Call>('POST', `/v1/calls/${callNum}/rerun`);
                  navigate(`/calls/${next.callNum}`);
                })
              }
            >
              {rerun.busy ? 'Starting…' : 'Run again'}
            </button>
            {c.outputs && (
              <button type="button" disabled={outputs.busy} onClick={() => void outputs.run(() => download(`/v1/calls/${callNum}/outputs`, `call-${callNum}-outputs.zip`))}>
                Download outputs ({formatBytes(c.outputs.bytes)})
              </button>
            )}
          </div>
          <ErrorBox error={rerun.error ?? outputs.error} />
          <div class="two">
            <Section title="Call">
              <dl class="facts">
                <Field label="Status" testid="status">
                  {c.status}
                  {c.reason ? ` (${c.reason})` : ''}
                </Field>
                {c.error && (
                  <Field label="Error" testid="call-error">
                    <pre class="inline">{cleanText(c.error)}</pre>
                  </Field>
                )}
                {c.exitCode !== undefined && <Field label="Exit code">{c.exitCode}</Field>}
                <Field label="Created">{formatTime(c.createdAt)}</Field>
                <Field label="Queued">{formatMs(queued)}</Field>
                <Field label="Run">{formatMs(run)}</Field>
                <Field label="Total">{formatMs(total)}</Field>
                <Field label="Node">{c.node ?? '–'}</Field>
                <Field label="Cold start">{c.coldStart === undefined ? '–' : c.coldStart ? 'yes' : 'no (warm container)'}</Field>
                <Field label="Version">
                  <code title={c.functionVersion}>{shortVersion(c.functionVersion)}</code>
                </Field>
                {c.attempts !== undefined && c.attempts > 1 && <Field label="Attempts">{c.attempts}</Field>}
                {c.rerunOf && (
                  <Field label="Rerun of">
                    <Link href={`/calls/${c.rerunOf}`}>#{c.rerunOf}</Link>
                  </Field>
                )}
                {c.retryOf && (
                  <Field label="Retry of">
                    <Link href={`/calls/${c.retryOf}`}>#{c.retryOf}</Link> (attempt {c.retryAttempt ?? 2})
                  </Field>
                )}
                {c.trigger && <Field label="Trigger">{c.trigger === 'http' ? 'HTTP endpoint' : `cron trigger ${c.trigger.slice(5)}`}</Field>}
                {c.callbackUrl && (
                  <Field label="Callback">
                    {c.callback ? `${c.callback.state}, ${c.callback.attempts.length} attempt${c.callback.attempts.length === 1 ? '' : 's'}` : 'pending'}
                  </Field>
                )}
                {c.args && c.args.length > 0 && <Field label="Arguments">{c.args.map(cleanText).join(' ')}</Field>}
                {c.env && Object.keys(c.env).length > 0 && <Field label="Environment">{Object.keys(c.env).join(', ')}</Field>}
              </dl>
            </Section>
            <Section title="Params">
              <pre class="code" data-testid="params">
                {cleanText(JSON.stringify(c.params, null, 2) ?? 'none')}
              </pre>
            </Section>
          </div>
          <Section title={result?.json ? 'Result (JSON)' : 'Result'}>
            <pre class="code" data-testid="result">
              {result ? cleanText(result.text) : FINAL.has(c.status) ? '(empty)' : '(not yet)'}
            </pre>
          </Section>
        </>
      )}
      <Section title={logs.following ? 'Logs (following live)' : 'Logs'}>
        <ErrorBox error={logsError} />
        <h3>stdout</h3>
        <pre class="code log" data-testid="stdout" aria-live={logs.following ? 'polite' : 'off'}>
          {cleanText(logs.stdout) || '(nothing)'}
        </pre>
        <h3>stderr</h3>
        <pre class="code log stderr" data-testid="stderr" aria-live={logs.following ? 'polite' : 'off'}>
          {cleanText(logs.stderr) || '(nothing)'}
        </pre>
        {logs.truncated && <p class="hint">The logs were cut at the platform's limit.</p>}
      </Section>
    </>
  );
}
