import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { Link, Route, Router, Switch, useLocation } from 'wouter-preact';
import { currentCredentials, encodeBasic, errorOf, errorText, onUnauthorized, rawFetch, setCredentials } from './api';
import { startEvents, stopEvents, useLiveState } from './events';
import { CallPage } from './pages/call';
import { CallsPage } from './pages/calls';
import { FunctionPage } from './pages/function';
import { FunctionsPage } from './pages/functions';
import { OverviewPage } from './pages/overview';
import { RuntimesPage } from './pages/runtimes';
import './styles.css';

type Gate = { state: 'checking' } | { state: 'login'; message?: string } | { state: 'in'; usersConfigured: boolean } | { state: 'failed'; message: string };

/** Whether the api lets this page in: with the credentials it holds, or without any on a platform without users. */
async function probe(): Promise<Gate> {
  try {
    const held = currentCredentials() !== null;
    // The probe's own 401 is this function's to handle, not the listeners'.
    const response = await rawFetch('/v1/runtimes', {}, currentCredentials());
    if (response.ok) return { state: 'in', usersConfigured: held };
    if (response.status === 401) {
      if (held) setCredentials(null);
      return { state: 'login', ...(held ? { message: (await errorOf(response)).message } : {}) };
    }
    return { state: 'failed', message: (await errorOf(response)).message };
  } catch (err) {
    return { state: 'failed', message: errorText(err) };
  }
}

function Login({ message, onDone }: { message?: string; onDone: () => void }) {
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | undefined>(message);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const credentials = encodeBasic(user, password);
      const response = await rawFetch('/v1/runtimes', {}, credentials);
      if (!response.ok) throw await errorOf(response);
      setCredentials(credentials);
      onDone();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login" id="main">
      <form class="card" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">Sign in to faas</h1>
        <p class="hint">This platform asks for a user name and password (HTTP Basic, as for the api and the <code>faas</code> command).</p>
        <label>
          User name
          <input name="user" autoComplete="username" required value={user} onInput={(e) => setUser(e.currentTarget.value)} />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        </label>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

const NAV: Array<[string, string]> = [
  ['/', 'Overview'],
  ['/functions', 'Functions'],
  ['/calls', 'Calls'],
  ['/runtimes', 'Runtimes'],
];

function Nav({ usersConfigured, onSignOut }: { usersConfigured: boolean; onSignOut: () => void }) {
  const [location] = useLocation();
  const [live, why] = useLiveState();
  return (
    <header class="top">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <span class="brand">faas</span>
      <nav aria-label="Pages">
        <ul>
          {NAV.map(([href, label]) => {
            const active = href === '/' ? location === '/' : location === href || location.startsWith(`${href}/`);
            return (
              <li key={href}>
                <Link href={href} aria-current={active ? 'page' : undefined} class={active ? 'active' : ''}>
                  {label}
                </Link>
              </li>
            );
          })}
        </ul>
      </nav>
      <span class={`live live-${live}`} title={why || undefined} data-live={live}>
        {live === 'live' ? 'live' : live === 'connecting' ? 'connecting…' : 'not live'}
      </span>
      {usersConfigured && (
        <button type="button" class="link" onClick={onSignOut}>
          Sign out
        </button>
      )}
    </header>
  );
}

function App() {
  const [gate, setGate] = useState<Gate>({ state: 'checking' });
  const check = () => void probe().then(setGate);
  useEffect(() => {
    check();
    return onUnauthorized(() => {
      stopEvents();
      setCredentials(null);
      setGate({ state: 'login', message: 'the platform asks for your credentials again' });
    });
  }, []);
  useEffect(() => {
    if (gate.state === 'in') startEvents();
  }, [gate.state]);

  if (gate.state === 'checking') return <p class="boot">Connecting to the api…</p>;
  if (gate.state === 'failed') {
    return (
      <main class="login" id="main">
        <div class="card">
          <h1>faas</h1>
          <p class="error" role="alert">
            {gate.message}
          </p>
          <button type="button" onClick={check}>
            Try again
          </button>
        </div>
      </main>
    );
  }
  if (gate.state === 'login') return <Login message={gate.message} onDone={check} />;
  const signOut = () => {
    stopEvents();
    setCredentials(null);
    setGate({ state: 'login' });
  };
  return (
    <Router base="/ui">
      <Nav usersConfigured={gate.usersConfigured} onSignOut={signOut} />
      <main id="main" tabIndex={-1}>
        <Switch>
          <Route path="/" component={OverviewPage} />
          <Route path="/functions" component={FunctionsPage} />
          <Route path="/functions/:name">{(params: { name: string }) => <FunctionPage key={params.name} name={params.name} />}</Route>
          <Route path="/calls" component={CallsPage} />
          <Route path="/calls/:n">{(params: { n: string }) => <CallPage key={params.n} callNum={Number(params.n)} />}</Route>
          <Route path="/runtimes" component={RuntimesPage} />
          <Route>
            <h1>Not found</h1>
            <p>
              No page here. <Link href="/">Overview</Link>
            </p>
          </Route>
        </Switch>
      </main>
    </Router>
  );
}

render(<App />, document.getElementById('app')!);
