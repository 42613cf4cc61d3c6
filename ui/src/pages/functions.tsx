import { useMemo, useRef, useState } from 'preact/hooks';
import { Link, useLocation } from 'wouter-preact';
import { api } from '../api';
import { ErrorBox, Section, useAction, useLoad, useNow, useThrottled } from '../common';
import { useEvents, usePollWhileOffline } from '../events';
import { ago, formatBytes, shortVersion } from '../format';
import type { CallPage, FunctionRecord, Runtime } from '../types';

/** How many recent calls the list's counts are taken from (one page of the api). */
const RECENT = 1000;

interface Counts {
  calls: number;
  errors: number;
  last?: string;
}

/** Parses "K=V" lines into an object; throws a message naming the bad line. */
export function parseEnvLines(text: string): Record<string, string> | undefined {
  const env: Record<string, string> = {};
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line) continue;
    const at = line.indexOf('=');
    if (at <= 0) throw new Error(`environment, line ${i + 1}: write NAME=value`);
    env[line.slice(0, at)] = line.slice(at + 1);
  }
  return Object.keys(env).length ? env : undefined;
}

/** One argument a line. */
export function parseArgLines(text: string): string[] | undefined {
  const args = text.split('\n').filter((line) => line.length > 0);
  return args.length ? args : undefined;
}

function DeployForm({ runtimes, onDeployed }: { runtimes: Runtime[]; onDeployed: (fn: FunctionRecord) => void }) {
  const action = useAction();
  const formRef = useRef<HTMLFormElement>(null);
  const submit = (event: Event) => {
    event.preventDefault();
    const form = formRef.current!;
    const data = new FormData(form);
    void action.run(async () => {
      const name = String(data.get('name') ?? '').trim();
      const file = data.get('module');
      if (!(file instanceof File) || file.size === 0) throw new Error('choose the archive of the function (.tar.gz or .zip)');
      const body = new FormData();
      body.set('runtime', String(data.get('runtime')));
      for (const key of ['handler', 'preload', 'timeout', 'memory', 'cpus', 'concurrency']) {
        const value = String(data.get(key) ?? '').trim();
        if (value) body.set(key, value);
      }
      const env = parseEnvLines(String(data.get('env') ?? ''));
      if (env) body.set('env', JSON.stringify(env));
      const args = parseArgLines(String(data.get('args') ?? ''));
      if (args) body.set('args', JSON.stringify(args));
      for (const key of ['idempotent', 'public', 'outputs', 'network']) if (data.get(key)) body.set(key, 'true');
      body.set('module', file, file.name);
      const fn = await api<FunctionRecord>('PUT', `/v1/functions/${encodeURIComponent(name)}`, body);
      form.reset();
      onDeployed(fn);
    });
  };
  return (
    <form ref={formRef} class="deploy" onSubmit={submit} aria-label="Deploy a function">
      <div class="grid">
        <label>
          Name
          <input name="name" required pattern="[a-z0-9][a-z0-9_\-]{0,62}" title="lower-case letters, digits, - and _" autoComplete="off" />
        </label>
        <label>
          Runtime
          <select name="runtime" required>
            {runtimes.map((r) => (
              <option key={r.name} value={r.name}>
                {r.name} ({r.mode})
              </option>
            ))}
          </select>
        </label>
        <label class="span2">
          Archive (.tar.gz or .zip, the code at its root)
          <input name="module" type="file" accept=".tar.gz,.tgz,.zip,application/gzip,application/zip" required />
        </label>
        <label>
          Handler (handler mode)
          <input name="handler" placeholder="handler.handle" autoComplete="off" />
        </label>
        <label>
          Preload
          <select name="preload">
            <option value="">the node's policy</option>
            <option value="none">none</option>
            <option value="runtime">runtime</option>
            <option value="function">function</option>
          </select>
        </label>
        <label>
          Timeout (ms)
          <input name="timeout" type="number" min={100} inputMode="numeric" />
        </label>
        <label>
          Memory (MB)
          <input name="memory" type="number" min={16} inputMode="numeric" />
        </label>
        <label>
          CPUs
          <input name="cpus" type="number" min={0.01} step={0.01} inputMode="decimal" />
        </label>
        <label>
          Concurrency
          <input name="concurrency" type="number" min={1} inputMode="numeric" />
        </label>
        <label class="span2">
          Environment (NAME=value, one a line)
          <textarea name="env" rows={2} spellcheck={false} />
        </label>
        <label class="span2">
          Extra run arguments (process mode, one a line)
          <textarea name="args" rows={2} spellcheck={false} />
        </label>
      </div>
      <fieldset class="checks">
        <legend>Options</legend>
        <label>
          <input type="checkbox" name="idempotent" value="true" /> idempotent (run again when its node is lost)
        </label>
        <label>
          <input type="checkbox" name="public" value="true" /> public (its endpoint /function/NAME answers without credentials)
        </label>
        <label>
          <input type="checkbox" name="outputs" value="true" /> keep outputs (/out)
        </label>
        <label>
          <input type="checkbox" name="network" value="true" /> network
        </label>
      </fieldset>
      <ErrorBox error={action.error} />
      <button type="submit" class="primary" disabled={action.busy || runtimes.length === 0}>
        {action.busy ? 'Deploying…' : 'Deploy'}
      </button>
      {runtimes.length === 0 && (
        <p class="hint">
          Register a runtime first (<Link href="/runtimes">Runtimes</Link>).
        </p>
      )}
    </form>
  );
}

