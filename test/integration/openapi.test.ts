import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type express from 'express';
import { loadApiConfig } from '../../api/config';
import { Platform } from '../../api/platform';
import { createApp } from '../../api/routes';
import { createLogger } from '../../protocol/log';
import { TestPlatform } from '../helpers/platform';

const VALIDATOR = path.resolve(__dirname, '..', '..', 'node_modules', '@seriousme', 'openapi-schema-validator', 'bin', 'validate-api-cli.js');

interface Document {
  openapi: string;
  paths: Record<string, Record<string, { responses: Record<string, unknown>; requestBody?: unknown }>>;
  components: { schemas: Record<string, unknown> };
}

/** Every route the express app serves, as "METHOD /path/{param}". */
function servedRoutes(app: express.Express): string[] {
  const stack = (app as unknown as { router: { stack: Array<{ route?: { path: string | string[]; methods: Record<string, boolean> } }> } }).router.stack;
  const routes: string[] = [];
  for (const layer of stack) {
    if (!layer.route) continue;
    if (Array.isArray(layer.route.path)) {
      // app.all: the functions' endpoints, documented for the usual methods.
      for (const route of layer.route.path) for (const method of ['get', 'post', 'put', 'patch', 'delete']) if (layer.route.methods[method]) routes.push(`${method.toUpperCase()} ${route.replace(/\*(\w+)/, '{$1}').replace(/:(\w+)/g, '{$1}')}`);
      continue;
    }
    for (const method of Object.keys(layer.route.methods)) routes.push(`${method.toUpperCase()} ${layer.route.path.replace(/:(\w+)/g, '{$1}')}`);
  }
  return routes.sort();
}

describe('the api description', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    platform = await TestPlatform.start({ services: ['db', 'api'] });
    await platform.waitApi();
  });
  afterAll(async () => platform?.stop());

  test('/openapi.json is a valid OpenAPI 3.1 document', async () => {
    const response = await fetch(`${platform.url}/openapi.json`);
    expect(response.status).toBe(200);
    const document = (await response.json()) as Document;
    expect(document.openapi).toBe('3.1.0');
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'faas-openapi-')), 'openapi.json');
    writeFileSync(file, JSON.stringify(document));
    const result = await new Promise<{ code: number; out: string }>((resolve) =>
      execFile(process.execPath, [VALIDATOR, file], (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr })),
    );
    expect(result.out).toMatch(/"valid": true/);
    expect(result.code).toBe(0);
    // The payloads have their schemas.
    for (const name of ['Runtime', 'RuntimeInput', 'Function', 'Call', 'CallPage', 'CallLogs', 'CallInput', 'InvokeInput', 'Error', 'Worker', 'Health']) {
      expect(Object.keys(document.components.schemas)).toContain(name);
    }
  });

  test("it passes Redocly's recommended lint, with an id and a tag on every operation", async () => {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'faas-openapi-')), 'openapi.json');
    writeFileSync(file, await (await fetch(`${platform.url}/openapi.json`)).text());
    // The linter's modules are not all CommonJS: it runs in a node of its own, as its CLI would.
    const script = `
      const { createConfig, lintFromString } = require('@redocly/openapi-core');
      const source = require('node:fs').readFileSync(process.argv[1], 'utf8');
      createConfig({ extends: ['recommended'] })
        .then((config) => lintFromString({ source, absoluteRef: 'openapi.json', config }))
        .then((problems) => process.stdout.write(JSON.stringify(problems.map((p) => ({ severity: p.severity, rule: p.ruleId, message: p.message, at: p.location[0] && p.location[0].pointer })))));`;
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['-e', script, file], { cwd: path.resolve(__dirname, '..', '..') }, (err, stdout, stderr) => (err ? reject(new Error(stderr || String(err))) : resolve(stdout))),
    );
    const problems = JSON.parse(out) as Array<{ severity: string; rule: string; message: string; at?: string }>;
    // Not even a warning: every operation has its id and a tag, the document its license.
    expect(problems).toEqual([]);
    const document = JSON.parse(readFileSync(file, 'utf8')) as { paths: Record<string, Record<string, { operationId?: string; tags?: string[] }>>; tags: Array<{ name: string }> };
    const operations = Object.values(document.paths).flatMap((methods) => Object.values(methods));
    const ids = operations.map((o) => o.operationId);
    expect(new Set(ids).size).toBe(operations.length);
    const tags = new Set(document.tags.map((t) => t.name));
    for (const operation of operations) expect(operation.tags?.length === 1 && tags.has(operation.tags[0]!)).toBe(true);
  });

  test('it lists exactly the routes the api serves', async () => {
    const document = (await (await fetch(`${platform.url}/openapi.json`)).json()) as Document;
    const documented = Object.entries(document.paths)
      .flatMap(([route, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${route}`))
      .sort();
    const platformObject = new Platform(loadApiConfig({}), createLogger('openapi-test'));
    try {
      const app = createApp(platformObject, loadApiConfig({}));
      expect(documented).toEqual(servedRoutes(app));
      expect(documented.length).toBeGreaterThan(25);
    } finally {
      await platformObject.close().catch(() => undefined);
    }
  });

  test('every documented error answer is the Error schema; /docs is a page with its assets', async () => {
    const document = (await (await fetch(`${platform.url}/openapi.json`)).json()) as Document;
    for (const [route, methods] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        for (const [status, answer] of Object.entries(operation.responses)) {
          // /health answers its own body when degraded; every other failure is an Error.
          if (Number(status) >= 400 && route !== '/health') expect({ route, method, status, answer }).toMatchObject({ answer: { content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } } });
        }
      }
    }
    const page = await fetch(`${platform.url}/docs`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('/docs/assets/swagger-ui-bundle.js');
    expect(html).not.toMatch(/<script>/);
    for (const asset of ['/docs/assets/swagger-ui-bundle.js', '/docs/assets/swagger-ui.css', '/docs/init.js']) {
      expect({ asset, status: (await fetch(`${platform.url}${asset}`)).status }).toEqual({ asset, status: 200 });
    }
    expect((await fetch(`${platform.url}/docs/assets/../../package.json`)).status).not.toBe(200);
  });
});
