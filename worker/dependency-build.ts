import path from 'node:path';
import { Writable, type Readable } from 'node:stream';
import type Docker from 'dockerode';
import pLimit from 'p-limit';
import * as tar from 'tar';
import { OUTPUT_DIR } from '../protocol/limits';
import { INJECTABLE_LABEL, type ContainerDriver } from '../miniworker/container-driver';

/**
 * Where a dependencies step installs what does not belong in the function's folder: pip, run as a
 * user who cannot write the system's site-packages, falls back to a "user" install under
 * PYTHONUSERBASE. The variable stays in the function image, so the function's Python finds them.
 */
export const DEPS_DIR = '/opt/faas/deps';
/** The step's environment: a HOME on its /tmp tmpfs (caches), and the install folder. */
export const BUILD_ENV = ['HOME=/tmp', 'TMPDIR=/tmp', `PYTHONUSERBASE=${DEPS_DIR}`];
/** Scratch folders of the step: tmpfs, so neither in the image nor on the host's disk beyond their size. */
const SCRATCH = ['/tmp', '/var/tmp'];

/** How the dependencies step of every function is fenced in (a function container, minus the read-only root). */
export interface BuildLimits {
  /** uid:gid the step runs as, never root: the sandbox user of the function containers. */
  user: string;
  /** `none`, `bridge` or an operator's named network. */
  network: string;
  memoryBytes: number;
  nanoCpus: number;
  pidsLimit: number;
  nofile: number;
  /** The most the step may add to the image (package included); past it the function is refused. */
  maxLayerBytes: number;
  timeoutMs: number;
  /** Builds at once on this node; more wait their turn. */
  maxConcurrent: number;
  /** How often the size of the layer is looked at while the step runs. */
  pollMs: number;
  /** The step's output kept for the call's error (its end, where pip says why). */
  maxLogBytes: number;
}

export interface BuildSpec {
  runtimeImage: string;
  workingDir: string;
  dependencies: string;
  packagePath: string;
  labels: Record<string, string>;
  repo: string;
  tag: string;
}

export class BuildError extends Error {
  constructor(
    message: string,
    readonly log: string,
  ) {
    super(message);
    this.name = 'BuildError';
  }
}

/**
 * The host side of the step's container: the function sandbox with a writable root, and a cap on file
 * size. The runtime image's VOLUME paths get a capped tmpfs, as in function containers: an anonymous
 * volume would be host disk that the layer's cap does not see.
 */
export function buildHostConfig(limits: BuildLimits, volumes: readonly string[] = []): Docker.HostConfig {
  const scratch = `rw,nosuid,nodev,size=${Math.min(limits.maxLayerBytes, limits.memoryBytes)},mode=1777`;
  const tmpfs: Record<string, string> = Object.fromEntries(volumes.map((p) => [p, scratch]));
  for (const p of SCRATCH) tmpfs[p] = scratch;
  return {
    NetworkMode: limits.network,
    CapDrop: ['ALL'],
    SecurityOpt: ['no-new-privileges'],
    PidsLimit: limits.pidsLimit,
    Memory: limits.memoryBytes,
    MemorySwap: limits.memoryBytes,
    NanoCpus: limits.nanoCpus,
    // No single file may outgrow the layer's cap (SIGXFSZ/EFBIG): the poll below catches many files.
    Ulimits: [
      { Name: 'nofile', Soft: limits.nofile, Hard: limits.nofile },
      { Name: 'fsize', Soft: limits.maxLayerBytes, Hard: limits.maxLayerBytes },
    ],
    Tmpfs: tmpfs,
    // The engine keeps no log: the output is read through attach, and only its end is kept.
    LogConfig: { Type: 'none', Config: {} },
  };
}

function normal(p: string): string {
  return p.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
}

function under(p: string, dir: string): boolean {
  return p === dir || p.startsWith(`${dir.replace(/\/$/, '')}/`);
}

