import { randomUUID } from 'node:crypto';
import * as zmq from 'zeromq';
import { clientCurveOptions } from './curve';
import { decodeMessage, encodeRequest, isReply } from './envelope';
import { PlatformError, type ErrorCode } from './errors';
import type { Logger } from './log';

/** A request's deadline at the server comes this long before the sender's own timeout. */
const DEADLINE_MARGIN_MS = 500;

interface Pending {
  resolve: (data: unknown) => void;
  reject: (err: PlatformError) => void;
  timer: NodeJS.Timeout;
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
 * Request/reply over a DEALER socket: many requests in flight, replies matched by id.
 * Each pending request has a timeout; the map is bounded; close() rejects everything waiting.
 */
export class RpcClient {
  private readonly socket = new zmq.Dealer({ linger: 0, receiveHighWaterMark: 0, sendHighWaterMark: 0, ...clientCurveOptions(process.env, { proveKey: true }) });
  private readonly pending = new Map<string, Pending>();
  private readonly timeoutMs: number;
  private readonly maxPending: number;
  private readonly timeoutCode: ErrorCode;
  private sendChain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly endpoint: string,
    private readonly options: RpcClientOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.maxPending = options.maxPending ?? 50_000;
    this.timeoutCode = options.timeoutCode ?? 'REQUEST_TIMEOUT';
  }

  start(): this {
    this.socket.connect(this.endpoint);
    void this.receiveLoop();
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
      this.pending.set(id, { resolve: resolve as (data: unknown) => void, reject, timer });
      // The server applies nothing that reaches it after we stop waiting (a margin covers the way back).
      const frame = encodeRequest(id, msgType, content, Date.now() + Math.max(timeoutMs - DEADLINE_MARGIN_MS, timeoutMs / 2));
      // One pending send per socket: chain them.
      this.sendChain = this.sendChain.then(
        () => this.socket.send(frame),
      ).catch((err: unknown) => {
        const waiting = this.pending.get(id);
        if (!waiting) return;
        this.pending.delete(id);
        clearTimeout(waiting.timer);
        waiting.reject(new PlatformError(this.timeoutCode, `sending ${msgType} failed: ${String(err)}`));
      });
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [id, waiting] of this.pending) {
      clearTimeout(waiting.timer);
      waiting.reject(new PlatformError(this.timeoutCode, `client for ${this.endpoint} closed`));
      this.pending.delete(id);
    }
    this.socket.close();
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const [frame] of this.socket) {
        let message;
        try {
          message = decodeMessage(frame);
        } catch (err) {
          this.options.log?.warn({ err: String(err) }, 'dropped a malformed reply');
          continue;
        }
        if (!isReply(message)) continue;
        const waiting = this.pending.get(message.id);
        if (!waiting) continue; // a late reply to a request that already timed out
        this.pending.delete(message.id);
        clearTimeout(waiting.timer);
        if (message.ok) waiting.resolve(message.data);
        else waiting.reject(PlatformError.fromJSON(message.error));
      }
    } catch (err) {
      if (!this.closed) this.options.log?.error({ err: String(err) }, 'rpc receive loop ended');
    }
  }
}