export function FunctionsPage() {
  const [, navigate] = useLocation();
  const functions = useLoad((signal) => api<FunctionRecord[]>('GET', '/v1/functions', undefined, signal), []);
  const runtimes = useLoad((signal) => api<Runtime[]>('GET', '/v1/runtimes', undefined, signal), []);
  const recent = useLoad((signal) => api<CallPage>('GET', `/v1/calls?limit=${RECENT}`, undefined, signal), []);
  const [deployed, setDeployed] = useState<string | null>(null);
  const remove = useAction();
  const now = useNow(10_000);
  const [showDeploy, setShowDeploy] = useState(false);

  const counts = useMemo(() => {
    const byName = new Map<string, Counts>();
    for (const call of recent.data?.calls ?? []) {
      const c = byName.get(call.funcName) ?? { calls: 0, errors: 0 };
      c.calls++;
      if (call.status === 'ERROR' || call.status === 'TIMEOUT') c.errors++;
      if (!c.last || call.createdAt > c.last) c.last = call.createdAt;
      byName.set(call.funcName, c);
    }
    return byName;
  }, [recent.data]);

  // The counts are read again at most every 2 s however many calls end.
  const reloadRecent = useThrottled(() => recent.reload(), 2000);
  useEvents((event) => {
    if (event.type === 'reset' || event.type.startsWith('function.')) functions.reload();
    if (event.type === 'reset' || event.type === 'call.accepted' || event.type === 'call.ended') reloadRecent();
    if (event.type.startsWith('runtime.')) runtimes.reload();
  }, []);
  usePollWhileOffline(() => {
    functions.reload();
    recent.reload();
  }, 5000);

  return (
    <>
      <h1>Functions</h1>
      <ErrorBox error={functions.error ?? runtimes.error ?? recent.error ?? remove.error} />
      {deployed && (
        <p class="notice" role="status">
          Deployed <Link href={`/functions/${deployed}`}>{deployed}</Link>.
        </p>
      )}
      <Section
        title="Deploy"
        actions={
          <button type="button" aria-expanded={showDeploy} aria-controls="deploy-form" onClick={() => setShowDeploy(!showDeploy)}>
            {showDeploy ? 'Hide' : 'Deploy a function'}
          </button>
        }
      >
        <div id="deploy-form" hidden={!showDeploy}>
          <DeployForm
            runtimes={runtimes.data ?? []}
            onDeployed={(fn) => {
              setDeployed(fn.functionName);
              functions.reload();
            }}
          />
        </div>
      </Section>
      <div class="table-wrap" role="region" aria-label="Functions" tabIndex={0}>
        <table>
          <caption class="visually-hidden">Functions</caption>
          <thead>
            <tr>
              <th scope="col">Function</th>
              <th scope="col">Runtime</th>
              <th scope="col">Version</th>
              <th scope="col">Last call</th>
              <th scope="col" title={`among the last ${RECENT} calls`}>
                Calls / errors <span class="muted">(last {RECENT})</span>
              </th>
              <th scope="col" class="wide">
                Size
              </th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {functions.data?.length === 0 && (
              <tr>
                <td colSpan={7} class="empty">
                  No functions yet: deploy one above.
                </td>
              </tr>
            )}
            {(functions.data ?? []).map((fn) => {
              const c = counts.get(fn.functionName);
              return (
                <tr key={fn.functionName} data-function={fn.functionName}>
                  <th scope="row">
                    <Link href={`/functions/${fn.functionName}`}>{fn.functionName}</Link>
                  </th>
                  <td>{fn.runtimeName}</td>
                  <td>
                    <code title={fn.version}>{shortVersion(fn.version)}</code>
                  </td>
                  <td>{ago(c?.last, now)}</td>
                  <td>
                    {c?.calls ?? 0} / <span class={c?.errors ? 'bad' : ''}>{c?.errors ?? 0}</span>
                  </td>
                  <td class="wide">{formatBytes(fn.size)}</td>
                  <td class="row-actions">
                    <button type="button" onClick={() => navigate(`/functions/${fn.functionName}`)}>
                      Invoke<span class="visually-hidden"> {fn.functionName}</span>
                    </button>
                    <button
                      type="button"
                      class="danger"
                      disabled={remove.busy}
                      onClick={() => {
                        if (!window.confirm(`Remove the function "${fn.functionName}"? Its calls stay.`)) return;
                        void remove.run(async () => {
                          await api('DELETE', `/v1/functions/${encodeURIComponent(fn.functionName)}`);
                          functions.reload();
                        });
                      }}
                    >
                      Remove<span class="visually-hidden"> {fn.functionName}</span>
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </>
  );
}