/** `/a/b/c` → `/a`, `/a/b`, `/a/b/c`. */
function withAncestors(p: string): string[] {
  const parts = p.split('/').filter(Boolean);
  return parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`);
}

/**
 * A function can run in a stem cell of its runtime (which receives only the package) when its
 * step added nothing but the package itself: the folders the platform made, and the package's own
 * files, are all the engine lists. Anything else — a file in DEPS_DIR, a build folder next to the
 * code, a file elsewhere — needs the function image.
 */
export function isInjectable(changes: string[], workingDir: string, packagePaths: Iterable<string>): boolean {
  const root = containerPath(workingDir);
  const allowed = new Set<string>([...withAncestors(root), ...withAncestors(DEPS_DIR), ...withAncestors(OUTPUT_DIR)]);
  for (const p of packagePaths) {
    const rel = normal(p);
    if (rel) for (const full of withAncestors(`${root === '/' ? '' : root}/${rel}`)) allowed.add(full);
  }
  return changes.every((c) => allowed.has(c) || SCRATCH.some((s) => under(c, s)));
}

/** `/ws/./a/../b//` → `/ws/b`: a folder as the engine will resolve it inside the container. */
export function containerPath(p: string): string {
  return path.posix.normalize(`/${p}`).replace(/\/+$/, '') || '/';
}

/**
 * A tar of empty folders owned by `uid:gid`, for putting at `/`. The root itself is never given
 * away: a runtime whose folder is `/` keeps a root-owned `/` (the package's own folders are still
 * the user's).
 */
export function folderTar(folders: string[], uid: number, gid: number): Buffer {
  const blocks = folders
    .map((folder) => containerPath(folder).slice(1))
    .filter((rel) => rel !== '')
    .map((rel) => {
      const header = new tar.Header({ path: `${rel}/`, type: 'Directory', mode: 0o755, uid, gid, size: 0, mtime: new Date(0) });
      header.encode();
      return header.block!;
    });
  return Buffer.concat([...blocks, Buffer.alloc(1024)]);
}

/**
 * The package as a tar whose entries belong to `uid:gid`: the engine extracts with the owners in
 * the headers, so the step's user may write in its folder (pip builds a local package in place)
 * without a root step to chown it. `paths` receives each entry's path.
 */
export function ownedPackage(packagePath: string, uid: number, gid: number, paths: Set<string>): Readable {
  const pack = new tar.Pack({ portable: false });
  tar
    .t({
      file: packagePath,
      noResume: true,
      onReadEntry: (entry) => {
        paths.add(entry.path);
        entry.uid = uid;
        entry.gid = gid;
        pack.add(entry);
      },
    })
    .then(
      () => pack.end(),
      (err: Error) => pack.emit('error', err),
    );
  return pack as unknown as Readable;
}

/** Keeps the last `limit` bytes written to it, and counts them all. */
export class TailBuffer extends Writable {
  private chunks: Buffer[] = [];
  private kept = 0;
  total = 0;

  constructor(private readonly limit: number) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.total += chunk.length;
    this.chunks.push(chunk);
    this.kept += chunk.length;
    while (this.chunks.length > 1 && this.kept - this.chunks[0]!.length >= this.limit) this.kept -= this.chunks.shift()!.length;
    done();
  }

  text(): string {
    const all = Buffer.concat(this.chunks);
    const end = all.subarray(Math.max(0, all.length - this.limit)).toString('utf8');
    return this.total > this.limit ? `[faas: ${this.total} bytes of output, the last ${this.limit} kept]\n${end}` : end;
  }
}

const REQUIREMENT = /^(?:-r|--requirement)(?:=(.+))?$/;
const SAFE_FILE = /^[\w./-]+$/;

/**
 * A dependencies command that only installs requirement files with pip (the python runtime's
 * `pip3 install -r requirements.txt`) has nothing to install when the package holds none of them:
 * the file is optional, as a user expects, so the command runs only when one is there. Any other
 * command is left as it is.
 */
export function optionalRequirements(command: string): string {
  const words = command.split(/\s+/).filter(Boolean);
  let at = words[0] === 'python3' || words[0] === 'python' ? (words[1] === '-m' && words[2] === 'pip' ? 3 : -1) : /^pip3?$/.test(words[0] ?? '') ? 1 : -1;
  if (at < 0 || words[at] !== 'install') return command;
  const files: string[] = [];
  for (at += 1; at < words.length; at++) {
    const requirement = REQUIREMENT.exec(words[at]!);
    const file = requirement ? (requirement[1] ?? words[++at]) : undefined;
    if (requirement && file !== undefined && SAFE_FILE.test(file)) files.push(file);
    else if (requirement || !/^--?[\w-]+(?:=[\w./:-]*)?$/.test(words[at]!)) return command;
  }
  if (files.length === 0) return command;
  const present = files.map((f) => `[ -e '${f}' ]`).join(' || ');
  return `if ${present}; then ${command}; else echo 'faas: no ${files.join(', ')} in the package: nothing to install'; fi`;
}

export function mb(bytes: number): string {
  return `${Math.ceil(bytes / (1024 * 1024))} MB`;
}

/**
 * Makes function images: a container of the runtime image receives the package (owned by the
 * sandbox user) through the Docker API, runs the runtime's dependencies command as that user in the
 * function sandbox, and is committed only when the layer it added is within the cap.
 */
export class DependencyBuilder {
  /** Builds at once on this node; more wait their turn, first come first served. */
  private readonly slots: pLimit.Limit;

  constructor(
    private readonly driver: ContainerDriver,
    private readonly limits: BuildLimits,
  ) {
    this.slots = pLimit(limits.maxConcurrent);
  }

  /** Builds running and waiting: for the heartbeat's queue and for tests. */
  get load(): { running: number; queued: number } {
    return { running: this.slots.activeCount, queued: this.slots.pendingCount };
  }

  build(spec: BuildSpec): Promise<{ injectable: boolean; layerBytes: number; log: string }> {
    return this.slots(() => this.run(spec));
  }

