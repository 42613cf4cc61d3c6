import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { PlatformError } from '../protocol/errors';
import { MAX_PENDING_BYTES, openEventStream, writeEvent } from './sse';

/** The event types of GET /v1/events (docs/EVENTS.md), by family. */
export const EVENT_TYPES = [
  'call.accepted',
  'call.started',
  'call.ended',
  'call.deadLettered',
  'function.registered',
  'function.removed',
  'runtime.registered',
  'runtime.removed',
  'worker.joined',
  'worker.left',
  'worker.draining',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];
const FAMILIES = new Set(EVENT_TYPES.map((t) => t.slice(0, t.indexOf('.'))));

/** What a subscriber asked for: types (none: all) and one function (none: all). */
export interface EventFilter {
  types?: ReadonlySet<EventType>;
  function?: string;
}

interface StoredEvent {
  seq: number;
  type: EventType;
  /** The function the event is about, for the `function` filter. */
  funcName?: string;
  /** The whole SSE record, made once for every subscriber. */
  text: string;
}

interface Subscriber {
  res: ServerResponse;
  filter: EventFilter;
}

export interface EventHubOptions {
  /** Events kept for resuming with Last-Event-ID. */
  bufferSize: number;
  maxSubscribers: number;
  /** A subscriber with more than this waiting in its connection is cut. */
  maxPendingBytes?: number;
  keepAliveMs?: number;
}

/** Parses `?types=` (event types or families, comma-separated); unknown names are a 400. */
export function parseTypes(raw: unknown): ReadonlySet<EventType> | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (typeof raw !== 'string' || raw.length > 1000) throw new PlatformError('BAD_REQUEST', 'types: a comma-separated list of event types or families');
  const types = new Set<EventType>();
  for (const name of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (FAMILIES.has(name)) {
      for (const t of EVENT_TYPES) if (t.startsWith(`${name}.`)) types.add(t);
    } else if ((EVENT_TYPES as readonly string[]).includes(name)) types.add(name as EventType);
    else throw new PlatformError('BAD_REQUEST', `types: unknown event type "${name.slice(0, 64)}" (one of ${[...FAMILIES].join(', ')} or ${EVENT_TYPES.join(', ')})`);
  }
  return types;
}

/**
 * The api's live events as Server-Sent Events. Publishing formats an event once and writes it to
 * every subscriber that wants it; nothing waits for a subscriber: one that does not read is cut
 * (it may reconnect and resume). The last events are kept in a ring for Last-Event-ID, under ids
 * `<stream>-<seq>` whose stream part changes with each api start, so that an id of before a
 * restart is recognised as such rather than misread.
 */
export class EventHub {
  readonly streamId = randomBytes(4).toString('hex');
  private seq = 0;
  private readonly ring: (StoredEvent | undefined)[];
  private readonly subscribers = new Set<Subscriber>();
  private readonly maxPendingBytes: number;
  private keepAlive?: NodeJS.Timeout;
  /** Subscribers written to in this turn: corked, so that the turn's events leave in one write each. */
  private readonly corked = new Set<ServerResponse>();
  /** Called when the number of subscribers wanting call.started goes from 0 to 1 or back. */
  onWantsStarts?: (wanted: boolean) => void;
  private wantStarts = 0;

  constructor(private readonly options: EventHubOptions) {
    this.ring = new Array(Math.max(1, options.bufferSize));
    this.maxPendingBytes = options.maxPendingBytes ?? MAX_PENDING_BYTES;
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  get startsWanted(): boolean {
    return this.wantStarts > 0;
  }

  publish(type: EventType, data: Record<string, unknown>, funcName?: string): void {
    const seq = ++this.seq;
    const text = `id: ${this.streamId}-${seq}\nevent: ${type}\ndata: ${JSON.stringify({ ...data, at: new Date().toISOString() })}\n\n`;
    const event: StoredEvent = { seq, type, text, ...(funcName ? { funcName } : {}) };
    this.ring[seq % this.ring.length] = event;
    for (const s of this.subscribers) if (matches(s.filter, event)) this.write(s, event.text);
  }

  /**
   * Opens a stream on `res`: the kept events after `lastEventId` first (or a `reset` event when they
   * are no longer kept), then the live ones until the client goes.
   */
  subscribe(res: ServerResponse, filter: EventFilter, lastEventId?: string): void {
    if (this.subscribers.size >= this.options.maxSubscribers) {
      throw new PlatformError('TOO_MANY_SUBSCRIBERS', `at most ${this.options.maxSubscribers} event streams are open at once`, { retryAfterSeconds: 5 });
    }
    openEventStream(res);
    const subscriber: Subscriber = { res, filter };
    this.subscribers.add(subscriber);
    this.countStarts(filter, 1);
    res.on('close', () => {
      if (this.subscribers.delete(subscriber)) this.countStarts(filter, -1);
    });
    res.write(`retry: 2000\n\n`);
    if (lastEventId !== undefined) this.replay(subscriber, lastEventId);
    this.keepAlive ??= setInterval(() => this.ping(), this.options.keepAliveMs ?? 15_000).unref();
  }

  close(): void {
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.keepAlive = undefined;
    for (const s of this.subscribers) s.res.end();
    this.subscribers.clear();
  }

  private replay(subscriber: Subscriber, lastEventId: string): void {
    const match = /^([0-9a-f]+)-(\d{1,15})$/.exec(lastEventId.trim());
    const oldest = Math.max(1, this.seq - this.ring.length + 1);
    let reason: string | undefined;
    if (!match) reason = 'the Last-Event-ID is not one of this api';
    else if (match[1] !== this.streamId) reason = 'the api restarted since that event';
    else {
      const after = Number(match[2]);
      if (after > this.seq) reason = 'the Last-Event-ID is ahead of this api';
      else if (after + 1 < oldest) reason = 'the events after that one are no longer kept';
      else {
        for (let seq = after + 1; seq <= this.seq; seq++) {
          const event = this.ring[seq % this.ring.length];
          if (event && event.seq === seq && matches(subscriber.filter, event)) this.write(subscriber, event.text);
        }
        return;
      }
    }
    this.write(subscriber, `event: reset\ndata: ${JSON.stringify({ reason })}\n\n`);
  }

  private write(subscriber: Subscriber, text: string): void {
    const { res } = subscriber;
    if (!res.destroyed && !this.corked.has(res)) {
      res.cork();
      this.corked.add(res);
      if (this.corked.size === 1) setImmediate(() => this.uncork());
    }
    writeEvent(res, text, this.maxPendingBytes);
  }

  private uncork(): void {
    for (const res of this.corked) res.uncork();
    this.corked.clear();
  }

  private ping(): void {
    for (const s of this.subscribers) this.write(s, ': keep-alive\n\n');
    if (this.subscribers.size === 0 && this.keepAlive) {
      clearInterval(this.keepAlive);
      this.keepAlive = undefined;
    }
  }

  private countStarts(filter: EventFilter, delta: 1 | -1): void {
    if (filter.types && !filter.types.has('call.started')) return;
    const before = this.wantStarts > 0;
    this.wantStarts += delta;
    if (before !== this.wantStarts > 0) this.onWantsStarts?.(this.wantStarts > 0);
  }
}

function matches(filter: EventFilter, event: StoredEvent): boolean {
  if (filter.types && !filter.types.has(event.type)) return false;
  if (filter.function !== undefined && event.funcName !== filter.function) return false;
  return true;
}
