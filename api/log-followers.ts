import type { ServerResponse } from 'node:http';
import { PlatformError } from '../protocol/errors';
import { isFinal, type Call } from '../protocol/types';
import type { LogPiece } from '../protocol/worker-messages';
import { openEventStream, writeEvent } from './sse';

/** What the api keeps of a followed call's output, per stream, for followers that come later. */
const MAX_KEPT_CHARS = 2 * 1024 * 1024;

interface Follower {
  res: ServerResponse;
  /** Characters of each stream this follower was sent. */
  sent: { stdout: number; stderr: number };
}

interface Followed {
  stdout: string;
  stderr: string;
  followers: Set<Follower>;
}

export interface LogFollowersOptions {
  maxFollowers: number;
  /** Asks the call's worker to send (or to stop sending) its output as it is written. */
  follow: (callNum: number, on: boolean) => void;
  keepAliveMs?: number;
}

/**
 * The streams of GET /v1/calls/:n/logs?follow=true (docs/EVENTS.md). While a call has followers its
 * worker sends what it writes, piece by piece; the pieces are kept here so that a follower who comes
 * later gets them first. When the call ends, each follower gets what its stored logs hold beyond what
 * it was sent (what the pieces missed: the last moments of the call), then `end`.
 */
export class LogFollowers {
  private readonly calls = new Map<number, Followed>();
  private count = 0;
  private keepAlive?: NodeJS.Timeout;

  constructor(private readonly options: LogFollowersOptions) {}

  /** Streams following a running call. */
  get followerCount(): number {
    return this.count;
  }

  /**
   * Streams `call`'s logs on `res`. The caller reads the call again after this (see `ended`): a call
   * that ended between its first read and this one is then ended here too.
   */
  follow(res: ServerResponse, call: Call): void {
    if (!isFinal(call.status) && this.count >= this.options.maxFollowers) {
      throw new PlatformError('TOO_MANY_SUBSCRIBERS', `at most ${this.options.maxFollowers} calls' logs are followed at once`, { retryAfterSeconds: 5 });
    }
    openEventStream(res);
    const follower: Follower = { res, sent: { stdout: 0, stderr: 0 } };
    if (isFinal(call.status)) return this.finish(follower, call);
    let followed = this.calls.get(call.callNum);
    if (!followed) {
      followed = { stdout: '', stderr: '', followers: new Set() };
      this.calls.set(call.callNum, followed);
      this.options.follow(call.callNum, true);
    }
    followed.followers.add(follower);
    this.count += 1;
    this.send(follower, followed);
    res.on('close', () => this.leave(call.callNum, follower));
    this.keepAlive ??= setInterval(() => this.ping(), this.options.keepAliveMs ?? 15_000).unref();
  }

  /** A piece of a followed call's output, from its worker. */
  piece(piece: LogPiece): void {
    const followed = this.calls.get(piece.callNum);
    if (!followed) return;
    if (piece.stdout && followed.stdout.length < MAX_KEPT_CHARS) followed.stdout += piece.stdout;
    if (piece.stderr && followed.stderr.length < MAX_KEPT_CHARS) followed.stderr += piece.stderr;
    for (const follower of followed.followers) this.send(follower, followed);
  }

  /** The call ended: each follower gets the rest of its logs and `end`. */
  ended(call: Call): void {
    const followed = this.calls.get(call.callNum);
    if (!followed) return;
    this.calls.delete(call.callNum);
    for (const follower of followed.followers) {
      this.count -= 1;
      this.finish(follower, call);
    }
    followed.followers.clear();
    this.options.follow(call.callNum, false);
  }

  close(): void {
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.keepAlive = undefined;
    for (const followed of this.calls.values()) for (const follower of followed.followers) follower.res.end();
    this.calls.clear();
    this.count = 0;
  }

  private send(follower: Follower, texts: { stdout: string; stderr: string }): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const text = texts[stream];
      if (text.length <= follower.sent[stream]) continue;
      this.write(follower, `event: ${stream}\ndata: ${JSON.stringify({ text: text.slice(follower.sent[stream]) })}\n\n`);
      follower.sent[stream] = text.length;
    }
  }

  private finish(follower: Follower, call: Call): void {
    this.send(follower, { stdout: call.stdout ?? '', stderr: call.stderr ?? '' });
    const end = { status: call.status, ...(call.reason ? { reason: call.reason } : {}), ...(call.error ? { error: call.error.slice(0, 4096) } : {}), truncated: call.truncated === true };
    this.write(follower, `event: end\ndata: ${JSON.stringify(end)}\n\n`);
    follower.res.end();
  }

  private leave(callNum: number, follower: Follower): void {
    const followed = this.calls.get(callNum);
    if (!followed?.followers.delete(follower)) return;
    this.count -= 1;
    if (followed.followers.size > 0) return;
    this.calls.delete(callNum);
    this.options.follow(callNum, false);
  }

  private write(follower: Follower, text: string): void {
    writeEvent(follower.res, text);
  }

  private ping(): void {
    for (const followed of this.calls.values()) for (const follower of followed.followers) this.write(follower, ': keep-alive\n\n');
    if (this.calls.size === 0 && this.keepAlive) {
      clearInterval(this.keepAlive);
      this.keepAlive = undefined;
    }
  }
}
