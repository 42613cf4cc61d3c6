import { randomBytes } from 'node:crypto';
import * as tar from 'tar';
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import {
  BOOTSTRAP_ENV,
  EndMarkScanner,
  FrameLineReader,
  MAX_REQUEST_LINE_BYTES,
  bootstrapCommand,
  decodeFrameLine,
  encodeRequest,
  versionMismatchMessage,
  type BootstrapFrame,
  type BootstrapRequest,
  type FrameType,
  type PackageFile,
  type ResultFrame,
} from '../protocol/bootstrap-frames';
import { OUTPUT_DIR, type Sandbox } from '../protocol/limits';
import { createLogger, type Logger } from '../protocol/log';
import { CHANNEL_SOCKET, ContainerChannel } from './container-channel';
import type { SecretFiles } from './secret-files';
import { SANDBOX_ENV, sandboxHostConfig, truncationMarker, type ContainerDriver } from './container-driver';
import { keptOutputs, type CollectedOutputs } from './outputs';

export interface HandlerSpec {
  image: string;
  /** The runtime's `run`: starts the handler bootstrap. */
  cmd: string;
  workingDir: string;
  /** module.attribute of the function, e.g. "handler.handle". */
  handler: string;
  env: string[];
  labels: Record<string, string>;
  sandbox: Sandbox;
  startTimeoutMs: number;
  /** false: start the bootstrap but load no function yet (a stem cell). */
  load?: boolean;
  /** Where dropped frames are reported; a logger of its own when not given. */
  log?: Logger;
  /**
   * The node's folder of container channels: the container gets a unix socket of its own there
   * (see ContainerChannel). Without it, or when its bootstrap does not connect, requests and frames
   * go through `docker attach`.
   */
  channelDir?: string;
  /** The function's secrets as files, mounted at /run/secrets; removed with the container. */
  secrets?: SecretFiles;
}

export type HandlerOutcome =
  | { kind: 'ok'; result: string; stdout: string; stderr: string; truncated: boolean; outputs?: CollectedOutputs }
  | { kind: 'error'; error: string; stdout: string; stderr: string; truncated: boolean; exited: boolean; outputs?: CollectedOutputs }
  | { kind: 'timeout'; stdout: string; stderr: string; truncated: boolean }
  | { kind: 'too_large'; stdout: string; stderr: string; truncated: boolean }
  | { kind: 'crashed'; exitCode: number | null; oomKilled: boolean; stdout: string; stderr: string; truncated: boolean };

/** The outputs a bootstrap sent with its result, as kept: a zip, or only their size when too large. */
async function frameOutputs(frame: ResultFrame, maxBytes: number): Promise<CollectedOutputs | undefined> {
  if (frame.outputsTooLarge) return { zip: null, bytes: frame.outputsTooLarge, truncated: true };
  if (!Array.isArray(frame.outputs) || frame.outputs.length === 0) return undefined;
  const files = frame.outputs.map((f) => ({ path: f.path, data: Buffer.from(f.data, 'base64') }));
  return keptOutputs(files, maxBytes);
}

export class HandlerStartError extends Error {
  constructor(
    message: string,
    readonly log: string,
  ) {
    super(message);
    this.name = 'HandlerStartError';
  }
}

/** Frames dropped by every handler container of this process (bad, unknown, another version): a count to look at. */
export const droppedFrameCount = { total: 0 };

type FrameOf<T extends FrameType> = Extract<BootstrapFrame, { type: T }>;

/**
 * One running container in handler mode: its bootstrap loads the function once and then serves
 * calls over the frame protocol of protocol/bootstrap-frames.ts (JSON lines in on stdin; frames out
 * on the container's stdout, which carries nothing else; logs and per-call end marks on stderr).
 * A crash or a timeout ends the container.
 */
