import { useRef } from 'preact/hooks';
import { api } from '../api';
import { ErrorBox, Section, useAction, useLoad } from '../common';
import { useEvents } from '../events';
import { formatTime } from '../format';
import type { Runtime } from '../types';

export function RuntimesPage() {
  const runtimes = useLoad((signal) => api<Runtime[]>('GET', '/v1/runtimes', undefined, signal), []);
  const register = useAction();
  const remove = useAction();
  const formRef = useRef<HTMLFormElement>(null);
  useEvents((event) => {
    if (event.type === 'reset' || event.type.startsWith('runtime.')) runtimes.reload();
  }, []);

  const submit = (event: Event) => {
    event.preventDefault();
    const form = formRef.current!;
    const data = new FormData(form);
    void register.run(async () => {
      const body: Record<string, string> = {};
      for (const key of ['name', 'image', 'path', 'dependencies', 'run', 'mode']) {
        const value = String(data.get(key) ?? '').trim();
        if (value) body[key] = value;
      }
      await api('POST', '/v1/runtimes', body);
      form.reset();
      runtimes.reload();
    });
  };

  return (
    <>
      <h1>Runtimes</h1>
      <ErrorBox error={runtimes.error} />
      <div class="table-wrap" role="region" aria-label="Runtimes" tabIndex={0}>
        <table>
          <caption class="visually-hidden">Runtimes</caption>
          <thead>
            <tr>
              <th scope="col">Runtime</th>
              <th scope="col">Image</th>
              <th scope="col">Mode</th>
              <th scope="col" class="wide">
                Run
              </th>
              <th scope="col" class="wide">
                Registered
              </th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {runtimes.data?.length === 0 && (
              <tr>
                <td colSpan={6} class="empty">
                  No runtimes yet: register one below.
                </td>
              </tr>
            )}
            {(runtimes.data ?? []).map((r) => (
              <tr key={r.name} data-runtime={r.name}>
                <th scope="row">{r.name}</th>
                <td>
                  <code>{r.image}</code>
                </td>
                <td>{r.mode}</td>
                <td class="wide">
                  <code>{r.run}</code>
                </td>
                <td class="wide">{formatTime(r.registeredAt)}</td>
                <td class="row-actions">
                  <button
                    type="button"
                    class="danger"
                    disabled={remove.busy}
                    onClick={() => {
                      if (!window.confirm(`Remove the runtime "${r.name}"?`)) return;
                      void remove.run(async () => {
                        await api('DELETE', `/v1/runtimes/${encodeURIComponent(r.name)}`);
                        runtimes.reload();
                      });
                    }}
                  >
                    Remove<span class="visually-hidden"> {r.name}</span>
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <ErrorBox error={remove.error} />
      <Section title="Register a runtime">
        <form ref={formRef} onSubmit={submit} aria-label="Register a runtime">
          <div class="grid">
            <label>
              Name
              <input name="name" pattern="[a-z0-9][a-z0-9_\-]{0,62}" title="lower-case letters, digits, - and _; the image name when empty" autoComplete="off" />
            </label>
            <label>
              Image
              <input name="image" required placeholder="pythonruntime" autoComplete="off" />
            </label>
            <label>
              Path in the container
              <input name="path" required placeholder="/ws" autoComplete="off" />
            </label>
            <label>
              Mode
              <select name="mode">
                <option value="process">process: one run per call</option>
                <option value="handler">handler: a warm container serves many calls</option>
              </select>
            </label>
            <label class="span2">
              Dependencies command
              <input name="dependencies" placeholder="pip3 install -r requirements.txt" autoComplete="off" />
            </label>
            <label class="span2">
              Run command
              <input name="run" required placeholder="python3 main.py" autoComplete="off" />
            </label>
          </div>
          <ErrorBox error={register.error} />
          <button type="submit" class="primary" disabled={register.busy}>
            {register.busy ? 'Registering…' : 'Register'}
          </button>
        </form>
      </Section>
    </>
  );
}
