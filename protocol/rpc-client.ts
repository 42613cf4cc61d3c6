import { randomUUID } from 'node:crypto';
import * as zmq from 'zeromq';
import { clientCurveOptions } from './curve';
import pino from 'pino';
import { Channel, type ChannelStats } from './channel';
import { decodeMessage, encodeRequest, type Reply } from './envelope';
import { PlatformError, type ErrorCode } from './errors';
import type { Logger } from './log';

/** A request's deadline at the server comes this long before the sender's own timeout. */
const DEADLINE_MARGIN_MS = 500;

interface Pending {
  resolve: (data: unknown) => void;
  reject: (err: PlatformError) => void;
  timer: NodeJS.Timeout;
  msgType: string;
}

export interface RpcClientOptions {
  /** How long a request waits for its reply before it fails. */
  timeoutMs?: number;
  /** Bound on requests in flight; past it a request fails at once. */
  maxPending?: number;
  /** The error code a timeout becomes (for db-service, DB_UNAVAILABLE). */
  timeoutCode?: ErrorCode;
  log?: Logger;
}

/**
 * Request/reply over a DEALER socket, on the platform's one channel class: many requests in flight,
 * replies matched by id.
 * Each pending request has a timeout; the map is bounded; close() rejects everything waiting.
 */
export class RpcClient {
  private readonly socket = new zmq.Dealer({ linger: 0, receiveHighWaterMark: 0, sendHighWaterMark: 0, ...clientCurveOptions(process.env, { proveKey: true }) });
  private readonly pending = new Map<string, Pending>();
  private readonly timeoutMs: number;
  private readonly maxPending: number;
  private readonly timeoutCode: ErrorCode;
  private readonly channel: Channel<Record<string, never>, Record<string, never>>;
  private closed = false;

  constructor(
    private readonly endpoint: string,
    private readonly options: RpcClientOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.maxPending = options.maxPending ?? 50_000;
    this.timeoutCode = options.timeoutCode ?? 'REQUEST_TIMEOUT';
    this.channel = new Channel({
      name: endpoint,
      socket: this.socket,
      inbound: {},
      handlers: {},
      log: options.log ?? pino({ level: 'silent' }),
      onReply: (reply) => this.onReply(reply),
      onSendFailed: (err, _to, frame) => this.onSendFailed(err, frame),
    });
  }

  start(): this {
    this.socket.connect(this.endpoint);
    this.channel.start();
    return this;
  }

  request<T>(msgType: string, content: unknown, timeoutMs = this.timeoutMs): Promise<T> {
    if (this.closed) return Promise.reject(new PlatformError(this.timeoutCode, `client for ${this.endpoint} is closed`));
    if (this.pending.size >= this.maxPending) {
      return Promise.reject(new PlatformError(this.timeoutCode, `too many requests waiting on ${this.endpoint}`));
    }
    const id = randomUUID();
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new PlatformError(this.timeoutCode, `${msgType} to ${this.endpoint} got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (data: unknown) => void, reject, timer, msgType });
      // The server applies nothing that reaches it after we stop waiting (a margin covers the way back).
      const frame = encodeRequest(id, msgType, content, Date.now() + Math.max(timeoutMs - DEADLINE_MARGIN_MS, timeoutMs / 2));
      if (!this.channel.sendFrame(frame)) this.fail(id, 'the send queue is full or closed');
    });
  }

  channelStats(): ChannelStats {
    return this.channel.stats();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const id of [...this.pending.keys()]) this.fail(id, 'the client closed');
    void this.channel.close();
  }

  private fail(id: string, why: string): void {
    const waiting = this.pending.get(id);
    if (!waiting) return;
    this.pending.delete(id);
    clearTimeout(waiting.timer);
    waiting.reject(new PlatformError(this.timeoutCode, `${waiting.msgType} to ${this.endpoint}: ${why}`));
  }

  /** A reply: the request waiting for it settles; a late one (its request timed out) is ignored. */
  private onReply(reply: Reply): void {
    const waiting = this.pending.get(reply.id);
    if (!waiting) return;
    this.pending.delete(reply.id);
    clearTimeout(waiting.timer);
    if (reply.ok) waiting.resolve(reply.data);
    else waiting.reject(PlatformError.fromJSON(reply.error));
  }

  private onSendFailed(err: unknown, frame: Buffer): void {
    try {
      const message = decodeMessage(frame);
      this.fail(message.id, `sending failed: ${String(err)}`);
    } catch {
      /* not a frame of ours */
    }
  }
}