export class HandlerContainer {
  private stdin?: NodeJS.WritableStream;
  private waiting?: { resolve: (frame: BootstrapFrame) => void; reject: (err: Error) => void; type: FrameType; id?: number };
  private logErr = '';
  private cutErr = false;
  /** A frame line grew past any answer the bootstrap may send: the container is stopped. */
  private oversized = false;
  /** Frames on the container's stdout (attach), and on its channel socket. */
  private readonly frames: FrameLineReader;
  private readonly socketFrames: FrameLineReader;
  /** The container's stderr (attach), and the channel's log connection: fd 1 and fd 2 of a bootstrap that connected. */
  private readonly stderr: EndMarkScanner;
  private readonly socketLog: EndMarkScanner;
  private channel?: ContainerChannel;
  /** The bootstrap said `ready` in this protocol's version. */
  private ready = false;
  /** Call ids whose stderr end mark has come, and the call waiting for its own. */
  private readonly marks = new Set<number>();
  private markWaiter?: { id: number; done: () => void };
  /** The call in hand, and what its `stdout` frames brought so far (its whole stdout comes with its result). */
  private current?: number;
  private liveOut = '';
  /** Frames that arrived before anyone waited for them. */
  private readonly early: BootstrapFrame[] = [];
  private exited?: Promise<{ StatusCode: number }>;
  private readonly log: Logger;
  alive = false;
  lastUsed = Date.now();
  calls = 0;
  /** Frames of this container dropped as bad, unknown or of another version. */
  droppedFrames = 0;

  private constructor(
    private readonly driver: ContainerDriver,
    private readonly container: Docker.Container,
    private readonly spec: HandlerSpec,
    private readonly token: string,
  ) {
    this.log = spec.log ?? defaultLog();
    const sandbox = spec.sandbox;
    // The largest frame a bootstrap may send: a result, the captured stdout and outputs in base64, each
    // character escaped in JSON at worst (a control character in the result's own JSON text is 7).
    const maxFrame = 8 * (sandbox.maxResultBytes + sandbox.maxLogBytes + (sandbox.outputs ? sandbox.maxOutputBytes : 0)) + 65_536;
    const oversized = () => {
      this.oversized = true;
      this.fail(new Error('an answer past the size limit'));
      void this.container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
    };
    this.frames = new FrameLineReader(maxFrame, (line) => this.onFrameLine(line), oversized);
    this.socketFrames = new FrameLineReader(maxFrame, (line) => this.onFrameLine(line), oversized);
    this.stderr = new EndMarkScanner(token);
    this.socketLog = new EndMarkScanner(token);
  }

  get id(): string {
    return this.container.id;
  }

  /** Where requests go: the container's channel socket once its bootstrap connected, else attach. */
  get transport(): 'socket' | 'attach' {
    return this.channel?.connected ? 'socket' : 'attach';
  }

  /** Creates, starts and loads the function: after this the container answers calls. */
  static async start(driver: ContainerDriver, spec: HandlerSpec): Promise<HandlerContainer> {
    const token = randomBytes(12).toString('hex');
    const volumes = await driver.volumesOf(spec.image);
    let handler: HandlerContainer | undefined;
    const channel = spec.channelDir
      ? await ContainerChannel.open(spec.channelDir, token, spec.sandbox.user, {
          frames: (chunk) => handler?.socketFrames.push(chunk),
          log: (chunk) => handler?.onLog(handler.socketLog, chunk),
          refused: (reason) => handler?.countDropped(`a channel connection refused: ${reason}`),
        }).catch((err: unknown) => {
          // A folder that cannot be made (permissions, a full disk) costs the socket, not the container.
          (spec.log ?? defaultLog()).warn({ dir: spec.channelDir, err: err instanceof Error ? err.message : String(err) }, 'no channel socket for this container; it speaks over attach');
          return undefined;
        })
      : undefined;
    const hostConfig = sandboxHostConfig(spec.sandbox, spec.load === false ? spec.workingDir : undefined, volumes);
    hostConfig.Binds = [...(channel ? [channel.bind] : []), ...(spec.secrets ? [spec.secrets.bind] : [])];
    if (hostConfig.Binds.length === 0) delete hostConfig.Binds;
    let container: Docker.Container;
    try {
      container = await driver.docker.createContainer({
        Image: spec.image,
        Cmd: bootstrapCommand(spec.cmd),
        WorkingDir: spec.workingDir,
        Env: [
          ...SANDBOX_ENV,
          ...spec.env,
          ...BOOTSTRAP_ENV,
          `FAAS_FRAME_TOKEN=${token}`,
          `FAAS_WORKDIR=${spec.workingDir}`,
          `FAAS_MAX_LOG_BYTES=${spec.sandbox.maxLogBytes}`,
          `FAAS_MAX_RESULT_BYTES=${spec.sandbox.maxResultBytes}`,
          ...(spec.sandbox.outputs ? [`FAAS_OUTPUT_DIR=${OUTPUT_DIR}`, `FAAS_MAX_OUTPUT_BYTES=${spec.sandbox.maxOutputBytes}`] : []),
          ...(channel ? [`FAAS_CHANNEL_SOCKET=${CHANNEL_SOCKET}`] : []),
        ],
        User: spec.sandbox.user,
        Labels: spec.labels,
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        OpenStdin: true,
        StdinOnce: false,
        Tty: false,
        // A stem cell's code arrives later, over its channel, into a writable working folder.
        HostConfig: hostConfig,
      });
    } catch (err) {
      await channel?.close();
      await spec.secrets?.remove();
      throw err;
    }
    handler = new HandlerContainer(driver, container, spec, token);
    handler.channel = channel;
    try {
      await handler.boot();
      return handler;
    } catch (err) {
      await handler.dispose();
      if (err instanceof HandlerStartError) throw err;
      throw new HandlerStartError(`the handler did not start: ${err instanceof Error ? err.message : String(err)}`, handler.logErr);
    }
  }

