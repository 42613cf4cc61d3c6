import { useMemo, useState } from 'preact/hooks';
import { Link, useLocation } from 'wouter-preact';
import { api } from '../api';
import { CallTable, applyCallEvent, isCallEvent } from './calls';
import { parseArgLines, parseEnvLines } from './functions';
import { Chart, ErrorBox, Section, Status, useAction, useLoad } from '../common';
import { useEvents, usePollWhileOffline } from '../events';
import { cleanText, formatBytes, formatMs, formatTime, prettyResult, shortVersion } from '../format';
import { FINAL, type Call, type CallPage, type FunctionRecord } from '../types';

const RECENT = 100;

/** Makes an older version current again, with its own fields (runtime, handler, limits, env). */
async function makeCurrent(name: string, v: FunctionRecord): Promise<void> {
  await api('POST', `/v1/functions/${encodeURIComponent(name)}/versions/${encodeURIComponent(v.version)}/current`);
}

function InvokeForm({ name, mode }: { name: string; mode?: string }) {
  const [params, setParams] = useState('{}');
  const [args, setArgs] = useState('');
  const [env, setEnv] = useState('');
  const [wait, setWait] = useState(true);
  const [answer, setAnswer] = useState<Call | null>(null);
  const action = useAction();
  const paramsError = useMemo(() => {
    if (!params.trim()) return null;
    try {
      JSON.parse(params);
      return null;
    } catch (err) {
      return `params: ${(err as Error).message}`;
    }
  }, [params]);

  useEvents(
    (event) => {
      if (answer && isCallEvent(event.type, event.data) && event.data.callNum === answer.callNum && event.type === 'call.ended') {
        void api<Call>('GET', `/v1/calls/${answer.callNum}`).then(setAnswer, () => undefined);
      }
    },
    [answer?.callNum],
  );

  const submit = (event: Event) => {
    event.preventDefault();
    if (paramsError) return;
    void action.run(async () => {
      setAnswer(null);
      const body: Record<string, unknown> = { params: params.trim() ? JSON.parse(params) : {}, wait };
      const a = parseArgLines(args);
      if (a) body.args = a;
      const e = parseEnvLines(env);
      if (e) body.env = e;
      setAnswer(await api<Call>('POST', `/v1/functions/${encodeURIComponent(name)}/calls`, body));
    });
  };
  const result = answer?.result ? prettyResult(answer.result) : null;
  return (
    <form class="invoke" onSubmit={submit} aria-label={`Invoke ${name}`}>
      <label>
        Params (JSON)
        <textarea
          name="params"
          rows={6}
          spellcheck={false}
          class="code"
          value={params}
          aria-invalid={paramsError ? 'true' : 'false'}
          aria-describedby="params-error"
          onInput={(e) => setParams(e.currentTarget.value)}
        />
      </label>
      <p id="params-error" class={paramsError ? 'error' : 'hint'} role={paramsError ? 'alert' : undefined}>
        {paramsError ?? 'Sent as the call’s params: a process-mode function reads them on stdin, a handler gets them as its argument.'}
      </p>
      <div class="grid">
        {mode !== 'handler' && (
          <label>
            Arguments (one a line)
            <textarea name="args" rows={2} spellcheck={false} value={args} onInput={(e) => setArgs(e.currentTarget.value)} />
          </label>
        )}
        <label>
          Environment (NAME=value, one a line)
          <textarea name="env" rows={2} spellcheck={false} value={env} onInput={(e) => setEnv(e.currentTarget.value)} />
        </label>
      </div>
      <fieldset class="checks">
        <legend>Wait</legend>
        <label>
          <input type="radio" name="wait" checked={wait} onChange={() => setWait(true)} /> sync: wait for the result
        </label>
        <label>
          <input type="radio" name="wait" checked={!wait} onChange={() => setWait(false)} /> async: start the call
        </label>
      </fieldset>
      <button type="submit" class="primary" disabled={action.busy || Boolean(paramsError)}>
        {action.busy ? 'Running…' : 'Invoke'}
      </button>
      <ErrorBox error={action.error} />
      {answer && (
        <div class="answer" role="status" data-testid="invoke-answer">
          <p>
            <Link href={`/calls/${answer.callNum}`}>Call #{answer.callNum}</Link> <Status status={answer.status} />
            {answer.reason ? ` ${answer.reason}` : ''} {answer.durationMs !== undefined ? `in ${formatMs(answer.durationMs)}` : ''}
          </p>
          {FINAL.has(answer.status) && (
            <pre class="code" data-testid="invoke-result">
              {result ? cleanText(result.text) : '(empty result)'}
            </pre>
          )}
          {answer.error && <pre class="code stderr">{cleanText(answer.error)}</pre>}
        </div>
      )}
    </form>
  );
}

