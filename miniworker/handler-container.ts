import { randomBytes } from 'node:crypto';
import * as tar from 'tar';
import { PassThrough } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type Docker from 'dockerode';
import { OUTPUT_DIR, type Sandbox } from '../protocol/limits';
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
}

export type HandlerOutcome =
  | { kind: 'ok'; result: string; stdout: string; stderr: string; truncated: boolean; outputs?: CollectedOutputs }
  | { kind: 'error'; error: string; stdout: string; stderr: string; truncated: boolean; exited: boolean; outputs?: CollectedOutputs }
  | { kind: 'timeout'; stdout: string; stderr: string; truncated: boolean }
  | { kind: 'too_large'; stdout: string; stderr: string; truncated: boolean }
  | { kind: 'crashed'; exitCode: number | null; oomKilled: boolean; stdout: string; stderr: string; truncated: boolean };

interface Frame {
  op: string;
  id?: number;
  ok?: boolean;
  result?: string;
  error?: string;
  stdout?: string;
  stderr?: string;
  exit?: boolean;
  /** The bootstrap refused a result past FAAS_MAX_RESULT_BYTES. */
  tooLarge?: boolean;
  stdoutTruncated?: boolean;
  /** Files the call left in the output folder, read by the bootstrap (a tmpfs is out of the engine's reach). */
  outputs?: Array<{ path: string; data: string }>;
  /** Their size when past FAAS_MAX_OUTPUT_BYTES: then none are sent. */
  outputsTooLarge?: number;
}

