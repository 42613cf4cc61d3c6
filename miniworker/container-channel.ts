import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

/** Where a container finds its channel folder (bind-mounted read-only). */
export const CHANNEL_MOUNT = '/run/faas';
/** The socket inside it, as the bootstrap sees it (FAAS_CHANNEL_SOCKET). */
export const CHANNEL_SOCKET = `${CHANNEL_MOUNT}/channel.sock`;
/** Linux's limit for a socket path is 108 bytes with its NUL; a longer host path falls back to attach. */
const MAX_SOCKET_PATH = 100;
/** A connection must say who it is within this long, in at most this many bytes. */
const HELLO_TIMEOUT_MS = 10_000;
const MAX_HELLO_BYTES = 128;

export type ChannelKind = 'frames' | 'log';

export interface ChannelEvents {
  /** Bytes of the frame connection (frames, one per line). */
  frames(chunk: Buffer): void;
  /** Bytes of the log connection (what the function wrote to fd 1 and fd 2, and the end marks). */
  log(chunk: Buffer): void;
  /** A connection was refused: no token, a second one of a kind, too long a hello. */
  refused(reason: string): void;
}

/**
 * A container's private channel: a unix socket in a folder of its own on the host, bind-mounted
 * read-only into that container alone, so requests, frames and logs never pass through dockerd or
 * the container's shim. The folder is made before the container is created, owned by the sandbox
 * user with mode 0700, and removed with the container. The bootstrap connects twice — once for
 * requests and frames, once for fd 1 and fd 2 — and each connection first says `<token> frames` or
 * `<token> log`; anything else is closed. No more connections are taken once both have come.
 */
export class ContainerChannel {
  private server?: net.Server;
  private framesSocket?: net.Socket;
  private logSocket?: net.Socket;
  private logEnded?: Promise<void>;
  private closed = false;

  private constructor(
    /** The folder on the host, mounted at CHANNEL_MOUNT. */
    readonly dir: string,
    private readonly token: string,
    private readonly events: ChannelEvents,
  ) {}

  /**
   * Makes the folder and listens; undefined when the path would be too long for a socket (the
   * container then speaks over attach). `owner` is the sandbox user as uid:gid.
   */
  static async open(root: string, token: string, owner: string, events: ChannelEvents): Promise<ContainerChannel | undefined> {
    const dir = path.join(root, randomBytes(8).toString('hex'));
    const socketPath = path.join(dir, 'channel.sock');
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) return undefined;
    await mkdir(root, { recursive: true, mode: 0o711 });
    await mkdir(dir, { mode: 0o700 });
    const channel = new ContainerChannel(dir, token, events);
    try {
      await channel.listen(socketPath, owner);
      return channel;
    } catch (err) {
      await channel.close();
      throw err;
    }
  }

  /** The Docker bind that puts the folder into the container, read-only. */
  get bind(): string {
    return `${this.dir}:${CHANNEL_MOUNT}:ro`;
  }

  get connected(): boolean {
    return this.framesSocket !== undefined && !this.framesSocket.destroyed;
  }

  /** Sends a request line; false when the frame connection is not there. */
  write(line: string): boolean {
    if (!this.framesSocket || this.framesSocket.destroyed) return false;
    this.framesSocket.write(line);
    return true;
  }

  /** Resolves when the log connection has ended (the process is gone), or after `timeoutMs`. */
  logDrained(timeoutMs: number): Promise<void> {
    if (!this.logEnded) return Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([this.logEnded, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]).finally(() => clearTimeout(timer));
  }

  /** Closes both connections and removes the folder; safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.server?.close();
    this.framesSocket?.destroy();
    this.logSocket?.destroy();
    await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
  }

  private async listen(socketPath: string, owner: string): Promise<void> {
    const server = net.createServer((socket) => this.accept(socket));
    this.server = server;
    server.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const [uid, gid] = owner.split(':').map(Number) as [number, number];
    try {
      // Only the sandbox user may reach the socket (and only its container has the folder).
      await chown(this.dir, uid, gid);
      await chown(socketPath, uid, gid);
      await chmod(socketPath, 0o600);
    } catch {
      // Not root: anyone may connect, and a connection without the token is closed at once.
      await chmod(this.dir, 0o711);
      await chmod(socketPath, 0o666);
    }
  }

  private accept(socket: net.Socket): void {
    socket.on('error', () => undefined);
    if (this.closed || (this.framesSocket && this.logSocket)) {
      socket.destroy();
      return;
    }
    let hello = Buffer.alloc(0);
    const timer = setTimeout(() => refuse('no hello in time'), HELLO_TIMEOUT_MS);
    const refuse = (reason: string) => {
      clearTimeout(timer);
      socket.destroy();
      this.events.refused(reason);
    };
    const onData = (chunk: Buffer) => {
      hello = Buffer.concat([hello, chunk]);
      const nl = hello.indexOf(0x0a);
      if (nl < 0) {
        if (hello.length > MAX_HELLO_BYTES) refuse('a hello past its size');
        return;
      }
      clearTimeout(timer);
      socket.off('data', onData);
      const said = hello.subarray(0, nl).toString('utf8');
      const rest = hello.subarray(nl + 1);
      const kind = said === `${this.token} frames` ? 'frames' : said === `${this.token} log` ? 'log' : undefined;
      if (!kind) return refuse('a connection without the token');
      if ((kind === 'frames' && this.framesSocket) || (kind === 'log' && this.logSocket)) return refuse(`a second ${kind} connection`);
      this.adopt(kind, socket, rest);
    };
    socket.on('data', onData);
  }

  private adopt(kind: ChannelKind, socket: net.Socket, rest: Buffer): void {
    if (kind === 'frames') {
      this.framesSocket = socket;
      socket.setNoDelay(true);
      socket.on('data', (chunk: Buffer) => this.events.frames(chunk));
    } else {
      this.logSocket = socket;
      this.logEnded = new Promise<void>((resolve) => {
        socket.once('end', resolve);
        socket.once('close', resolve);
      });
      socket.on('data', (chunk: Buffer) => this.events.log(chunk));
    }
    if (rest.length > 0 && kind === 'frames') this.events.frames(rest);
    else if (rest.length > 0) this.events.log(rest);
    // Both are here: nobody else is let in, and the socket file is no longer needed.
    if (this.framesSocket && this.logSocket) this.server?.close();
  }
}
