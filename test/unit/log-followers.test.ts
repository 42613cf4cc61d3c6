import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { LogFollowers } from '../../api/log-followers';
import { readEvents, type StreamEvent } from '../../cli/sse';
import type { Call } from '../../protocol/types';
import { waitFor } from '../helpers/until';

const running = (callNum: number): Call => ({ callNum, funcName: 'f', status: 'RUNNING', createdAt: new Date().toISOString(), result: '' }) as Call;

describe('LogFollowers', () => {
  let server: http.Server;
  let url: string;
  let followers: LogFollowers;
  const asked: Array<[number, boolean]> = [];
  /** The call each request follows, as the route would read it. */
  const calls = new Map<number, Call>();

  beforeEach(async () => {
    asked.length = 0;
    followers = new LogFollowers({ maxFollowers: 2, follow: (callNum, on) => asked.push([callNum, on]) });
    server = http.createServer((req, res) => {
      try {
        followers.follow(res, calls.get(Number(req.url!.slice(1)))!);
      } catch {
        res.writeHead(503).end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterEach(async () => {
    followers.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const collect = (callNum: number) => {
    const events: StreamEvent[] = [];
    let open = false;
    const done = (async () => {
      for await (const e of readEvents(`${url}/${callNum}`, { onOpen: () => (open = true) })) events.push(e);
    })();
    return { events, done, isOpen: () => open };
  };

  test('pieces reach every follower; a later one gets the earlier pieces first; the end brings the rest and closes', async () => {
    calls.set(7, running(7));
    const one = collect(7);
    await waitFor(() => asked.length === 1, 'the worker asked');
    expect(asked).toEqual([[7, true]]);
    followers.piece({ callNum: 7, stderr: 'a\n' });
    followers.piece({ callNum: 7, stdout: 'x', stderr: 'b\n' });
    followers.piece({ callNum: 8, stderr: 'not followed' });
    await waitFor(() => one.events.length === 3, 'three pieces');
    const two = collect(7);
    await waitFor(() => two.events.length === 2, 'the backlog');
    expect(two.events.map((e) => [e.event, JSON.parse(e.data).text])).toEqual([
      ['stdout', 'x'],
      ['stderr', 'a\nb\n'],
    ]);
    // The stored call holds more than the pieces: its stdout whole (handler mode), the tail of its stderr.
    followers.ended({ ...running(7), status: 'DONE', stdout: 'xyz', stderr: 'a\nb\nc\n', truncated: false } as Call);
    await Promise.all([one.done, two.done]);
    for (const f of [one, two]) {
      expect(f.events.filter((e) => e.event === 'stdout').map((e) => JSON.parse(e.data).text).join('')).toBe('xyz');
      expect(f.events.filter((e) => e.event === 'stderr').map((e) => JSON.parse(e.data).text).join('')).toBe('a\nb\nc\n');
      expect(f.events.at(-1)!.event).toBe('end');
      expect(JSON.parse(f.events.at(-1)!.data)).toEqual({ status: 'DONE', truncated: false });
    }
    expect(asked).toEqual([
      [7, true],
      [7, false],
    ]);
  });

  test('the last follower leaving stops the following; a call already ended is sent whole without asking the worker', async () => {
    calls.set(9, running(9));
    const controller = new AbortController();
    const iterator = readEvents(`${url}/9`, { signal: controller.signal })[Symbol.asyncIterator]();
    const first = iterator.next().catch(() => undefined);
    await waitFor(() => asked.length === 1, 'the worker asked');
    controller.abort();
    await first;
    await waitFor(() => asked.length === 2, 'the following stopped');
    expect(asked).toEqual([
      [9, true],
      [9, false],
    ]);
    calls.set(10, { ...running(10), status: 'ERROR', reason: 'crashed', stderr: 'Traceback', truncated: true } as Call);
    const ended = collect(10);
    await ended.done;
    expect(ended.events.map((e) => e.event)).toEqual(['stderr', 'end']);
    expect(JSON.parse(ended.events[1]!.data)).toEqual({ status: 'ERROR', reason: 'crashed', truncated: true });
    expect(asked).toHaveLength(2);
  });

  test('past maxFollowers a running call is refused; an ended one is not counted', async () => {
    calls.set(1, running(1));
    const a = collect(1);
    const b = collect(1);
    await waitFor(() => a.isOpen() && b.isOpen(), 'two followers');
    const third = await fetch(`${url}/1`);
    expect(third.status).toBe(503);
    calls.set(2, { ...running(2), status: 'DONE' } as Call);
    const ended = collect(2);
    await ended.done;
    expect(ended.events.map((e) => e.event)).toEqual(['end']);
    followers.ended({ ...running(1), status: 'DONE' } as Call);
    await Promise.all([a.done, b.done]);
  });
});
