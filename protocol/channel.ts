import * as zmq from 'zeromq';
import type { z } from 'zod';
import { decodeMessage, encodeReply, encodeRequest, isReply, MAX_FRAME_BYTES, type Reply } from './envelope';
import { asPlatformError, PlatformError, type ErrorShape } from './errors';
import type { Logger } from './log';
import { Outbox } from './outbox';
import { randomUUID } from 'node:crypto';

/**
 * How long a ROUTER send may wait before it counts as failed: not at all, since zeromq.js waits out
 * the whole timeout for a peer that is gone. The ROUTERs here have no send high-water mark, so a
 * live peer never makes a send wait.
 */
const ROUTER_SEND_TIMEOUT_MS = 0;

/** The content schema of each msgType a channel accepts. */
export type Schemas = Record<string, z.ZodTypeAny>;

/**
 * Why a frame was dropped. The envelope's own reasons (decodeMessage), then the channel's, then
 * `refused`-style reasons that the owner of the channel gives through `drop()` (an unknown peer,
 * a call it does not hold).
 */
export type DropReason =
  | 'empty'
  | 'too_large'
  | 'not_json'
  | 'bad_envelope'
  | 'version'
  | 'malformed'
  | 'unexpected_reply'
  | 'unknown_type'
  | 'bad_content'
  | 'handler_error'
  | (string & {});

/** Who sent a frame: the routing id on a ROUTER (latin1, so that any bytes round-trip), '' on a DEALER. */
export type Peer = string;

export interface Received {
  id: string;
  msgType: string;
  from: Peer;
  /** When the sender stops waiting (ms since the epoch), if it said. */
  deadline?: number;
}

/** A handler's value is the reply's data on a channel that `replies`; elsewhere it is ignored. */
export type Handlers<In extends Schemas> = {
  [K in keyof In]: (content: z.output<In[K]>, from: Peer, message: Received) => unknown;
};

export interface ChannelStats {
  /** Frames taken off the socket. */
  received: number;
  /** Frames that reached a handler. */
  handled: number;
  /** Frames dropped, by reason (handler errors included). */
  dropped: Record<string, number>;
  sent: number;
  /** Sends that failed (a vanished peer on a mandatory ROUTER) or were refused (queue full, socket closed). */
  sendFailures: number;
  /** The receive call itself failed (not a bad frame); the loop went on. */
  receiveErrors: number;
}

export interface ChannelOptions<In extends Schemas> {
  /** For logs: what is at the other end ("worker", "api", "miniworker"). */
  name: string;
  /** A ROUTER is set to `mandatory: true` (and a send timeout), so that a vanished peer is an error, not a silent drop or a stall. */
  socket: zmq.Router | zmq.Dealer;
  inbound: In;
  handlers: Handlers<In>;
  log: Logger;
  maxFrameBytes?: number;
  /**
   * Run one handler at a time: the next frame is taken only when the handler's promise settles.
   * For a peer that serves one request at a time (a miniworker).
   */
  serial?: boolean;
  /**
   * A request/reply server: every request whose envelope can be read is answered, with the
   * handler's value as data, or an error (the handler's, or PROTOCOL_ERROR for an unknown msgType,
   * BAD_REQUEST for content that fails its schema), so that no client waits out its timeout.
   */
  replies?: boolean;
  /** Request/reply clients: reply frames go here; without it a reply is dropped. */
  onReply?: (reply: Reply, from: Peer) => void | Promise<void>;
  /** A send that failed, with the peer and the encoded frame. */
  onSendFailed?: (err: unknown, to: Peer, frame: Buffer) => void;
  /** Bound of the outbound queue. */
  maxQueued?: number;
  /** Drop lines logged per second; the rest are counted and summed up in the next line. */
  logPerSecond?: number;
}

/**
 * One end of a ZeroMQ channel, ROUTER or DEALER: receives, decodes the envelope, checks the
 * content against the schema of its msgType and dispatches to a typed handler. A bad frame is
 * logged (a few lines a second at most), counted and dropped; no handler error, thrown or
 * rejected, ends the receive loop. Sends go through one outbound queue (zeromq.js allows one
 * pending send per socket). `Out` is the map of schemas this end sends.
 */
export class Channel<In extends Schemas, Out extends Schemas> {
  private readonly socket: zmq.Router | zmq.Dealer;
  private readonly router: boolean;
  private readonly outbox: Outbox;
  private readonly counters: ChannelStats = { received: 0, handled: 0, dropped: {}, sent: 0, sendFailures: 0, receiveErrors: 0 };
  private loop?: Promise<void>;
  private closed = false;
  /** Resolved by close(): a serial loop waiting on a handler stops waiting. */
  private readonly closedSignal: Promise<void>;
  private signalClosed!: () => void;
  private logWindow = { start: 0, lines: 0, suppressed: 0 };

