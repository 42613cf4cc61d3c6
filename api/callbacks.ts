import { isIP } from 'node:net';
import { PlatformError } from '../protocol/errors';
import type { Logger } from '../protocol/log';
import type { CallbackAttempt, CallbackRecord } from '../protocol/schemas';
import type { Call } from '../protocol/types';
import { LOOPBACK_NAMES, hostPolicy, type HostPolicy } from './request-guards';

/**
 * Callbacks (X-Callback-Url, or callbackUrl in an invoke's body): when the call ends, its final CALL is
 * POSTed to the URL, retried with exponential backoff and full jitter until a 2xx or for a bounded
 * time, each attempt recorded. Destinations are the operator's to allow (FAAS_CALLBACK_ALLOW): by
 * default only loopback, so that a caller cannot make the platform reach into the network it sits in.
 */

/** Host patterns a callback may go to: exact names or addresses, `*.example.com`, or `*`. Loopback always. */
export type CallbackPolicy = HostPolicy;

/** FAAS_CALLBACK_ALLOW, read as FAAS_ALLOWED_HOSTS is. */
export function callbackPolicy(list: string): CallbackPolicy {
  return hostPolicy(list, '');
}

function isLoopback(host: string): boolean {
  if (LOOPBACK_NAMES.has(host) || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/** The URL as it will be called, or a 400 CALLBACK_NOT_ALLOWED saying why not. */
export function checkCallbackUrl(raw: string, policy: CallbackPolicy, selfPort?: number): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new PlatformError('CALLBACK_NOT_ALLOWED', `callback URL ${JSON.stringify(raw.slice(0, 100))} is not a URL`);
  }
  if (raw.length > 2048) throw new PlatformError('CALLBACK_NOT_ALLOWED', 'a callback URL is at most 2048 characters');
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new PlatformError('CALLBACK_NOT_ALLOWED', `a callback URL is http or https, not ${url.protocol.slice(0, 20)}`);
  if (url.username || url.password) throw new PlatformError('CALLBACK_NOT_ALLOWED', 'a callback URL may not carry credentials');
  const host = url.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  const allowed = policy.any || isLoopback(host) || policy.names.has(host) || policy.suffixes.some((s) => host.endsWith(s) && host.length > s.length);
  if (!allowed) throw new PlatformError('CALLBACK_NOT_ALLOWED', `callbacks to ${JSON.stringify(host.slice(0, 100))} are not allowed: the operator lists allowed hosts in FAAS_CALLBACK_ALLOW`);
  // The api itself: each call's end would make the next call, for ever.
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  if (selfPort !== undefined && port === selfPort && (isLoopback(host) || host === '0.0.0.0' || host === '::')) {
    throw new PlatformError('CALLBACK_NOT_ALLOWED', 'a callback may not call the platform itself');
  }
  return url.toString();
}

export interface CallbackSenderOptions {
  log: Logger;
  /** Stores the record after each attempt. */
  save: (record: CallbackRecord) => Promise<void>;
  /** How long deliveries of one call are tried (FAAS_CALLBACK_MAX_MS). */
  maxMs: number;
  /** One attempt's bound. */
  attemptTimeoutMs?: number;
  /** The first wait; each next one doubles, up to maxDelayMs, and a random part of it is taken (full jitter). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  now?: () => number;
  random?: () => number;
}

/** Attempts kept in a record: the first, and the latest after it; `tries` counts them all. */
export const MAX_KEPT_ATTEMPTS = 100;

/** What a record says its call's deliveries have come to. */
export function deliveryDone(record: CallbackRecord): boolean {
  return record.state !== 'pending';
}

/** The wait before attempt `n` (1-based: the second attempt waits after the first's failure). */
export function backoffMs(attempt: number, base: number, max: number, random: () => number): number {
  const ceiling = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling * random());
}

/** Deliveries in flight, one per call; a call already being delivered is not started twice. */
export class CallbackSender {
  private readonly inFlight = new Set<number>();
  /** Calls whose delivery ended here lately: a sweep that read their record before it ended does not start them again. */
  private readonly finished = new Set<number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly options: CallbackSenderOptions) {}

  get pending(): number {
    return this.inFlight.size;
  }

  /** Delivers `call` (final) as `record` says; resumes a record with attempts already made. */
  deliver(call: Call, record: CallbackRecord): void {
    if (this.closed || deliveryDone(record) || this.inFlight.has(call.callNum) || this.finished.has(call.callNum)) return;
    this.inFlight.add(call.callNum);
    void this.run(call, { ...record, attempts: [...record.attempts] }).finally(() => this.inFlight.delete(call.callNum));
  }

  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private async run(call: Call, record: CallbackRecord): Promise<void> {
    const { log, maxMs } = this.options;
    const now = this.options.now ?? Date.now;
    const random = this.options.random ?? Math.random;
    const started = record.attempts.length > 0 ? Date.parse(record.attempts[0]!.at) : now();
    const body = JSON.stringify(call);
    while (!this.closed) {
      const tries = (record.tries ?? record.attempts.length) + 1;
      const attempt = await this.attempt(record.url, body, call.callNum, tries);
      record.attempts.push(attempt);
      record.tries = tries;
      if (record.attempts.length > MAX_KEPT_ATTEMPTS) record.attempts.splice(1, record.attempts.length - MAX_KEPT_ATTEMPTS);
      if (attempt.status !== undefined && attempt.status >= 200 && attempt.status < 300) record.state = 'delivered';
      const wait = backoffMs(tries, this.options.baseDelayMs ?? 1000, this.options.maxDelayMs ?? 60_000, random);
      if (record.state === 'pending' && now() + wait - started > maxMs) record.state = 'failed';
      await this.options.save(record).catch((err: unknown) => log.warn({ callNum: call.callNum, err: err instanceof Error ? err.message : String(err) }, 'a callback attempt could not be recorded'));
      if (record.state !== 'pending') {
        this.finished.add(call.callNum);
        if (this.finished.size > 10_000) this.finished.delete(this.finished.values().next().value as number);
        if (record.state === 'failed') log.warn({ callNum: call.callNum, attempts: record.attempts.length }, 'a callback was given up');
        return;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          resolve();
        }, wait);
        timer.unref();
        this.timers.add(timer);
      });
    }
  }

  private async attempt(url: string, body: string, callNum: number, n: number): Promise<CallbackAttempt> {
    const at = new Date().toISOString();
    const began = Date.now();
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-call-number': String(callNum), 'x-callback-attempt': String(n), 'user-agent': 'faas-platform-callback' },
        body,
        // A callback does not follow redirects: the allowed host is the one that answers.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.attemptTimeoutMs ?? 10_000),
      });
      await response.body?.cancel().catch(() => undefined);
      return { at, status: response.status, ms: Date.now() - began };
    } catch (err) {
      // fetch says "fetch failed"; why is in its cause (ECONNREFUSED, ENOTFOUND, a timeout...).
      const { cause, name, message } = err as { cause?: { code?: string; message?: string }; name?: string; message?: string };
      const why = cause?.code ?? cause?.message ?? (name === 'TimeoutError' ? 'timeout' : message) ?? 'failed';
      return { at, error: String(why).slice(0, 200), ms: Date.now() - began };
    }
  }
}
