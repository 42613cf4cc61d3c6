import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { hashPassword } from '../../api/auth';
import { PROJECT_ROOT } from '../../cli/actions/images';
import { FIXTURES, tarGzOf } from '../helpers/archives';
import { CHROMIUM, artifactDir, axeViolations, describeViolations } from '../helpers/browser';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

/**
 * The dashboard in a real browser (Debian's chromium, headless) against the real platform with users:
 * every page is a client of the public api and of its live events, under the api's own
 * Content-Security-Policy. Screenshots of each page go to the test's artifact folder; with
 * FAAS_UPDATE_SCREENSHOTS=1 they also replace the set under docs/screenshots.
 */

const USER = 'ada';
const PASSWORD = 'correct horse battery staple';
const AUTH = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
const SHOTS = artifactDir('dashboard');
const DOCS_SHOTS = path.join(PROJECT_ROOT, 'docs', 'screenshots');

describe('the dashboard in a browser', () => {
  let platform: TestPlatform;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  const api = async <T = any>(method: string, route: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const init: RequestInit = { method, headers: { authorization: AUTH } };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      init.body = JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] = 'application/json';
    }
    const response = await fetch(`${platform.url}${route}`, init);
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  };
  const deploy = async (name: string, dir: string, fields: Record<string, string> = {}) => {
    const form = new FormData();
    form.set('runtime', 'pyproc');
    for (const [key, value] of Object.entries(fields)) form.set(key, value);
    form.set('module', new Blob([await tarGzOf(dir)]), `${name}.tar.gz`);
    const answer = await api('PUT', `/v1/functions/${name}`, form);
    expect(answer.status).toBe(201);
  };
  const folder = (files: Record<string, string>) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-ui-fn-'));
    for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
    return dir;
  };
  const shot = async (name: string, target: Page = page) => {
    const file = path.join(SHOTS, `${name}.png`);
    await target.screenshot({ path: file, fullPage: true });
    if (process.env.FAAS_UPDATE_SCREENSHOTS) {
      mkdirSync(DOCS_SHOTS, { recursive: true });
      copyFileSync(file, path.join(DOCS_SHOTS, `${name}.png`));
    }
  };
  const checkAxe = async (what: string) => {
    expect({ page: what, violations: describeViolations(await axeViolations(page)) }).toEqual({ page: what, violations: [] });
  };
  const nodeB = () => `node-${platform.label}-b`;

  beforeAll(async () => {
    if (!CHROMIUM) throw new Error('chromium is not installed (apt-get install chromium); .ci/run installs it');
    platform = await TestPlatform.start({ env: { FAAS_AUTH_USERS: `${USER}:${await hashPassword(PASSWORD)}`, FAAS_API_USER: USER, FAAS_API_PASSWORD: PASSWORD, FAAS_WORKER_CAPACITY: '2' } });
    platform.spawnWorker('b');
    await until(() => api<unknown[]>('GET', '/v1/workers'), (r) => r.body.length === 2, 30_000, 'two workers connected');
    expect((await api('POST', '/v1/runtimes', { name: 'pyproc', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py' })).status).toBe(201);
    await deploy('fail', path.join(FIXTURES, 'fail'));
    await deploy('noisy', folder({ 'main.py': 'import sys\nsys.stdin.read()\nsys.stderr.write("\\x1b[31mred\\x1b[0m \\x1b]0;title\\x07<img src=x onerror=alert(1)> done\\n")\nsys.exit(1)\n' }));
    await deploy('ticker', folder({ 'main.py': 'import sys, time\nsys.stdin.read()\nfor i in range(8):\n    print(f"tick {i}", file=sys.stderr, flush=True)\n    time.sleep(0.6)\nprint("\\"ticked\\"")\n' }));
    await deploy(
      'writer',
      folder({ 'main.py': 'import json, os, sys\np = json.load(sys.stdin)\nopen(os.environ["FAAS_OUTPUT_DIR"] + "/report.txt", "w").write("report " + p["name"])\nprint(json.dumps("written"))\n' }),
      { outputs: 'true' },
    );
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('console', (message) => {
      // An api refusal the tests ask for is logged as a failed load; a blocked script or style is logged otherwise.
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) pageErrors.push(message.text());
    });
  });
  afterAll(async () => {
    await browser?.close();
    await platform?.stop();
  });

  test('GET / leads to /ui/, whose login form refuses a wrong password with the api’s message and lets the user in', async () => {
    await page.goto(`${platform.url}/`);
    expect(new URL(page.url()).pathname).toBe('/ui/');
    await page.getByLabel('User name').fill(USER);
    await page.getByLabel('Password').fill('wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'wrong user name or password' }).waitFor();
    await shot('login');
    await checkAxe('login');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.locator(`tr[data-node="${nodeB()}"]`).waitFor();
    expect(await page.getByTestId('workers-count').textContent()).toBe('2');
  });

  test('the page and its assets are public and served with the api’s policy; the api stays behind credentials', async () => {
    const html = await fetch(`${platform.url}/ui/calls/7`);
    expect(html.status).toBe(200);
    expect(html.headers.get('content-security-policy')).toContain("script-src 'self'");
    const text = await html.text();
    const script = /src="(\/ui\/assets\/main-[A-Z0-9]+\.js)"/.exec(text)?.[1];
    expect(script).toBeDefined();
    expect(text).not.toMatch(/<script>(?!<)/);
    const asset = await fetch(`${platform.url}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('cache-control')).toContain('immutable');
    expect((await fetch(`${platform.url}/ui`, { redirect: 'manual' })).headers.get('location')).toBe('/ui/');
    expect((await fetch(`${platform.url}/ui/assets/nope.js`)).status).toBe(404);
    expect((await fetch(`${platform.url}/ui/assets/..%2f..%2fpackage.json`)).status).toBe(400);
    const json = await fetch(`${platform.url}/`, { headers: { accept: 'application/json' } });
    expect(json.status).toBe(404);
    expect((await json.json()).error.code).toBe('NOT_FOUND');
    expect((await fetch(`${platform.url}/v1/functions`)).status).toBe(401);
  });

  test('deploys a function from the page, with an archive and registration fields', async () => {
    await page.getByRole('link', { name: 'Functions' }).click();
    await page.getByRole('button', { name: 'Deploy a function' }).click();
    const form = page.getByRole('form', { name: 'Deploy a function' });
    await form.getByLabel('Name', { exact: true }).fill('echo');
    await form.locator('select[name="runtime"]').selectOption('pyproc');
    await form.getByLabel(/^Archive/).setInputFiles({ name: 'echo.tar.gz', mimeType: 'application/gzip', buffer: await tarGzOf(path.join(FIXTURES, 'echo')) });
    await form.getByLabel('Timeout (ms)').fill('20000');
    await form.getByLabel(/^Environment/).fill('GREETING=hola');
    await form.getByRole('button', { name: 'Deploy' }).click();
    await page.getByRole('status').filter({ hasText: 'Deployed echo' }).waitFor();
    const fn = (await api('GET', '/v1/functions/echo')).body;
    expect(fn).toMatchObject({ functionName: 'echo', runtimeName: 'pyproc', limits: { timeoutMs: 20000 }, env: { GREETING: 'hola' } });
    await page.locator('tr[data-function="echo"]').waitFor();
    // A refusal is shown with the api's message.
    await form.getByLabel('Name', { exact: true }).fill('echo');
    await form.getByLabel(/^Archive/).setInputFiles({ name: 'broken.tar.gz', mimeType: 'application/gzip', buffer: Buffer.from('not an archive') });
    await form.getByRole('button', { name: 'Deploy' }).click();
    await form.getByRole('alert').waitFor();
    expect((await api('GET', '/v1/functions/echo')).body.version).toBe(fn.version);
    await shot('functions-deploy');
    await checkAxe('functions');
  });

  test('invokes from the form: the params editor checks the JSON, the result is shown', async () => {
    await page.locator('tr[data-function="echo"]').getByRole('link', { name: 'echo' }).click();
    await page.getByRole('heading', { name: 'echo', level: 1 }).waitFor();
    const params = page.getByLabel('Params (JSON)');
    await params.fill('{"name": ');
    await page.getByRole('alert').filter({ hasText: 'params:' }).waitFor();
    expect(await page.getByRole('button', { name: 'Invoke' }).isDisabled()).toBe(true);
    await params.fill('{"name": "ada", "n": 3}');
    await page.getByRole('button', { name: 'Invoke' }).click();
    const result = page.getByTestId('invoke-result');
    await result.waitFor({ timeout: 60_000 });
    expect(JSON.parse((await result.textContent()) ?? '').params).toEqual({ name: 'ada', n: 3 });
    await page.locator('[data-testid="invoke-answer"] .status-done').waitFor();
    await shot('function');
    await checkAxe('function');
  });

  test('a call started outside the page appears in the history without a reload and turns DONE', async () => {
    await page.getByRole('link', { name: 'Calls', exact: true }).click();
    await page.getByRole('heading', { name: 'Calls' }).waitFor();
    await page.locator('tr[data-call]').first().waitFor();
    // The page reads the live events (GET /v1/events), not a poll.
    await page.locator('[data-live="live"]').waitFor();
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
    const started = await api('POST', '/v1/functions/echo/calls', { params: { from: 'outside' } });
    expect(started.status).toBe(202);
    const row = page.locator(`tr[data-call="${started.body.callNum}"]`);
    await row.waitFor({ timeout: 5000 });
    await row.locator('.status-done').waitFor({ timeout: 60_000 });
    // The same document all along: no reload happened.
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
    await shot('calls');
    await checkAxe('calls');
  });

  test('a failing call shows its status, reason and stderr', async () => {
    const failed = await api('POST', '/v1/functions/fail/calls?wait=true', {});
    expect(failed.body.status).toBe('ERROR');
    await page.goto(`${platform.url}/ui/calls/${failed.body.callNum}`);
    await page.getByTestId('stderr').filter({ hasText: 'something went wrong in the function' }).waitFor();
    expect(await page.getByTestId('status').textContent()).toContain('ERROR');
    expect(await page.getByTestId('call-error').textContent()).toBeTruthy();
    await shot('call-failed');
  });

  test('what a call wrote is shown as text: escape sequences removed, HTML not interpreted', async () => {
    const noisy = await api('POST', '/v1/functions/noisy/calls?wait=true', {});
    expect(noisy.body.status).toBe('ERROR');
    await page.goto(`${platform.url}/ui/calls/${noisy.body.callNum}`);
    const stderr = page.getByTestId('stderr');
    await stderr.filter({ hasText: 'done' }).waitFor();
    expect(await stderr.textContent()).toBe('red <img src=x onerror=alert(1)> done\n');
    expect(await stderr.locator('img').count()).toBe(0);
    expect(await page.locator('img').count()).toBe(0);
  });

  test('follows a running call’s logs live, then shows its end', async () => {
    const started = await api('POST', '/v1/functions/ticker/calls', {});
    const callNum = started.body.callNum as number;
    await page.goto(`${platform.url}/ui/calls/${callNum}`);
    const stderr = page.getByTestId('stderr');
    await stderr.filter({ hasText: 'tick 1' }).waitFor({ timeout: 60_000 });
    // Seen while the call still runs: the page follows the stream, it did not wait for the end.
    const meanwhile = (await api('GET', `/v1/calls/${callNum}`)).body;
    expect(meanwhile.status).toBe('RUNNING');
    expect(await stderr.textContent()).not.toContain('tick 7');
    await shot('call-running');
    await stderr.filter({ hasText: 'tick 7' }).waitFor({ timeout: 30_000 });
    await page.getByTestId('status').filter({ hasText: 'DONE' }).waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('result').textContent()).toBe('"ticked"');
  });

  test('reruns a call from its page', async () => {
    const first = await api('POST', '/v1/functions/echo/calls?wait=true', { params: { again: true } });
    expect(first.body.status).toBe('DONE');
    await page.goto(`${platform.url}/ui/calls/${first.body.callNum}`);
    await page.getByRole('button', { name: 'Run again' }).click();
    await page.waitForURL((url) => /\/ui\/calls\/\d+$/.test(url.pathname) && url.pathname !== `/ui/calls/${first.body.callNum}`);
    const rerunNum = Number(new URL(page.url()).pathname.split('/').pop());
    expect(rerunNum).toBeGreaterThan(first.body.callNum);
    await page.getByTestId('status').filter({ hasText: 'DONE' }).waitFor({ timeout: 60_000 });
    expect((await api('GET', `/v1/calls/${rerunNum}`)).body).toMatchObject({ rerunOf: first.body.callNum, params: { again: true } });
    expect(JSON.parse((await page.getByTestId('result').textContent()) ?? '').params).toEqual({ again: true });
    await shot('call');
    await checkAxe('call');
  });

  test('makes an older version current again from the function page', async () => {
    const before = (await api('GET', '/v1/functions/echo')).body;
    const newer = folder({ 'main.py': 'import sys\nsys.stdin.read()\nprint("\\"newer\\"")\n' });
    const form = new FormData();
    form.set('runtime', 'pyproc');
    form.set('module', new Blob([await tarGzOf(newer)]), 'echo.tar.gz');
    expect((await api('PUT', '/v1/functions/echo', form)).status).toBe(200);
    expect((await api('GET', '/v1/functions/echo')).body.version).not.toBe(before.version);
    await page.goto(`${platform.url}/ui/functions/echo`);
    await page.getByRole('heading', { name: 'Versions' }).waitFor();
    await page.getByRole('button', { name: `Make current ${before.version.slice(0, 12)}` }).click();
    await until(() => api('GET', '/v1/functions/echo'), (r) => r.body.version === before.version, 15_000, 'the older version current');
    // With its own registration fields, not the newer version's.
    expect((await api('GET', '/v1/functions/echo')).body).toMatchObject({ limits: { timeoutMs: 20000 }, env: { GREETING: 'hola' } });
    await page.locator('tr.current').filter({ hasText: before.version.slice(0, 12) }).waitFor();
  });

  test('downloads a call’s outputs', async () => {
    const call = (await api('POST', '/v1/functions/writer/calls?wait=true', { params: { name: 'grace' } })).body;
    expect({ ...call, stdout: undefined, stderr: undefined }).toMatchObject({ status: 'DONE', outputs: { bytes: expect.any(Number) } });
    await page.goto(`${platform.url}/ui/calls/${call.callNum}`);
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: /Download outputs/ }).click()]);
    expect(download.suggestedFilename()).toBe(`call-${call.callNum}-outputs.zip`);
    const saved = path.join(SHOTS, download.suggestedFilename());
    await download.saveAs(saved);
    const direct = Buffer.from(await (await fetch(`${platform.url}/v1/calls/${call.callNum}/outputs`, { headers: { authorization: AUTH } })).arrayBuffer());
    expect(readFileSync(saved).equals(direct)).toBe(true);
    expect(direct.includes(Buffer.from('report.txt'))).toBe(true);
  });

  test('runtimes: register from the form; removing one in use shows the refusal', async () => {
    await page.goto(`${platform.url}/ui/runtimes`);
    const form = page.getByRole('form', { name: 'Register a runtime' });
    await form.getByLabel('Name', { exact: true }).fill('pyhandler');
    await form.getByLabel('Image').fill('pythonruntime');
    await form.getByLabel('Path in the container').fill('/ws');
    await form.locator('select[name="mode"]').selectOption('handler');
    await form.getByLabel('Run command').fill('python3 /opt/faas/handler.py');
    await form.getByRole('button', { name: 'Register' }).click();
    await page.locator('tr[data-runtime="pyhandler"]').waitFor();
    expect((await api('GET', '/v1/runtimes/pyhandler')).body).toMatchObject({ mode: 'handler', image: 'pythonruntime' });
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Remove pyproc' }).click();
    await page.getByRole('alert').filter({ hasText: /pyproc/ }).waitFor();
    expect((await api('GET', '/v1/runtimes/pyproc')).status).toBe(200);
    await shot('runtimes');
    await checkAxe('runtimes');
  });

  test('a worker killed mid-way shows as gone on the overview; the charts are drawn', async () => {
    await page.goto(`${platform.url}/ui/`);
    const row = page.locator(`tr[data-node="${nodeB()}"]`);
    await row.getByTestId('worker-state').filter({ hasText: 'ready' }).waitFor();
    await page.locator('.chart-box canvas').first().waitFor();
    expect(await page.locator('.chart-box canvas').count()).toBe(2);
    await shot('overview');
    await checkAxe('overview');
    // Calls running on both nodes (capacity 2 each), then node b dies under its calls.
    const running = await Promise.all([1, 2, 3, 4].map(() => api('POST', '/v1/functions/ticker/calls', {})));
    await until(() => api<Array<{ nodeId: string; load: number }>>('GET', '/v1/workers'), (r) => r.body.some((w) => w.nodeId === nodeB() && w.load > 0), 30_000, 'a call running on node b');
    await platform.stopWorker('b', 'SIGKILL');
    await row.getByTestId('worker-state').filter({ hasText: 'gone' }).waitFor({ timeout: 20_000 });
    expect(await page.getByTestId('workers-count').textContent()).toBe('1');
    await shot('overview-worker-gone');
    for (const call of running) await until(() => api('GET', `/v1/calls/${call.body.callNum}`), (r) => ['DONE', 'ERROR'].includes(r.body.status), 60_000, `call ${call.body.callNum} ended`);
  });

  test('the functions list counts the recent calls and errors of each function', async () => {
    await page.goto(`${platform.url}/ui/functions`);
    const recent = (await api<{ calls: Array<{ funcName: string; status: string }> }>('GET', '/v1/calls?function=fail&limit=1000')).body.calls;
    expect(recent.length).toBeGreaterThan(0);
    const errors = recent.filter((c) => c.status === 'ERROR' || c.status === 'TIMEOUT').length;
    await page.locator('tr[data-function="fail"]').filter({ hasText: `${recent.length} / ${errors}` }).waitFor();
    await shot('functions');
  });

  test('usable at a phone’s width: every page fits 375 px without a horizontal scroll of the page', async () => {
    // The same tab: its credentials are the tab's own (sessionStorage).
    const phone = page;
    await phone.setViewportSize({ width: 375, height: 800 });
    for (const [route, heading] of [
      ['/ui/', 'Overview'],
      ['/ui/functions', 'Functions'],
      ['/ui/functions/echo', 'echo'],
      ['/ui/calls', 'Calls'],
      ['/ui/runtimes', 'Runtimes'],
    ] as const) {
      await phone.goto(`${platform.url}${route}`);
      await phone.getByRole('heading', { name: heading, level: 1 }).waitFor();
      const overflow = await phone.evaluate(() => {
        const width = document.documentElement.clientWidth;
        // What sticks out of the screen, except inside a box that scrolls on its own (a wide table).
        const scrolls = (el: Element | null): boolean => !!el && (['auto', 'scroll', 'hidden'].includes(getComputedStyle(el).overflowX) || scrolls(el.parentElement));
        const wide = [...document.querySelectorAll('body *')]
          .filter((el) => el.getBoundingClientRect().right > width + 1 && !scrolls(el.parentElement))
          .map((el) => `${el.tagName.toLowerCase()}.${el.className}`);
        return { by: document.documentElement.scrollWidth - width, wide: wide.slice(0, 5) };
      });
      expect({ route, overflow }).toEqual({ route, overflow: { by: 0, wide: [] } });
      await shot(`phone-${heading.toLowerCase()}`, phone);
      await checkAxe(`${route} at 375 px`);
    }
    await phone.setViewportSize({ width: 1280, height: 900 });
  });

  test('the keyboard reaches the pages: Tab from the top lands on the navigation links, focus is visible', async () => {
    await page.goto(`${platform.url}/ui/calls`);
    await page.getByRole('heading', { name: 'Calls' }).waitFor();
    const focused: string[] = [];
    for (let i = 0; i < 4; i++) {
      await page.keyboard.press('Tab');
      focused.push(await page.evaluate(() => document.activeElement?.textContent?.trim() ?? ''));
    }
    expect(focused).toEqual(['Skip to content', 'Overview', 'Functions', 'Calls']);
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
    expect(outline).toBe('solid');
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Functions', level: 1 }).waitFor();
  });

  test('a reload keeps the tab signed in; Sign out leads back to the login form', async () => {
    await page.reload();
    await page.getByRole('heading', { name: 'Functions', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await page.reload();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
  });

  test('no script error and no Content-Security-Policy violation on any page', () => {
    expect(pageErrors).toEqual([]);
  });
});

describe('the dashboard of a platform without users', () => {
  let platform: TestPlatform;
  let browser: Browser;

  beforeAll(async () => {
    if (!CHROMIUM) throw new Error('chromium is not installed (apt-get install chromium); .ci/run installs it');
    platform = await TestPlatform.start({ services: ['db', 'api'] });
    await platform.waitApi();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });
  afterAll(async () => {
    await browser?.close();
    await platform?.stop();
  });

  test('opens on the overview without a login form, and says when no worker is connected', async () => {
    const page = await browser.newPage();
    await page.goto(`${platform.url}/ui/`);
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    expect(await page.getByRole('button', { name: 'Sign in' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Sign out' }).count()).toBe(0);
    await page.getByText('No worker is connected').waitFor();
    await page.locator('[data-live="live"]').waitFor();
    // An unknown call: the api's message, not a blank page.
    await page.goto(`${platform.url}/ui/calls/999`);
    await page.getByRole('alert').filter({ hasText: 'no call 999' }).waitFor();
    await page.close();
  });
});