  private async boot(): Promise<void> {
    const stream = (await this.container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true })) as NodeJS.ReadWriteStream;
    this.stdin = stream;
    const out = new PassThrough();
    const err = new PassThrough();
    out.on('data', (chunk: Buffer) => this.frames.push(chunk));
    err.on('data', (chunk: Buffer) => this.onLog(this.stderr, chunk));
    this.driver.docker.modem.demuxStream(stream, out, err);
    stream.on('error', () => undefined);
    await this.container.start();
    this.alive = true;
    this.exited = this.container.wait() as Promise<{ StatusCode: number }>;
    this.exited.then(
      () => this.onExit(),
      () => this.onExit(),
    );
    await this.expect('ready', this.spec.startTimeoutMs);
    this.ready = true;
    if (this.spec.load !== false) await this.load(this.spec.handler);
  }

  private async load(handler: string): Promise<void> {
    const loaded = await this.request({ type: 'load', handler }, 'loaded', this.spec.startTimeoutMs);
    if (loaded.error) throw new HandlerStartError('the function could not be loaded', loaded.error);
    // What loading wrote is not the first call's log.
    this.logErr = '';
    this.cutErr = false;
  }

  /**
   * Turns a stem cell into a function's container: its package travels over the container's own
   * channel (about a millisecond) into the writable working folder, then it is loaded. The root
   * filesystem is read-only, so the Docker API's archive upload is not an option here. The worker
   * sends only functions whose package is at most INLINE_PACKAGE_BYTES to a stem cell.
   */
  async inject(packagePath: string, handler: string): Promise<void> {
    const files = await packageFiles(packagePath);
    const written = await this.request({ type: 'files', files }, 'files', this.spec.startTimeoutMs);
    if (written.error) throw new HandlerStartError('the function could not be put into the container', written.error);
    await this.load(handler);
  }

  /**
   * One call. Its stderr is what came on the container's stderr after the previous call's end mark, up
   * to its own: frames and stderr travel apart, so the result may arrive before the last of the stderr.
   */
  async invoke(id: number, params: unknown, timeoutMs: number, env?: Record<string, string>): Promise<HandlerOutcome> {
    this.calls += 1;
    // Params travel as JSON text, so the request line stays shallow whatever their depth.
    let request: BootstrapRequest;
    try {
      request = { type: 'call', id, params: JSON.stringify(params ?? {}), ...(env && Object.keys(env).length > 0 ? { env } : {}) };
    } catch (err) {
      return { kind: 'error', error: `params could not be sent: ${err instanceof Error ? err.message : String(err)}`, exited: false, ...this.logs('') };
    }
    this.current = id;
    this.liveOut = '';
    try {
      const frame = await this.request(request, 'result', timeoutMs, id);
      // From here the result's stdout is the call's, whole.
      this.current = undefined;
      this.liveOut = '';
      await this.endOfStderr(id, 2000);
      const logs = this.logs(frame.stdout, Boolean(frame.stdoutTruncated));
      this.lastUsed = Date.now();
      if (frame.tooLarge) return { kind: 'too_large', ...logs };
      // Never fatal to the call: outputs that cannot be kept are reported as not kept.
      const outputs = this.spec.sandbox.outputs ? await frameOutputs(frame, this.spec.sandbox.maxOutputBytes).catch(() => ({ zip: null, bytes: 0, truncated: true })) : undefined;
      if (frame.ok) return { kind: 'ok', result: frame.result ?? 'null', ...logs, ...(outputs ? { outputs } : {}) };
      return { kind: 'error', error: frame.error ?? 'the handler failed', ...logs, exited: Boolean(frame.exit), ...(outputs ? { outputs } : {}) };
    } catch (err) {
      this.current = undefined;
      if (err instanceof RefusedError) return { kind: 'error', error: err.message, exited: false, ...this.logs('') };
      if (err instanceof TimeoutError) {
        await this.dispose();
        return { kind: 'timeout', ...this.logs('') };
      }
      if (this.oversized) {
        await this.dispose();
        return { kind: 'too_large', ...this.logs('') };
      }
      const status = await this.exited?.catch(() => undefined);
      // What the process wrote last (a traceback) may still be on its way over the channel.
      await this.channel?.logDrained(500);
      const info = await this.container.inspect().catch(() => undefined);
      await this.dispose();
      return { kind: 'crashed', exitCode: status?.StatusCode ?? null, oomKilled: Boolean(info?.State?.OOMKilled), ...this.logs('') };
    }
  }

  /** What the call in hand has written to stderr so far. */
  liveStderr(): string {
    return this.logErr;
  }

  /**
   * What the call in hand has printed to its stdout so far, as its bootstrap's `stdout` frames
   * brought it: the start of the stdout its result carries whole.
   */
  liveStdout(): string {
    return this.liveOut;
  }

  /** Resolves when the call's stderr end mark has come, or after `timeoutMs` (a function may close its stderr). */
  private endOfStderr(id: number, timeoutMs: number): Promise<void> {
    if (this.marks.delete(id)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.markWaiter = undefined;
        resolve();
      }, timeoutMs);
      this.markWaiter = {
        id,
        done: () => {
          clearTimeout(timer);
          this.markWaiter = undefined;
          resolve();
        },
      };
    });
  }

  private onLog(scanner: EndMarkScanner, chunk: Buffer): void {
    for (const event of scanner.push(chunk)) {
      if ('log' in event) {
        this.appendLog(event.log);
        continue;
      }
      if (this.markWaiter?.id === event.mark) this.markWaiter.done();
      else {
        // Kept for a call that has not started waiting yet; the oldest go first (bounded).
        if (this.marks.size >= 16) this.marks.delete(this.marks.values().next().value as number);
        this.marks.add(event.mark);
      }
    }
    // A bootstrap from before versioning writes its frames where fd 1 goes, which is now stderr.
    if (!this.ready && this.waiting?.type === 'ready' && this.logErr.includes(`${this.token} {`)) {
      this.countDropped('a frame on stderr');
      this.fail(new HandlerStartError(versionMismatchMessage(undefined), this.logErr));
    }
  }

  /** The call's logs, each cut one ending with a marker; stderr starts afresh for the next call. */
  private logs(captured: string, cut = false): { stdout: string; stderr: string; truncated: boolean } {
    if (!this.alive) {
      this.appendLog(this.stderr.flush());
      this.appendLog(this.socketLog.flush());
    }
    const limit = this.spec.sandbox.maxLogBytes;
    const marker = truncationMarker(limit);
    const cutOut = cut || captured.length > limit;
    const stdout = captured.slice(0, limit);
    const logs = {
      stdout: cutOut ? stdout + marker : stdout,
      stderr: this.cutErr ? this.logErr + marker : this.logErr,
      truncated: cutOut || this.cutErr,
    };
    this.logErr = '';
    this.cutErr = false;
    return logs;
  }

  async dispose(): Promise<void> {
    this.alive = false;
    this.fail(new Error('the container was stopped'));
    await this.driver.remove(this.container.id).catch(() => undefined);
    await this.channel?.close();
    await this.spec.secrets?.remove().catch(() => undefined);
  }

  private request<T extends FrameType>(body: BootstrapRequest, type: T, timeoutMs: number, id?: number): Promise<FrameOf<T>> {
    if (!this.alive || !this.stdin) return Promise.reject(new Error('the container is not running'));
    const line = encodeRequest(body);
    if (Buffer.byteLength(line) > MAX_REQUEST_LINE_BYTES) return Promise.reject(new RefusedError(`the request is larger than ${MAX_REQUEST_LINE_BYTES} bytes`));
    const answer = this.expect(type, timeoutMs, id);
    // A bootstrap that connected to its channel reads requests there, and no longer reads stdin.
    if (!this.channel?.write(line)) this.stdin.write(line);
    return answer;
  }

  private expect<T extends FrameType>(type: T, timeoutMs: number, id?: number): Promise<FrameOf<T>> {
    // The frame may have come already: the bootstrap can say "ready" before start() returns to us.
    const early = this.early.findIndex((f) => f.type === type && (id === undefined || (f.type === 'result' && f.id === id)));
    if (early >= 0) return Promise.resolve(this.early.splice(early, 1)[0] as FrameOf<T>);
    return new Promise<FrameOf<T>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new TimeoutError(`no ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting = {
        type,
        id,
        resolve: (frame) => {
          clearTimeout(timer);
          resolve(frame as FrameOf<T>);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
    });
  }

  /** Every line of the frame channel is checked here; a bad one is counted, logged and dropped. */
  private onFrameLine(line: string): void {
    const decoded = decodeFrameLine(line, this.token);
    if (decoded.kind === 'bad') {
      this.countDropped(decoded.reason);
      return;
    }
    if (decoded.kind === 'version') {
      this.countDropped(`a frame of protocol version ${String(decoded.version)}`);
      if (this.waiting?.type === 'ready') this.fail(new HandlerStartError(versionMismatchMessage(decoded.version), this.logErr));
      return;
    }
    if (decoded.skipped > 0) this.countDropped(`${decoded.skipped} characters before a frame`);
    const frame = decoded.frame;
    if (frame.type === 'stdout') {
      if (frame.id !== this.current) {
        this.countDropped('a stdout frame of no call in hand');
        return;
      }
      const room = this.spec.sandbox.maxLogBytes - this.liveOut.length;
      if (room > 0) this.liveOut += frame.text.slice(0, room);
      return;
    }
    const waiting = this.waiting;
    if (frame.type === 'rejected') {
      this.countDropped(`the bootstrap refused a request: ${frame.error.slice(0, 200)}`);
      if (waiting && frame.id !== undefined && waiting.id === frame.id) {
        this.waiting = undefined;
        waiting.reject(new RefusedError(`the bootstrap refused the call: ${frame.error}`));
      }
      return;
    }
    if (waiting && waiting.type === frame.type && (waiting.id === undefined || (frame.type === 'result' && waiting.id === frame.id))) {
      this.waiting = undefined;
      waiting.resolve(frame);
    } else if (this.early.length < 8) {
      this.early.push(frame);
    } else {
      this.countDropped(`an unexpected ${frame.type} frame`);
    }
  }

  private countDropped(reason: string): void {
    this.droppedFrames += 1;
    droppedFrameCount.total += 1;
    this.log.warn({ container: this.container.id.slice(0, 12), reason, dropped: this.droppedFrames }, 'bootstrap frame dropped');
  }

  private appendLog(text: string): void {
    const room = this.spec.sandbox.maxLogBytes - this.logErr.length;
    if (text.length > room) this.cutErr = true;
    if (room <= 0 || text.length === 0) return;
    this.logErr += text.slice(0, room);
  }

  private onExit(): void {
    this.alive = false;
    this.fail(new Error('the container exited'));
  }

  private fail(err: Error): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.reject(err);
  }
}

let sharedLog: Logger | undefined;
function defaultLog(): Logger {
  sharedLog ??= createLogger('handler-container');
  return sharedLog;
}

class TimeoutError extends Error {}
/** The bootstrap answered `rejected` for a call, or the call could not be sent: that call ends ERROR. */
class RefusedError extends Error {}

/** Packages up to this size go into a stem cell over its channel; larger ones get an image of their own. */
export const INLINE_PACKAGE_BYTES = 2 * 1024 * 1024;

/** The files of a (checked, canonical) package, base64, for the bootstrap to write. */
async function packageFiles(packagePath: string): Promise<PackageFile[]> {
  const files: PackageFile[] = [];
  const pending: Promise<void>[] = [];
  await tar.t({
    file: packagePath,
    onReadEntry: (entry) => {
      if (entry.type === 'Directory') {
        files.push({ path: entry.path.endsWith('/') ? entry.path : `${entry.path}/`, mode: 0o755, data: '' });
        entry.resume();
        return;
      }
      const chunks: Buffer[] = [];
      const item = { path: entry.path, mode: entry.mode ?? 0o644, data: '' };
      files.push(item);
      pending.push(
        new Promise<void>((resolve) => {
          entry.on('data', (c: Buffer) => chunks.push(c));
          entry.on('end', () => {
            item.data = Buffer.concat(chunks).toString('base64');
            resolve();
          });
        }),
      );
    },
  });
  await Promise.all(pending);
  return files;
}