  private async run(spec: BuildSpec): Promise<{ injectable: boolean; layerBytes: number; log: string }> {
    const { docker } = this.driver;
    const [uid, gid] = this.limits.user.split(':').map(Number) as [number, number];
    const cap = this.limits.maxLayerBytes;
    const capText = `the function image's cap of ${mb(cap)} (FAAS_MAX_FUNCTION_IMAGE_MB)`;
    const volumes = await this.driver.volumesOf(spec.runtimeImage);
    // What is put under a VOLUME path is hidden by its tmpfs when a container runs: a runtime whose
    // VOLUME covers the function's folder (or the install folder) could never see its code.
    const hidden = volumes.find((v) => [spec.workingDir, DEPS_DIR, OUTPUT_DIR].some((dir) => under(dir, v) || under(v, dir)));
    if (hidden) throw new BuildError(`the runtime image declares VOLUME ${hidden}, over the function's folder ${spec.workingDir} or a folder of the platform: such a runtime image cannot hold functions`, '');
    const container = await docker.createContainer({
      Image: spec.runtimeImage,
      Cmd: ['sh', '-c', optionalRequirements(spec.dependencies.trim()) || 'true'],
      WorkingDir: spec.workingDir,
      Env: BUILD_ENV,
      User: this.limits.user,
      Labels: spec.labels,
      Tty: false,
      AttachStdout: true,
      AttachStderr: true,
      HostConfig: buildHostConfig(this.limits, volumes),
    });
    const log = new TailBuffer(this.limits.maxLogBytes);
    let timer: NodeJS.Timeout | undefined;
    let poller: NodeJS.Timeout | undefined;
    let finished = false;
    try {
      // The function's folder, the install folder and the output folder's mount point, owned by the user.
      await container.putArchive(folderTar([spec.workingDir, DEPS_DIR, OUTPUT_DIR], uid, gid), { path: '/' });
      const packagePaths = new Set<string>();
      await container.putArchive(ownedPackage(spec.packagePath, uid, gid, packagePaths), { path: spec.workingDir });
      const stream = (await container.attach({ stream: true, stdout: true, stderr: true })) as NodeJS.ReadableStream;
      const ended = new Promise<void>((resolve) => {
        stream.on('end', resolve);
        stream.on('close', resolve);
        stream.on('error', () => resolve());
      });
      docker.modem.demuxStream(stream, log, log);
      await container.start();
      const stopped = new Promise<'timeout' | 'too large'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), this.limits.timeoutMs);
        // A step filling the disk is stopped while it runs: no quota exists on every storage driver,
        // so the layer's size is looked at every pollMs, and a single file cannot pass the cap (fsize).
        const poll = async () => {
          const size = await layerSize(container).catch(() => 0);
          if (finished) return;
          if (size > cap) resolve('too large');
          else poller = setTimeout(() => void poll(), this.limits.pollMs);
        };
        poller = setTimeout(() => void poll(), this.limits.pollMs);
      });
      const first = await Promise.race([container.wait() as Promise<{ StatusCode: number }>, stopped]);
      finished = true;
      if (timer) clearTimeout(timer);
      if (poller) clearTimeout(poller);
      if (typeof first === 'string') {
        await container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
        await Promise.race([ended, new Promise((r) => setTimeout(r, 2000))]);
        if (first === 'timeout') throw new BuildError(`the dependencies command ran past ${this.limits.timeoutMs} ms (FAAS_DEPS_TIMEOUT_MS)`, log.text());
        throw new BuildError(`the dependencies step wrote more than ${capText}; the function is refused`, log.text());
      }
      await Promise.race([ended, new Promise((r) => setTimeout(r, 2000))]);
      if (first.StatusCode !== 0) throw new BuildError(`the dependencies command exited with code ${first.StatusCode}`, log.text());
      const layerBytes = await layerSize(container);
      if (layerBytes > cap) throw new BuildError(`the dependencies step added ${mb(layerBytes)}, more than ${capText}; the function is refused`, log.text());
      const changes = ((await container.changes()) ?? []) as Array<{ Path: string }>;
      const injectable = isInjectable(
        changes.map((c) => c.Path),
        spec.workingDir,
        packagePaths,
      );
      await container.commit({ repo: spec.repo, tag: spec.tag, changes: [`LABEL ${INJECTABLE_LABEL}=${injectable}`] });
      return { injectable, layerBytes, log: log.text() };
    } finally {
      finished = true;
      if (timer) clearTimeout(timer);
      if (poller) clearTimeout(poller);
      await this.driver.remove(container.id);
    }
  }
}

/** The size of what the container wrote on top of its image (the engine walks the layer to say). */
async function layerSize(container: Docker.Container): Promise<number> {
  // The typings leave out `size`, which the engine's inspect takes (and dockerode passes on).
  const info = (await container.inspect({ size: true } as Docker.ContainerInspectOptions)) as { SizeRw?: number };
  if (typeof info.SizeRw !== 'number') throw new Error('the engine did not say how much the dependencies step wrote');
  return info.SizeRw;
}
