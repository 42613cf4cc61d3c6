import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { TestPlatform } from '../helpers/platform';

/**
 * The operator's browser, for real (Debian's chromium, headless): the api's page works under a host
 * name the operator allows, over plain HTTP, and a page of another site can neither change the
 * platform nor read it through a rebound name.
 */

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
/** A name only this browser resolves, to the api's loopback address: as an operator's DNS would. */
const ALLOWED = 'faas.test';
/** A site of the attacker's, whose name the browser also resolves to loopback (DNS rebinding). */
const EVIL = 'evil.test';

describe('adversarial: the operator’s browser', () => {
  let platform: TestPlatform;
  let browser: Browser;
  let port: string;

  beforeAll(async () => {
    if (!CHROMIUM) throw new Error('chromium is not installed (apt-get install chromium); .ci/run installs it');
    platform = await TestPlatform.start({ services: ['db', 'api'], env: { FAAS_ALLOWED_HOSTS: ALLOWED } });
    await platform.waitApi();
    port = new URL(platform.url).port;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', `--host-resolver-rules=MAP ${ALLOWED} 127.0.0.1, MAP ${EVIL} 127.0.0.1, EXCLUDE localhost`],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await platform?.stop();
  });

  test('/docs renders the api’s description under an allowed name over plain HTTP, every asset from the api itself', async () => {
    const page = await browser.newPage();
    const requested: string[] = [];
    page.on('request', (r) => requested.push(r.url()));
    const failed: string[] = [];
    page.on('requestfailed', (r) => failed.push(`${r.url()} ${r.failure()?.errorText ?? ''}`));
    await page.goto(`http://${ALLOWED}:${port}/docs`);
    // Swagger UI draws the title of /openapi.json once its script ran and fetched it.
    await page.waitForSelector('.swagger-ui .info .title', { timeout: 30_000 });
    expect(await page.textContent('.swagger-ui .info .title')).toContain('faas');
    expect(failed).toEqual([]);
    expect(requested.length).toBeGreaterThan(3);
    expect(requested.filter((url) => !url.startsWith(`http://${ALLOWED}:${port}/`) && !url.startsWith('data:'))).toEqual([]);
    await page.close();
  });

  test('a page of another site cannot register a runtime with a form, and a rebound name reads nothing', async () => {
    const page = await browser.newPage();
    // The attacker's page, served from its own origin; its form posts to the api (text/plain, no preflight).
    await page.route(`http://${EVIL}:${port}/attack`, (route) =>
      route.fulfill({
        contentType: 'text/html',
        body: `<form id="f" method="POST" enctype="text/plain" action="http://127.0.0.1:${port}/registerRuntime">
          <input name='{"name":"pwned","image":"pythonruntime","path":"/ws","run":"true","x":"' value='"}'></form>`,
      }),
    );
    await page.goto(`http://${EVIL}:${port}/attack`);
    const answer = page.waitForResponse((r) => r.url().endsWith('/registerRuntime'));
    await page.evaluate(() => (document.getElementById('f') as HTMLFormElement).submit());
    expect((await answer).status()).toBe(403);
    const runtimes = await platform.json('GET', '/runtimes');
    expect(runtimes.body).not.toContain('pwned');
    await page.waitForLoadState();

    // Rebinding: the attacker's name now points at the api; whatever the attacker's page then loads from
    // "its own" origin reaches the api under that name, and the api does not answer for it.
    const rebound = await browser.newPage();
    const read = await rebound.goto(`http://${EVIL}:${port}/calls`);
    expect(read?.status()).toBe(421);
    expect(JSON.parse(await rebound.innerText('body')).error.code).toBe('HOST_NOT_ALLOWED');
    await rebound.close();
    await page.close();
  });
});
