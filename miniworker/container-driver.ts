import path from 'node:path';
import { Writable } from 'node:stream';
import type Docker from 'dockerode';
import { dockerClient } from '../protocol/docker-client';
import { PlatformError } from '../protocol/errors';
import { OUTPUT_DIR, type Sandbox } from '../protocol/limits';
import { OutputChannel } from './output-channel';
import { keptOutputs, tarFiles, type CollectedOutputs, type OutputFile } from './outputs';

/** The last `max` characters of a text: where a failing program says why. */
export function tail(text: string, max: number): string {
  return text.length <= max ? text : text.slice(text.length - max);
}

/** Said at the end of a log that was cut, so that nobody mistakes it for the whole. */
export function truncationMarker(limit: number): string {
  return `\n[faas: output truncated at ${limit} bytes]\n`;
}

/** Keeps the first `limit` bytes written to it and remembers whether more came. */
export class CappedBuffer extends Writable {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(private readonly limit: number) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    const room = this.limit - this.size;
    if (room > 0) {
      const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
      this.chunks.push(part);
      this.size += part.length;
    }
    if (chunk.length > room) this.truncated = true;
    done();
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }

  get bytes(): number {
    return this.size;
  }
}

/** More VOLUMEs than this in one image and its containers are refused. */
export const MAX_IMAGE_VOLUMES = 32;

/**
 * The VOLUME paths of an image (its Config.Volumes), cleaned as the engine cleans them. Each would
 * get an anonymous volume on the host's disk, outside the read-only root and its caps, unless a
 * tmpfs is mounted there: sandboxHostConfig mounts one on each.
 */
export function imageVolumes(volumes: Record<string, unknown> | null | undefined): string[] {
  const paths = new Set<string>();
  for (const declared of Object.keys(volumes ?? {})) {
    const clean = path.posix.normalize(declared);
    // The engine refuses such a VOLUME at build time; one that came some other way is refused here.
    if (!clean.startsWith('/') || clean === '/' || /[\0-\x1f\x7f,:]/.test(clean)) throw new Error(`the image declares a VOLUME the platform cannot cover: ${JSON.stringify(declared.slice(0, 200))}`);
    paths.add(clean.replace(/\/+$/, ''));
  }
  if (paths.size > MAX_IMAGE_VOLUMES) throw new Error(`the image declares ${paths.size} VOLUMEs; at most ${MAX_IMAGE_VOLUMES} are allowed`);
  return [...paths].sort();
}

/**
 * How every function container is fenced in: no network unless allowed, a read-only root with a
 * small writable /tmp, no capabilities, no privilege gain, a non-root user, and caps on memory
 * (swap included), CPU, processes and open files. Docker keeps no log of it: the platform reads
 * the output itself, up to its caps. `writable` adds a tmpfs where a stem cell receives its code.
 * `volumes` are the image's VOLUME paths: each gets a tmpfs of the /tmp cap owned by the sandbox
 * user instead of an anonymous volume on the host's disk (what the image put there is not copied).
 */
export function sandboxHostConfig(sandbox: Sandbox, writable?: string, volumes: readonly string[] = []): Docker.HostConfig {
  const [uid, gid] = sandbox.user.split(':');
  const owned = `rw,nosuid,nodev,size=${sandbox.tmpfsBytes},mode=0755,uid=${uid},gid=${gid}`;
  const tmpfs: Record<string, string> = {};
  for (const volume of volumes) tmpfs[volume] = owned;
  tmpfs['/tmp'] = `rw,nosuid,nodev,size=${sandbox.tmpfsBytes},mode=1777`;
  if (writable) tmpfs[writable] = owned;
  // The output folder is a tmpfs like /tmp: bounded, and gone with the container. What is in it is
  // sent by the bootstrap (handler mode) or by the wrapped run command (process mode), not read by
  // the engine, which cannot read a tmpfs.
  if (sandbox.outputs) tmpfs[OUTPUT_DIR] = `rw,nosuid,nodev,size=${sandbox.tmpfsBytes},mode=0700,uid=${uid},gid=${gid}`;
  return {
    NetworkMode: sandbox.network,
    ReadonlyRootfs: true,
    Tmpfs: tmpfs,
    CapDrop: ['ALL'],
    SecurityOpt: ['no-new-privileges'],
    PidsLimit: sandbox.pidsLimit,
    Memory: sandbox.memoryBytes,
    MemorySwap: sandbox.memoryBytes,
    NanoCpus: sandbox.nanoCpus,
    Ulimits: [{ Name: 'nofile', Soft: sandbox.nofile, Hard: sandbox.nofile }],
    LogConfig: { Type: 'none', Config: {} },
  };
}

/** The base64 tar the wrapped run command sent after its mark, as kept outputs. */
async function decodeOutputs(text: CappedBuffer, maxBytes: number): Promise<CollectedOutputs | undefined> {
  if (text.truncated) return { zip: null, bytes: text.bytes, truncated: true };
  const encoded = text.text().replace(/\s+/g, '');
  if (!encoded) return undefined;
  const files = await tarFiles(Buffer.from(encoded, 'base64')).catch(() => [] as OutputFile[]);
  return keptOutputs(files, maxBytes);
}

/** Environment every function container gets: a HOME it can write. */
export const SANDBOX_ENV = ['HOME=/tmp', 'TMPDIR=/tmp'];

export interface RunSpec {
  image: string;
  /** Shell command, run with `sh -c`; `args` are its "$@". */
  cmd: string;
  args?: string[];
  workingDir: string;
  env: string[];
  labels: Record<string, string>;
  stdin: string;
  timeoutMs: number;
  sandbox: Sandbox;
  maxStdoutBytes: number;
  maxStderrBytes: number;
  /** Given what the process has written so far, readable while it runs (logs followed live). */
  onOutput?: (output: LiveOutput) => void;
  /** Extra read-only binds (the function's secrets). */
  binds?: string[];
}

