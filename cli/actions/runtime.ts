import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type Docker from 'dockerode';
import { dockerClient } from '../../protocol/docker-client';
import * as tar from 'tar';
import { nameFromImage } from '../../protocol/names';
import type { Runtime } from '../../protocol/types';
import { UsageError, type Context } from '../context';
import { formatTime, type Output } from '../output';
import { buildImage, chooseBase, followImageStream } from './images';

export interface RegisterRuntimeOptions {
  file?: string;
  name?: string;
  image?: string;
  path?: string;
  deps?: string;
  run?: string;
  mode?: string;
}

/** Registers the seed's RUNTIME object, from a JSON file or from flags. */
export async function registerRuntime(ctx: Context, o: RegisterRuntimeOptions): Promise<void> {
  let body: Partial<Runtime>;
  if (o.file) {
    try {
      body = JSON.parse(await readFile(o.file, 'utf8')) as Partial<Runtime>;
    } catch (err) {
      throw new UsageError(`--file ${o.file}: ${(err as Error).message}`);
    }
  } else {
    if (!o.image || !o.run) throw new UsageError('give --image and --run (or --file with a RUNTIME object)');
    body = { image: o.image, path: o.path ?? '/ws', dependencies: o.deps ?? '', run: o.run };
    // Without --name the runtime is named after the image: 127.0.0.1:5000/pythonruntime → pythonruntime.
    const name = o.name ?? nameFromImage(o.image);
    if (name) body.name = name;
    if (o.mode) body.mode = o.mode as Runtime['mode'];
  }
  const runtime = await ctx.client.registerRuntime(body);
  ctx.out.result(runtime, () => `runtime ${runtime.name} registered (image ${runtime.image}, ${runtime.mode} mode)`);
}

export async function listRuntimes(ctx: Context): Promise<void> {
  const runtimes = (await ctx.client.listRuntimes()).sort((a, b) => a.name.localeCompare(b.name));
  ctx.out.table(
    runtimes,
    [
      { header: 'NAME', value: (r) => r.name },
      { header: 'IMAGE', value: (r) => r.image },
      { header: 'MODE', value: (r) => r.mode },
      { header: 'PATH', value: (r) => r.path },
      { header: 'REGISTERED', value: (r) => formatTime(r.registeredAt) },
    ],
    'no runtimes yet: `faas runtime register --image IMAGE --run CMD` adds one',
  );
}

export async function showRuntime(ctx: Context, name: string): Promise<void> {
  const r = await ctx.client.getRuntime(name);
  ctx.out.result(r, () =>
    [
      `name:          ${r.name}`,
      `image:         ${r.image}`,
      `mode:          ${r.mode}`,
      `path:          ${r.path}`,
      `dependencies:  ${r.dependencies || '(none)'}`,
      `run:           ${r.run}`,
      `registered:    ${formatTime(r.registeredAt, true)}`,
    ].join('\n'),
  () => r.name);
}

export async function removeRuntime(ctx: Context, name: string): Promise<void> {
  await ctx.client.removeRuntime(name);
  ctx.out.result({ removed: name }, () => `runtime ${name} removed`);
}

export interface BuildOptions {
  tag?: string;
  buildArg: string[];
  label: string[];
  push?: boolean;
  registry?: string;
}

/**
 * Builds a runtime image from a folder with a Dockerfile. A Dockerfile that takes `ARG BASE_IMAGE`
 * gets the same offline fallback as the shipped runtimes. With a registry (--registry or
 * FAAS_REGISTRY) the image is named after it and pushed, so that every node can pull it.
 */
export async function buildRuntime(out: Output, dir: string, o: BuildOptions): Promise<void> {
  const context = path.resolve(dir);
  const dockerfile = path.join(context, 'Dockerfile');
  if (!(await stat(dockerfile).catch(() => null))?.isFile()) throw new UsageError(`${dir} has no Dockerfile`);
  const buildargs = pairs(o.buildArg, '--build-arg');
  const labels = pairs(o.label ?? [], '--label');
  const registry = (o.registry ?? process.env.FAAS_REGISTRY ?? '').replace(/^https?:\/\//, '').replace(/\/+$/, '');
  if (o.push && !registry) throw new UsageError('--push needs a registry: give --registry HOST:PORT or set FAAS_REGISTRY');
  const name = o.tag ?? `${path.basename(context).toLowerCase().replace(/[^a-z0-9._-]/g, '')}runtime`;
  const ref = registry && !name.startsWith(`${registry}/`) ? `${registry}/${name}` : name;

  const docker = dockerClient();
  const say = (line: string) => out.note(line);
  const declared = /^\s*ARG\s+BASE_IMAGE=(\S+)/m.exec(await readFile(dockerfile, 'utf8'));
  if (declared && !buildargs.BASE_IMAGE) buildargs.BASE_IMAGE = await chooseBase(docker, declared[1]!, say);
  say(`building ${ref}${buildargs.BASE_IMAGE ? ` on ${buildargs.BASE_IMAGE}` : ''}`);
  const entries = (await readdir(context)).filter((e) => e !== '.git' && e !== 'node_modules');
  await buildImage(docker, tar.c({ cwd: context, portable: true }, entries) as unknown as NodeJS.ReadableStream, { t: ref, buildargs, labels }, out.interactive ? (line) => out.progress(line.slice(0, 100)) : undefined);
  out.endProgress();

  let pushed = false;
  if (registry && o.push !== false) {
    say(`pushing ${ref}`);
    await pushImage(docker, ref, registry, out);
    pushed = true;
  }
  const image = await docker.getImage(ref).inspect();
  out.result({ image: ref, id: image.Id, size: image.Size, pushed }, () => `built ${ref}${pushed ? ' and pushed it' : ''} (${(image.Size / 1e6).toFixed(0)} MB); register it with \`faas runtime register --image ${ref} --run CMD\``, () => ref);
}

function pairs(values: string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of values) {
    const at = pair.indexOf('=');
    if (at < 1) throw new UsageError(`${flag} takes NAME=value, got "${pair}"`);
    out[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return out;
}

/** Registry credentials, when it asks for them: FAAS_REGISTRY_USER and FAAS_REGISTRY_PASSWORD. */
export function registryAuth(serveraddress: string, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return env.FAAS_REGISTRY_USER ? { username: env.FAAS_REGISTRY_USER, password: env.FAAS_REGISTRY_PASSWORD ?? '', serveraddress } : {};
}

async function pushImage(docker: Docker, ref: string, registry: string, out: Output): Promise<void> {
  // The engine wants an X-Registry-Auth header on every push, an empty one for an open registry.
  const stream = await docker.getImage(ref).push({ authconfig: registryAuth(registry) });
  try {
    await followImageStream(docker, stream, `pushing ${ref}`, (event) => {
      if (event.status) out.progress(`${event.id ? `${event.id}: ` : ''}${event.status} ${event.progress ?? ''}`.slice(0, 100));
    });
  } finally {
    out.endProgress();
  }
}
