import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { EventHub, parseTypes, type EventFilter } from '../../api/event-hub';
import { PlatformError } from '../../protocol/errors';
import { readEvents, type StreamEvent } from '../../cli/sse';
import { waitFor } from '../helpers/until';

/** The hub behind a bare node:http server on loopback: each request subscribes with the filter and id it names. */
async function serve(hub: EventHub): Promise<{ url: string; close: () => Promise<void>; refused: PlatformError[] }> {
  const refused: PlatformError[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const types = parseTypes(url.searchParams.get('types') ?? undefined);
    const filter: EventFilter = { ...(types ? { types } : {}), ...(url.searchParams.get('function') ? { function: url.searchParams.get('function')! } : {}) };
    try {
      hub.subscribe(res, filter, req.headers['last-event-id'] as string | undefined);
    } catch (err) {
      refused.push(err as PlatformError);
      res.writeHead(503).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    refused,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/** Reads `count` events from a new stream, then leaves. */
async function take(url: string, count: number, headers: Record<string, string> = {}, onOpen?: () => void): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  for await (const event of readEvents(url, { headers, onOpen })) {
    events.push(event);
    if (events.length === count) break;
  }
  return events;
}

describe('EventHub', () => {
  let hub: EventHub;
  let server: Awaited<ReturnType<typeof serve>>;

  afterEach(async () => {
    hub.close();
    await server.close();
  });

  test('a subscriber gets the events it asked for, in order, each with an id of this stream', async () => {
    hub = new EventHub({ bufferSize: 100, maxSubscribers: 4 });
    server = await serve(hub);
    const got = take(`${server.url}/?types=call`, 3, {}, () => undefined);
    await waitFor(() => hub.subscriberCount === 1, 'the subscriber');
    hub.publish('function.registered', { functionName: 'f' }, 'f');
    hub.publish('call.accepted', { callNum: 1, funcName: 'f' }, 'f');
    hub.publish('worker.joined', { nodeId: 'n' });
    hub.publish('call.started', { callNum: 1, funcName: 'f' }, 'f');
    hub.publish('call.ended', { callNum: 1, funcName: 'f', status: 'DONE' }, 'f');
    const events = await got;
    expect(events.map((e) => e.event)).toEqual(['call.accepted', 'call.started', 'call.ended']);
    expect(events.map((e) => e.id)).toEqual([`${hub.streamId}-2`, `${hub.streamId}-4`, `${hub.streamId}-5`]);
    expect(JSON.parse(events[2]!.data)).toMatchObject({ callNum: 1, status: 'DONE' });
    expect(Date.parse(JSON.parse(events[2]!.data).at)).toBeGreaterThan(0);
    await waitFor(() => hub.subscriberCount === 0, 'the subscriber gone');
  });

  test('the function filter keeps the events about that function only', async () => {
    hub = new EventHub({ bufferSize: 100, maxSubscribers: 4 });
    server = await serve(hub);
    const got = take(`${server.url}/?function=g`, 2);
    await waitFor(() => hub.subscriberCount === 1, 'the subscriber');
    hub.publish('call.accepted', { callNum: 1, funcName: 'f' }, 'f');
    hub.publish('call.accepted', { callNum: 2, funcName: 'g' }, 'g');
    hub.publish('worker.left', { nodeId: 'n' });
    hub.publish('function.removed', { functionName: 'g' }, 'g');
    expect((await got).map((e) => [e.event, JSON.parse(e.data).callNum ?? JSON.parse(e.data).functionName])).toEqual([
      ['call.accepted', 2],
      ['function.removed', 'g'],
    ]);
  });

  test('Last-Event-ID replays what is kept after it; an id too old, of another stream or malformed starts with reset', async () => {
    hub = new EventHub({ bufferSize: 5, maxSubscribers: 4 });
    server = await serve(hub);
    for (let i = 1; i <= 8; i++) hub.publish('call.accepted', { callNum: i, funcName: 'f' }, 'f');
    // Kept: 4..8. After 5: 6, 7, 8.
    const replayed = await take(server.url, 3, { 'last-event-id': `${hub.streamId}-5` });
    expect(replayed.map((e) => JSON.parse(e.data).callNum)).toEqual([6, 7, 8]);
    // After 3: 4 is the oldest kept, so nothing is missing.
    expect((await take(server.url, 5, { 'last-event-id': `${hub.streamId}-3` })).map((e) => JSON.parse(e.data).callNum)).toEqual([4, 5, 6, 7, 8]);
    for (const [id, reason] of [
      [`${hub.streamId}-1`, /no longer kept/],
      ['0badbeef-3', /restarted/],
      ['junk', /not one of this api/],
      [`${hub.streamId}-99`, /ahead/],
    ] as const) {
      const [reset] = await take(server.url, 1, { 'last-event-id': id });
      expect(reset!.event).toBe('reset');
      expect(JSON.parse(reset!.data).reason).toMatch(reason);
    }
  });

  test('past maxSubscribers a subscription is refused with TOO_MANY_SUBSCRIBERS', async () => {
    hub = new EventHub({ bufferSize: 10, maxSubscribers: 2 });
    server = await serve(hub);
    const controllers = [new AbortController(), new AbortController()];
    const streams = controllers.map((c) => readEvents(server.url, { signal: c.signal })[Symbol.asyncIterator]());
    const pending = streams.map((s) => s.next().catch(() => undefined));
    await waitFor(() => hub.subscriberCount === 2, 'two subscribers');
    const third = await fetch(server.url);
    expect(third.status).toBe(503);
    expect(server.refused[0]?.code).toBe('TOO_MANY_SUBSCRIBERS');
    expect((server.refused[0]?.data as { retryAfterSeconds?: number }).retryAfterSeconds).toBeGreaterThan(0);
    controllers.forEach((c) => c.abort());
    await Promise.all(pending);
    await waitFor(() => hub.subscriberCount === 0, 'the subscribers gone');
  });

  test('a subscriber that does not read is cut once too much waits for it; publishing never waits', async () => {
    hub = new EventHub({ bufferSize: 10, maxSubscribers: 4, maxPendingBytes: 64 * 1024 });
    server = await serve(hub);
    const request = http.get(server.url);
    const response = await new Promise<http.IncomingMessage>((r) => request.once('response', r));
    response.pause();
    const closed = new Promise<void>((r) => response.once('close', r));
    request.on('error', () => undefined);
    response.on('error', () => undefined);
    await waitFor(() => hub.subscriberCount === 1, 'the subscriber');
    const big = 'x'.repeat(16 * 1024);
    // Loopback socket buffers take a few megabytes before the connection itself holds writes back.
    for (let i = 0; i < 2000 && hub.subscriberCount > 0; i++) {
      hub.publish('call.ended', { callNum: i, funcName: 'f', error: big }, 'f');
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => hub.subscriberCount === 0, 'the slow subscriber cut');
    await closed;
  });

  test('types: families and names; unknown ones are refused', () => {
    expect([...parseTypes('worker')!]).toEqual(['worker.joined', 'worker.left', 'worker.draining']);
    expect([...parseTypes('call.ended, runtime')!]).toEqual(['call.ended', 'runtime.registered', 'runtime.removed']);
    expect(parseTypes(undefined)).toBeUndefined();
    expect(parseTypes('')).toBeUndefined();
    expect(() => parseTypes('calls')).toThrow(/unknown event type "calls"/);
    expect(() => parseTypes(['call'])).toThrow(PlatformError);
  });

  test('whether call starts are wanted follows the subscribers that would get them', async () => {
    hub = new EventHub({ bufferSize: 10, maxSubscribers: 4 });
    const changes: boolean[] = [];
    hub.onWantsStarts = (on) => changes.push(on);
    server = await serve(hub);
    const workerOnly = new AbortController();
    const a = readEvents(`${server.url}/?types=worker`, { signal: workerOnly.signal })[Symbol.asyncIterator]().next().catch(() => undefined);
    await waitFor(() => hub.subscriberCount === 1, 'a worker-only subscriber');
    expect(hub.startsWanted).toBe(false);
    const all = new AbortController();
    const b = readEvents(server.url, { signal: all.signal })[Symbol.asyncIterator]().next().catch(() => undefined);
    await waitFor(() => hub.startsWanted, 'starts wanted');
    all.abort();
    await b;
    await waitFor(() => !hub.startsWanted, 'starts no longer wanted');
    workerOnly.abort();
    await a;
    expect(changes).toEqual([true, false]);
  });
});