/** The outputs a bootstrap sent with its result, as kept: a zip, or only their size when too large. */
async function frameOutputs(frame: Frame, maxBytes: number): Promise<CollectedOutputs | undefined> {
  if (frame.outputsTooLarge) return { zip: null, bytes: frame.outputsTooLarge, truncated: true };
  if (!Array.isArray(frame.outputs) || frame.outputs.length === 0) return undefined;
  const files = frame.outputs.map((f) => ({ path: String(f?.path ?? ''), data: Buffer.from(String(f?.data ?? ''), 'base64') }));
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

/**
 * One running container in handler mode: its bootstrap loads the function once and then serves
 * calls over a framed channel (one JSON line in on stdin, one token-prefixed JSON line out on
 * stdout). Other output while a call runs is that call's log. A crash or a timeout ends the container.
 */
export class HandlerContainer {
  private stdin?: NodeJS.WritableStream;
  private waiting?: { resolve: (frame: Frame) => void; reject: (err: Error) => void; op: string; id?: number };
  private logOut = '';
  private logErr = '';
  private cutOut = false;
  private cutErr = false;
  /** A frame line grew past any answer the bootstrap may send: the container is stopped. */
  private oversized = false;
  private partial = '';
  /** The end of stderr not yet attributed: it may be the start of a call's end mark. */
  private errPending = '';
  /** A UTF-8 character split across two chunks is decoded whole (results and logs are not ASCII-only). */
  private readonly outDecoder = new StringDecoder('utf8');
  private readonly errDecoder = new StringDecoder('utf8');
  /** Call ids whose stderr end mark has come, and the call waiting for its own. */
  private readonly marks = new Set<number>();
  private markWaiter?: { id: number; done: () => void };
  /** Frames that arrived before anyone waited for them. */
  private readonly early: Frame[] = [];
  private exited?: Promise<{ StatusCode: number }>;
  alive = false;
  lastUsed = Date.now();
  calls = 0;

  private constructor(
    private readonly driver: ContainerDriver,
    private readonly container: Docker.Container,
    private readonly spec: HandlerSpec,
    private readonly token: string,
  ) {}

  get id(): string {
    return this.container.id;
  }

  /** Creates, starts and loads the function: after this the container answers calls. */
  static async start(driver: ContainerDriver, spec: HandlerSpec): Promise<HandlerContainer> {
    const token = randomBytes(12).toString('hex');
    const container = await driver.docker.createContainer({
      Image: spec.image,
      Cmd: ['sh', '-c', `exec ${spec.cmd}`],
      WorkingDir: spec.workingDir,
      Env: [
        ...SANDBOX_ENV,
        ...spec.env,
        `FAAS_FRAME_TOKEN=${token}`,
        `FAAS_WORKDIR=${spec.workingDir}`,
        `FAAS_MAX_LOG_BYTES=${spec.sandbox.maxLogBytes}`,
        `FAAS_MAX_RESULT_BYTES=${spec.sandbox.maxResultBytes}`,
        ...(spec.sandbox.outputs ? [`FAAS_OUTPUT_DIR=${OUTPUT_DIR}`, `FAAS_MAX_OUTPUT_BYTES=${spec.sandbox.maxOutputBytes}`] : []),
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
      HostConfig: sandboxHostConfig(spec.sandbox, spec.load === false ? spec.workingDir : undefined),
    });
    const handler = new HandlerContainer(driver, container, spec, token);
    try {
      await handler.boot();
      return handler;
    } catch (err) {
      await handler.dispose();
      if (err instanceof HandlerStartError) throw err;
      throw new HandlerStartError(`the handler did not start: ${err instanceof Error ? err.message : String(err)}`, handler.logErr + handler.logOut);
    }
  }

  private async boot(): Promise<void> {
    const stream = (await this.container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true })) as NodeJS.ReadWriteStream;
    this.stdin = stream;
    const out = new PassThrough();
    const err = new PassThrough();
    out.on('data', (chunk: Buffer) => this.onStdout(chunk));
    err.on('data', (chunk: Buffer) => this.onStderr(chunk));
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
    if (this.spec.load !== false) await this.load(this.spec.handler);
  }

  private async load(handler: string): Promise<void> {
    const loaded = await this.request({ op: 'load', handler }, 'loaded', this.spec.startTimeoutMs);
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
    const written = await this.request({ op: 'files', files }, 'files', this.spec.startTimeoutMs);
    if (written.error) throw new HandlerStartError('the function could not be put into the container', written.error);
    await this.load(handler);
  }

  /**
   * One call. Its stderr is what came on the container's stderr after the previous call's end mark, up
   * to its own: stdout and stderr travel apart, so the result may arrive before the last of the stderr.
   */
  async invoke(id: number, params: unknown, timeoutMs: number, env?: Record<string, string>): Promise<HandlerOutcome> {
    this.logOut = '';
    this.cutOut = false;
    this.calls += 1;
    try {
      // A call's own variables are set by the bootstrap for the call's duration only.
      const frame = await this.request({ op: 'call', id, params, ...(env && Object.keys(env).length > 0 ? { env } : {}) }, 'result', timeoutMs, id);
      await this.endOfStderr(id, 2000);
      if (frame.stdoutTruncated) this.cutOut = true;
      const logs = this.logs(frame.stdout ?? '');
      this.lastUsed = Date.now();
      if (frame.tooLarge) return { kind: 'too_large', ...logs };
      // Never fatal to the call: outputs that cannot be kept are reported as not kept.
      const outputs = this.spec.sandbox.outputs ? await frameOutputs(frame, this.spec.sandbox.maxOutputBytes).catch(() => ({ zip: null, bytes: 0, truncated: true })) : undefined;
      if (frame.ok) return { kind: 'ok', result: frame.result ?? 'null', ...logs, ...(outputs ? { outputs } : {}) };
      return { kind: 'error', error: frame.error ?? 'the handler failed', ...logs, exited: Boolean(frame.exit), ...(outputs ? { outputs } : {}) };
    } catch (err) {
      if (err instanceof TimeoutError) {
        await this.dispose();
        return { kind: 'timeout', ...this.logs('') };
      }
      if (this.oversized) {
        await this.dispose();
        return { kind: 'too_large', ...this.logs('') };
      }
      const status = await this.exited?.catch(() => undefined);
      const info = await this.container.inspect().catch(() => undefined);
      await this.dispose();
      return { kind: 'crashed', exitCode: status?.StatusCode ?? null, oomKilled: Boolean(info?.State?.OOMKilled), ...this.logs('') };
    }
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

  private onStderr(chunk: Buffer): void {
    const prefix = `${this.token}:end:`;
    let text = this.errPending + this.errDecoder.write(chunk);
    this.errPending = '';
    for (let at = text.indexOf(prefix); at >= 0; at = text.indexOf(prefix)) {
      const end = text.indexOf('\n', at);
      if (end < 0) break;
      this.appendLog('err', text.slice(0, at));
      const id = Number(text.slice(at + prefix.length, end));
      text = text.slice(end + 1);
      if (this.markWaiter?.id === id) this.markWaiter.done();
      else {
        // Kept for a call that has not started waiting yet; the oldest go first (bounded).
        if (this.marks.size >= 16) this.marks.delete(this.marks.values().next().value as number);
        this.marks.add(id);
      }
    }
    // Keep back what may be the beginning of a mark until the rest arrives.
    let keep = text.lastIndexOf(prefix) >= 0 ? text.length - text.lastIndexOf(prefix) : 0;
    if (keep > prefix.length + 24) keep = 0; // longer than any mark: plain output
    if (keep === 0) for (let n = Math.min(prefix.length - 1, text.length); n > 0 && keep === 0; n--) if (prefix.startsWith(text.slice(-n))) keep = n;
    this.appendLog('err', text.slice(0, text.length - keep));
    this.errPending = text.slice(text.length - keep);
  }

  /** The call's logs, each cut one ending with a marker; stderr starts afresh for the next call. */
  private logs(captured: string): { stdout: string; stderr: string; truncated: boolean } {
    if (this.errPending && !this.alive) {
      this.appendLog('err', this.errPending);
      this.errPending = '';
    }
    const limit = this.spec.sandbox.maxLogBytes;
    const marker = truncationMarker(limit);
    const stdout = (captured + this.logOut).slice(0, limit);
    const cutOut = this.cutOut || captured.length + this.logOut.length > limit;
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
  }

  private request(body: Record<string, unknown>, op: string, timeoutMs: number, id?: number): Promise<Frame> {
    if (!this.alive || !this.stdin) return Promise.reject(new Error('the container is not running'));
    const answer = this.expect(op, timeoutMs, id);
    this.stdin.write(`${JSON.stringify(body)}\n`);
    return answer;
  }

  private expect(op: string, timeoutMs: number, id?: number): Promise<Frame> {
    // The frame may have come already: the bootstrap can say "ready" before start() returns to us.
    const early = this.early.findIndex((f) => f.op === op && (id === undefined || f.id === id));
    if (early >= 0) return Promise.resolve(this.early.splice(early, 1)[0]!);
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new TimeoutError(`no ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting = {
        op,
        id,
        resolve: (frame) => {
          clearTimeout(timer);
          resolve(frame);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
    });
  }

  private onStdout(chunk: Buffer): void {
    const text = this.partial + this.outDecoder.write(chunk);
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    if (this.partial.length > this.spec.sandbox.maxLogBytes) {
      if (this.partial.startsWith(this.token)) {
        // An answer still growing: past any size the bootstrap may send, the container is stopped.
        if (this.partial.length > 4 * (this.spec.sandbox.maxResultBytes + this.spec.sandbox.maxLogBytes + (this.spec.sandbox.outputs ? this.spec.sandbox.maxOutputBytes : 0)) + 65_536) {
          this.partial = '';
          this.oversized = true;
          this.fail(new Error('an answer past the size limit'));
          void this.container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
        }
      } else {
        this.appendLog('out', this.partial);
        this.partial = '';
      }
    }
    for (const line of lines) {
      if (line.startsWith(this.token + ' ')) {
        let frame: Frame;
        try {
          frame = JSON.parse(line.slice(this.token.length + 1));
        } catch {
          continue;
        }
        const waiting = this.waiting;
        if (waiting && waiting.op === frame.op && (waiting.id === undefined || waiting.id === frame.id)) {
          this.waiting = undefined;
          waiting.resolve(frame);
        } else if (this.early.length < 8) {
          this.early.push(frame);
        }
      } else {
        this.appendLog('out', `${line}\n`);
      }
    }
  }

  private appendLog(stream: 'out' | 'err', text: string): void {
    const current = stream === 'out' ? this.logOut : this.logErr;
    const room = this.spec.sandbox.maxLogBytes - current.length;
    if (text.length > room) {
      if (stream === 'out') this.cutOut = true;
      else this.cutErr = true;
    }
    if (room <= 0) return;
    const next = current + text.slice(0, room);
    if (stream === 'out') this.logOut = next;
    else this.logErr = next;
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

class TimeoutError extends Error {}

/** Packages up to this size go into a stem cell over its channel; larger ones get an image of their own. */
export const INLINE_PACKAGE_BYTES = 2 * 1024 * 1024;

/** The files of a (checked, canonical) package, base64, for the bootstrap to write. */
async function packageFiles(packagePath: string): Promise<Array<{ path: string; mode: number; data: string }>> {
  const files: Array<{ path: string; mode: number; data: string }> = [];
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