  constructor(private readonly options: ChannelOptions<In>) {
    this.socket = options.socket;
    this.closedSignal = new Promise((resolve) => (this.signalClosed = resolve));
    this.router = options.socket instanceof zmq.Router;
    if (this.router) {
      const router = options.socket as zmq.Router;
      // `mandatory` is write-only in zeromq.js: the channel sets what it relies on. Without a send
      // timeout, zeromq.js waits on an unroutable peer instead of failing, and the queue behind it stalls.
      router.mandatory = true;
      if (router.sendTimeout < 0) router.sendTimeout = ROUTER_SEND_TIMEOUT_MS;
    }
    this.outbox = new Outbox(
      this.socket,
      (err, frames) => {
        this.counters.sendFailures += 1;
        const to = this.router ? Buffer.from(frames[0] as Buffer).toString('latin1') : '';
        const frame = frames[this.router ? 1 : 0] as Buffer;
        if (this.options.onSendFailed) this.guard(() => this.options.onSendFailed!(err, to, frame), 'send failure handler');
        else this.note('warn', { peer: printable(to), err: String(err) }, `send to the ${this.options.name} failed`);
      },
      options.maxQueued,
    );
  }

  /** Starts the receive loop (once). */
  start(): this {
    this.loop ??= this.receiveLoop();
    return this;
  }

  stats(): ChannelStats {
    return { ...this.counters, dropped: { ...this.counters.dropped } };
  }

  /** Queues a message; false when it could not be queued (the queue is full or the socket closed). */
  send<K extends keyof Out & string>(msgType: K, content: z.output<Out[K]>, to: Peer = ''): boolean {
    return this.sendFrame(encodeRequest(randomUUID(), msgType, content), to);
  }

  /**
   * Answers a request (request/reply channels). An answer past the frame cap would be dropped by
   * the peer, which would then wait out its timeout: it is answered REPLY_TOO_LARGE instead.
   */
  reply(to: Peer, id: string, result: { ok: true; data: unknown } | { ok: false; error: ErrorShape }): boolean {
    const frame = encodeReply(id, result);
    const cap = this.options.maxFrameBytes ?? MAX_FRAME_BYTES;
    if (frame.length > cap) {
      this.note('warn', { peer: printable(to), bytes: frame.length }, `an answer to the ${this.options.name} is past the frame cap`);
      return this.sendFrame(encodeReply(id, { ok: false, error: new PlatformError('REPLY_TOO_LARGE', `the answer is ${frame.length} bytes, past the ${cap}-byte frame cap`).toJSON() }), to);
    }
    return this.sendFrame(frame, to);
  }

  sendFrame(frame: Buffer, to: Peer = ''): boolean {
    const queued = this.outbox.send(this.router ? [Buffer.from(to, 'latin1'), frame] : [frame]);
    if (queued) this.counters.sent += 1;
    else {
      this.counters.sendFailures += 1;
      this.note('warn', { peer: printable(to) }, `a message to the ${this.options.name} could not be queued`);
    }
    return queued;
  }

  /** Resolves when every message queued so far has been handed to the socket. */
  flush(): Promise<void> {
    return this.outbox.drained();
  }