/** What a running call has written so far. */
export interface LiveOutput {
  stdout(): string;
  stderr(): string;
}

export interface RunOutcome {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  oomKilled: boolean;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  /** What the function left in the output folder, when the sandbox keeps outputs and it wrote any. */
  outputs?: CollectedOutputs;
}

export const INJECTABLE_LABEL = 'io.faas.injectable';

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number })?.statusCode;
}

/**
 * The one narrow interface to the Docker engine. Every container carries the platform's labels;
 * "already gone" counts as success when removing.
 */
export class ContainerDriver {
  constructor(readonly docker: Docker = dockerClient()) {}

  async ping(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (err) {
      throw new PlatformError('DOCKER_UNAVAILABLE', `the Docker engine does not answer: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** The image's id, labels and VOLUME paths (see imageVolumes), or undefined when it is not here. */
  async imageInfo(name: string): Promise<{ id: string; labels: Record<string, string>; volumes: string[] } | undefined> {
    try {
      const info = await this.docker.getImage(name).inspect();
      return { id: info.Id, labels: info.Config?.Labels ?? {}, volumes: imageVolumes(info.Config?.Volumes) };
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  /**
   * The VOLUME paths of the image a container is about to be made from: asked of the engine at each
   * creation (a cold path, one inspect), since a tag may move to another image. A missing image has
   * none; creating the container then fails with the engine's own answer.
   */
  async volumesOf(image: string): Promise<string[]> {
    return (await this.imageInfo(image))?.volumes ?? [];
  }

  /**
   * Runs one command in a new container and removes it: the seed's process mode. `stdin` is written
   * to the process's standard input, which is then closed; stdout and stderr are kept up to their caps.
   */
  async runOnce(spec: RunSpec): Promise<RunOutcome> {
    const stdout = new CappedBuffer(spec.maxStdoutBytes);
    const stderr = new CappedBuffer(spec.maxStderrBytes);
    // base64 of a tar of at most maxOutputBytes, with room for the tar's headers.
    const outputText = spec.sandbox.outputs ? new CappedBuffer(Math.ceil(((spec.sandbox.maxOutputBytes + 1024 * 1024) * 4) / 3)) : undefined;
    const channel = outputText ? new OutputChannel(stderr, outputText) : undefined;
    channel?.on('error', () => undefined);
    spec.onOutput?.({ stdout: () => stdout.text(), stderr: () => stderr.text() });
    const flushed = () => (channel ? new Promise<void>((resolve) => channel.end(() => resolve())) : Promise.resolve());
    // Extra arguments are the script's "$@": each one word, never parsed by the shell.
    const args = spec.args ?? [];
    const script = channel ? channel.wrap(spec.cmd, args.length > 0) : args.length > 0 ? `${spec.cmd.trimEnd()} "$@"` : spec.cmd;
    const volumes = await this.volumesOf(spec.image);
    const container = await this.docker.createContainer({
      Image: spec.image,
      Cmd: ['sh', '-c', script, 'sh', ...args],
      WorkingDir: spec.workingDir,
      Env: [...SANDBOX_ENV, ...spec.env],
      User: spec.sandbox.user,
      Labels: spec.labels,
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      OpenStdin: true,
      StdinOnce: true,
      Tty: false,
      HostConfig: { ...sandboxHostConfig(spec.sandbox, undefined, volumes), ...(spec.binds?.length ? { Binds: spec.binds } : {}) },
    });
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    try {
      const stream = (await container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true })) as NodeJS.ReadWriteStream;
      const ended = new Promise<void>((resolve) => {
        stream.on('end', resolve);
        stream.on('close', resolve);
        stream.on('error', () => resolve());
      });
      this.docker.modem.demuxStream(stream, stdout, channel ?? stderr);
      await container.start();
      stream.end(spec.stdin);
      const exited = container.wait() as Promise<{ StatusCode: number }>;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), spec.timeoutMs);
      });
      const first = await Promise.race([exited, timeout]);
      if (first === 'timeout') {
        timedOut = true;
        await container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
        await flushed();
        return { exitCode: null, stdout: stdout.text(), stderr: stderr.text(), timedOut, oomKilled: false, stdoutTruncated: stdout.truncated, stderrTruncated: stderr.truncated };
      }
      // Output may still be in flight when the process has exited: wait for the stream's end, briefly.
      await Promise.race([ended, new Promise((r) => setTimeout(r, 2000))]);
      let oomKilled = false;
      if (first.StatusCode === 137) {
        const info = await container.inspect().catch(() => undefined);
        oomKilled = Boolean(info?.State?.OOMKilled);
      }
      await flushed();
      const outputs = outputText ? await decodeOutputs(outputText, spec.sandbox.maxOutputBytes) : undefined;
      return {
        exitCode: first.StatusCode,
        stdout: stdout.text(),
        stderr: stderr.text(),
        timedOut,
        oomKilled,
        stdoutTruncated: stdout.truncated,
        stderrTruncated: stderr.truncated,
        ...(outputs ? { outputs } : {}),
      };
    } finally {
      if (timer) clearTimeout(timer);
      await this.remove(container.id);
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (err) {
      const status = statusOf(err);
      if (status !== 404 && status !== 409) throw err;
    }
  }

  /** Removes every container carrying all of these labels; returns how many. */
  async removeLabelled(labels: Record<string, string>): Promise<number> {
    const filters = { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) };
    const found = await this.docker.listContainers({ all: true, filters });
    await Promise.all(found.map((c) => this.remove(c.Id).catch(() => undefined)));
    return found.length;
  }
}