export function FunctionPage({ name }: { name: string }) {
  const [, navigate] = useLocation();
  const fn = useLoad((signal) => api<FunctionRecord>('GET', `/v1/functions/${encodeURIComponent(name)}`, undefined, signal), [name]);
  const versions = useLoad((signal) => api<FunctionRecord[]>('GET', `/v1/functions/${encodeURIComponent(name)}/versions`, undefined, signal), [name]);
  const runtime = useLoad(
    (signal) => (fn.data ? api<{ mode: string }>('GET', `/v1/runtimes/${encodeURIComponent(fn.data.runtimeName)}`, undefined, signal) : Promise.resolve(undefined)),
    [fn.data?.runtimeName],
  );
  const calls = useLoad((signal) => api<CallPage>('GET', `/v1/calls?function=${encodeURIComponent(name)}&limit=${RECENT}`, undefined, signal), [name]);
  const change = useAction();

  useEvents(
    (event) => {
      if (event.type === 'reset') {
        fn.reload();
        versions.reload();
        calls.reload();
        return;
      }
      if (event.type.startsWith('function.') && event.data.functionName === name) {
        fn.reload();
        versions.reload();
      }
      if (isCallEvent(event.type, event.data) && event.data.funcName === name) {
        const e = event.data;
        calls.set((page) => (page ? { ...page, calls: applyCallEvent(page.calls, event.type, e, () => true).slice(0, RECENT) } : page));
      }
    },
    [name],
  );
  usePollWhileOffline(() => calls.reload());

  const chart = useMemo(() => {
    const ended = (calls.data?.calls ?? []).filter((c) => c.durationMs !== undefined).reverse();
    return [ended.map((c) => Date.parse(c.endedAt ?? c.createdAt) / 1000), ended.map((c) => c.durationMs!)];
  }, [calls.data]);

  const f = fn.data;
  return (
    <>
      <h1>{name}</h1>
      <ErrorBox error={fn.error} />
      {f && (
        <>
          <div class="two">
            <Section title="Invoke">
              <InvokeForm name={name} mode={runtime.data?.mode} />
            </Section>
            <Section title="Function">
              <dl class="facts">
                <dt>Runtime</dt>
                <dd>
                  {f.runtimeName} {runtime.data ? `(${runtime.data.mode})` : ''}
                </dd>
                <dt>Version</dt>
                <dd>
                  <code title={f.version}>{shortVersion(f.version)}</code>, {formatBytes(f.size)}
                </dd>
                <dt>Registered</dt>
                <dd>{formatTime(f.registeredAt)}</dd>
                {f.handler && (
                  <>
                    <dt>Handler</dt>
                    <dd>{f.handler}</dd>
                  </>
                )}
                {f.preload && (
                  <>
                    <dt>Preload</dt>
                    <dd>{f.preload}</dd>
                  </>
                )}
                <dt>Limits</dt>
                <dd>
                  {f.limits && Object.keys(f.limits).length
                    ? Object.entries(f.limits)
                        .map(([k, v]) => `${k} ${String(v)}`)
                        .join(', ')
                    : "the node's defaults"}
                </dd>
                {f.env && (
                  <>
                    <dt>Environment</dt>
                    <dd>{Object.keys(f.env).join(', ')}</dd>
                  </>
                )}
                <dt>Options</dt>
                <dd>{[f.idempotent && 'idempotent', f.public && 'public endpoint', f.outputs && 'keeps outputs', f.limits?.network && 'network'].filter(Boolean).join(', ') || '–'}</dd>
              </dl>
              <button
                type="button"
                class="danger"
                disabled={change.busy}
                onClick={() => {
                  if (!window.confirm(`Remove the function "${name}"? Its calls stay.`)) return;
                  void change.run(async () => {
                    await api('DELETE', `/v1/functions/${encodeURIComponent(name)}`);
                    navigate('/functions');
                  });
                }}
              >
                Remove {name}
              </button>
            </Section>
          </div>
          <Section title="Versions">
            <ErrorBox error={versions.error ?? change.error} />
            <div class="table-wrap" role="region" aria-label={`Versions of ${name}`} tabIndex={0}>
              <table>
                <caption class="visually-hidden">Versions of {name}, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Version</th>
                    <th scope="col">Registered</th>
                    <th scope="col">Runtime</th>
                    <th scope="col">
                      <span class="visually-hidden">Current</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {(versions.data ?? []).map((v) => (
                    <tr key={`${v.version}-${v.registeredAt}`} class={v.current ? 'current' : ''}>
                      <th scope="row">
                        <code title={v.version}>{shortVersion(v.version)}</code>
                      </th>
                      <td>{formatTime(v.registeredAt)}</td>
                      <td>{v.runtimeName}</td>
                      <td>
                        {v.current ? (
                          <strong>current</strong>
                        ) : (
                          <button
                            type="button"
                            disabled={change.busy}
                            onClick={() =>
                              void change.run(async () => {
                                await makeCurrent(name, v);
                                fn.reload();
                                versions.reload();
                              })
                            }
                          >
                            Make current<span class="visually-hidden"> {shortVersion(v.version)}</span>
                          </button>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </Section>
        </>
      )}
      <Section title="Duration of recent calls">
        <Chart title={`Duration of the last ${RECENT} calls of ${name}`} series={[{ label: 'duration', color: '#2563eb', unit: 'ms' }]} axes={[{ scale: 'y', label: 'ms' }]} data={chart} points />
      </Section>
      <Section title="Recent calls" actions={<Link href={`/calls?function=${encodeURIComponent(name)}`}>All calls of {name}</Link>}>
        <ErrorBox error={calls.error} />
        <CallTable calls={(calls.data?.calls ?? []).slice(0, 20)} showFunction={false} caption={`Recent calls of ${name}`} />
      </Section>
    </>
  );
}