  /** Counts and logs a dropped frame; the owner of the channel calls it for frames its own rules refuse. */
  drop(reason: DropReason, from: Peer, detail?: string, msgType?: string): void {
    this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + 1;
    this.note('warn', { peer: printable(from), reason, msgType: msgType?.slice(0, 64), detail: detail?.slice(0, 300) }, `dropped a frame from the ${this.options.name}`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.signalClosed();
    if (!this.socket.closed) this.socket.close();
    await this.loop?.catch(() => undefined);
  }

  private async receiveLoop(): Promise<void> {
    while (!this.closed && !this.socket.closed) {
      let parts: Buffer[];
      try {
        parts = await this.socket.receive();
      } catch (err) {
        if (this.closed || this.socket.closed) return;
        this.counters.receiveErrors += 1;
        this.note('error', { err: String(err) }, `receiving from the ${this.options.name} failed`);
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const pending = this.dispatch(parts);
      if (pending && this.options.serial) await Promise.race([pending, this.closedSignal]);
    }
  }

  /** Never throws; returns the handler's promise (already guarded) when it is async. */
  private dispatch(parts: Buffer[]): Promise<void> | undefined {
    this.counters.received += 1;
    const from = this.router ? (parts[0]?.toString('latin1') ?? '') : '';
    const frames = this.router ? parts.slice(1) : parts;
    if (frames.length !== 1) {
      this.drop('malformed', from, `${frames.length} frames where one was expected`);
      return undefined;
    }
    let message;
    try {
      message = decodeMessage(frames[0], this.options.maxFrameBytes ?? MAX_FRAME_BYTES);
    } catch (err) {
      const reason = err instanceof PlatformError ? ((err.data as { reason?: string } | undefined)?.reason ?? 'bad_envelope') : 'bad_envelope';
      this.drop(reason, from, err instanceof Error ? err.message : String(err));
      return undefined;
    }
    if (isReply(message)) {
      const onReply = this.options.onReply;
      if (!onReply) {
        this.drop('unexpected_reply', from);
        return undefined;
      }
      this.counters.handled += 1;
      return this.run(() => onReply(message, from), 'reply', from);
    }
    const { msgType, id } = message;
    if (!Object.prototype.hasOwnProperty.call(this.options.inbound, msgType)) {
      this.drop('unknown_type', from, undefined, msgType);
      if (this.options.replies) this.reply(from, id, { ok: false, error: new PlatformError('PROTOCOL_ERROR', `unknown operation ${msgType.slice(0, 64)}`).toJSON() });
      return undefined;
    }
    const parsed = this.options.inbound[msgType]!.safeParse(message.content);
    if (!parsed.success) {
      const issues = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.')} ${i.message}`);
      this.drop('bad_content', from, issues.join('; '), msgType);
      if (this.options.replies) this.reply(from, id, { ok: false, error: new PlatformError('BAD_REQUEST', `${msgType}: ${issues.join('; ')}`).toJSON() });
      return undefined;
    }
    this.counters.handled += 1;
    const handler = this.options.handlers[msgType as keyof In]!;
    const received: Received = { id, msgType, from, ...(message.deadline !== undefined ? { deadline: message.deadline } : {}) };
    return this.run(() => handler(parsed.data, from, received), msgType, from, id);
  }

  private run(handler: () => unknown, msgType: string, from: Peer, id?: string): Promise<void> | undefined {
    const answer = this.options.replies && id !== undefined;
    let result: unknown;
    try {
      result = handler();
    } catch (err) {
      this.handlerFailed(err, msgType, from, answer ? id : undefined);
      return undefined;
    }
    if (result && typeof (result as Promise<unknown>).then === 'function') {
      return (result as Promise<unknown>).then(
        (data) => {
          if (answer) this.reply(from, id, { ok: true, data: data ?? null });
        },
        (err: unknown) => this.handlerFailed(err, msgType, from, answer ? id : undefined),
      );
    }
    if (answer) this.reply(from, id, { ok: true, data: result ?? null });
    return undefined;
  }

  /**
   * A handler that failed. On a replying channel, an error the platform names (a PlatformError
   * other than INTERNAL) is the answer, not a fault of the channel.
   */
  private handlerFailed(err: unknown, msgType: string, from: Peer, replyTo?: string): void {
    const error = asPlatformError(err);
    if (replyTo !== undefined) {
      this.reply(from, replyTo, { ok: false, error: error.toJSON() });
      if (error.code !== 'INTERNAL') return;
    }
    this.counters.dropped.handler_error = (this.counters.dropped.handler_error ?? 0) + 1;
    this.note('error', { peer: printable(from), msgType, err: err instanceof Error ? (err.stack ?? err.message) : String(err) }, `handling a message from the ${this.options.name} failed`);
  }

  private guard(fn: () => void, what: string): void {
    try {
      fn();
    } catch (err) {
      this.note('error', { err: String(err) }, `${what} failed`);
    }
  }

  /** Logs at most `logPerSecond` lines a second; what was held back is counted in the next line. */
  private note(level: 'warn' | 'error', fields: Record<string, unknown>, line: string): void {
    const now = Date.now();
    const window = this.logWindow;
    if (now - window.start >= 1000) {
      window.start = now;
      window.lines = 0;
    }
    if (window.lines >= (this.options.logPerSecond ?? 5)) {
      window.suppressed += 1;
      return;
    }
    window.lines += 1;
    const suppressed = window.suppressed;
    window.suppressed = 0;
    this.options.log[level](suppressed > 0 ? { ...fields, suppressed } : fields, line);
  }
}

/** Routing ids are bytes: shown as text only when they are printable. */
function printable(peer: Peer): string {
  return /^[\x20-\x7e]{0,128}$/.test(peer) ? peer : `0x${Buffer.from(peer, 'latin1').toString('hex').slice(0, 64)}`;
}
