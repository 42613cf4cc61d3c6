/** Registering the bench's functions and waiting for their containers, through the platform's public API. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tarGzOf } from '../test/helpers/archives';
import { docker, type TestPlatform } from '../test/helpers/platform';

/** A python package with one handler file, made on the fly. */
export async function handlerPackage(source: string): Promise<Buffer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-bench-fn-'));
  writeFileSync(path.join(dir, 'handler.py'), source);
  writeFileSync(path.join(dir, 'requirements.txt'), '');
  return tarGzOf(dir);
}

/** Registers a function; answers its record (its `version` names its image's label). */
export async function uploadWithFields(platform: TestPlatform, runtime: string, name: string, data: Buffer, fields: Record<string, string>): Promise<{ version: string }> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append('module', new Blob([data]), 'package.tar.gz');
  const response = await fetch(`${platform.url}/registerFunction/${runtime}/${name}`, { method: 'POST', body: form });
  if (!response.ok) throw new Error(`registering ${name}: ${response.status} ${await response.text()}`);
  return (await response.json()) as { version: string };
}

/** Waits until the node has made the image of this function version (its dependencies are in it). */
export async function waitFunctionImage(platform: TestPlatform, version: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const filters = { label: [`io.faas.platform=${platform.label}`, `io.faas.version=${version}`] };
  while ((await docker.listImages({ filters })).length === 0) {
    if (Date.now() > deadline) throw new Error(`no image of version ${version.slice(0, 12)} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface WorkerView {
  capacity: number;
  load: number;
  warm: Array<{ function: string; containers: number }>;
  stems: Array<{ runtime: string; containers: number }>;
}

export async function workers(platform: TestPlatform): Promise<WorkerView[]> {
  return (await platform.json('GET', '/workers')).body as WorkerView[];
}

export async function waitWarm(platform: TestPlatform, names: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const warm = new Set((await workers(platform)).flatMap((w) => w.warm.map((x) => x.function)));
    if (names.every((n) => warm.has(n))) return;
    if (Date.now() > deadline) throw new Error(`not warm within ${timeoutMs} ms: ${names.filter((n) => !warm.has(n)).length} functions`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function waitStem(platform: TestPlatform, runtime: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await workers(platform)).some((w) => w.stems.some((s) => s.runtime === runtime))) return;
    if (Date.now() > deadline) throw new Error(`no stem cell of ${runtime} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
