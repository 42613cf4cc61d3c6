import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { dockerClient } from '../../protocol/docker-client';

/** The checkout's root, found from here whether running from dist/ or from the sources. */
export const PROJECT_ROOT = (() => {
  let dir = __dirname;
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();
export const LOCAL_BASE_IMAGE = 'faas-base/debian:bookworm';

/** The runtime images the project ships: folder under runtimes/, image name, official base, build context. */
export const RUNTIME_IMAGES = [
  { dir: 'python', image: 'pythonruntime', officialBase: 'python:3.12-slim', src: ['Dockerfile', 'bootstrap/handler.py'] },
  { dir: 'node', image: 'noderuntime', officialBase: 'node:20-slim', src: ['Dockerfile', 'bootstrap/handler.js'] },
];

const CONTEXT_LABEL = 'io.faas.context';

/** A digest of an image's build context, kept as a label, so that a changed runtime is rebuilt. */
function contextDigest(dir: string, src: string[]): string {
  const hash = createHash('sha256');
  for (const file of src) hash.update(file).update('\0').update(readFileSync(path.join(dir, file)));
  return hash.digest('hex').slice(0, 16);
}

async function labelOf(docker: Docker, name: string, label: string): Promise<string | undefined> {
  try {
    return (await docker.getImage(name).inspect()).Config?.Labels?.[label];
  } catch {
    return undefined;
  }
}

async function exists(docker: Docker, name: string): Promise<boolean> {
  try {
    await docker.getImage(name).inspect();
    return true;
  } catch {
    return false;
  }
}

/**
 * The base image to build on: FAAS_BASE_IMAGE when set; the official image when it is already
 * here; else a locally made Debian base (made with debootstrap when possible); else the official
 * image, which Docker pulls.
 */
export async function chooseBase(docker: Docker, officialBase: string, say: (line: string) => void): Promise<string> {
  if (process.env.FAAS_BASE_IMAGE) return process.env.FAAS_BASE_IMAGE;
  if (await exists(docker, officialBase)) return officialBase;
  if (await exists(docker, LOCAL_BASE_IMAGE)) return LOCAL_BASE_IMAGE;
  const script = path.join(PROJECT_ROOT, 'scripts', 'make-base-image.sh');
  const hasDebootstrap = ['/usr/sbin/debootstrap', '/usr/bin/debootstrap'].some((p) => existsSync(p));
  if (hasDebootstrap && process.getuid?.() === 0) {
    say(`making the local base image ${LOCAL_BASE_IMAGE} with debootstrap (about a minute)`);
    await promisify(execFile)('bash', [script, LOCAL_BASE_IMAGE], { maxBuffer: 16 * 1024 * 1024 });
    return LOCAL_BASE_IMAGE;
  }
  return officialBase;
}

/** Builds an image through the engine; `onLine` hears the build's output as it comes. */
export async function buildImage(
  docker: Docker,
  context: NodeJS.ReadableStream | { context: string; src: string[] },
  options: { t: string; buildargs?: Record<string, string>; labels?: Record<string, string> },
  onLine?: (line: string) => void,
): Promise<void> {
  const stream = await docker.buildImage(context, { ...options, rm: true, forcerm: true });
  await followImageStream(docker, stream, `building ${options.t}`, (event) => {
    const text = (event.stream ?? event.status ?? '').trimEnd();
    if (text && onLine) for (const line of text.split('\n')) onLine(line);
  });
}

export interface ImageStreamEvent {
  stream?: string;
  status?: string;
  progress?: string;
  id?: string;
}

/** Follows a build or push stream of the engine to its end; an error anywhere in it fails `what`. */
export function followImageStream(docker: Docker, stream: NodeJS.ReadableStream, what: string, onEvent: (event: ImageStreamEvent) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null, output: Array<{ error?: string }>) => {
        const failed = err ?? output.find((o) => o.error);
        if (failed) reject(new Error(`${what} failed: ${err ? err.message : (failed as { error: string }).error}`));
        else resolve();
      },
      onEvent,
    );
  });
}

/** Builds every runtime image that is missing (or all of them with `force`). */
export async function ensureRuntimeImages(options: { force?: boolean; say?: (line: string) => void } = {}): Promise<string[]> {
  const say = options.say ?? ((line: string) => process.stdout.write(`${line}\n`));
  const docker = dockerClient();
  const built: string[] = [];
  for (const runtime of RUNTIME_IMAGES) {
    const context = path.join(PROJECT_ROOT, 'runtimes', runtime.dir);
    const digest = contextDigest(context, runtime.src);
    if (!options.force && (await labelOf(docker, runtime.image, CONTEXT_LABEL)) === digest) continue;
    const base = await chooseBase(docker, runtime.officialBase, say);
    say(`building runtime image ${runtime.image} on ${base}`);
    await buildImage(docker, { context, src: runtime.src }, { t: runtime.image, buildargs: { BASE_IMAGE: base }, labels: { [CONTEXT_LABEL]: digest } });
    built.push(runtime.image);
  }
  return built;
}

export const LOCAL_NODE_IMAGE = 'faas-base/node:20';
export const LOCAL_REGISTRY_IMAGE = 'faas/registry:debian';

/**
 * The base images of the compose cluster: the official `node:20-slim` and `registry:2` when this
 * machine has them, else local ones made here (Debian plus this machine's node; Debian's registry
 * package), for a machine that cannot pull. Returns what FAAS_NODE_IMAGE and FAAS_REGISTRY_IMAGE
 * should be.
 */
export async function ensureClusterBaseImages(say: (line: string) => void = () => undefined): Promise<{ node: string; registry: string }> {
  const docker = dockerClient();
  const run = promisify(execFile);
  let node = 'node:20-slim';
  if (!(await exists(docker, node))) {
    node = LOCAL_NODE_IMAGE;
    if (!(await exists(docker, node))) {
      say(`making ${node} from Debian and this machine's node`);
      await run('bash', [path.join(PROJECT_ROOT, 'scripts', 'make-node-base-image.sh'), node, LOCAL_BASE_IMAGE], { maxBuffer: 16 * 1024 * 1024 });
    }
  }
  let registry = 'registry:2';
  if (!(await exists(docker, registry))) {
    registry = LOCAL_REGISTRY_IMAGE;
    if (!(await exists(docker, registry))) {
      const base = await chooseBase(docker, 'debian:bookworm-slim', say);
      say(`building ${registry} from Debian's docker-registry package on ${base}`);
      const context = path.join(PROJECT_ROOT, 'registry');
      await buildImage(docker, { context, src: ['Dockerfile', 'config.yml'] }, { t: registry, buildargs: { BASE_IMAGE: base } });
    }
  }
  return { node, registry };
}
