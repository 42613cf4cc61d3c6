import * as zmq from 'zeromq';
import pino from 'pino';
import { z } from 'zod';
import { Channel, type ChannelStats } from '../../protocol/channel';
import { encodeReply, encodeRequest, PROTOCOL_VERSION } from '../../protocol/envelope';
import type { Logger } from '../../protocol/log';
import { until } from '../helpers/until';

/** The channel class over real ZeroMQ sockets on loopback: a bad frame costs that frame, never the loop. */

const inbound = {
  ping: z.object({ n: z.number().finite() }).strict(),
  boom: z.object({}),
  reject: z.object({}),
};
const outbound = { pong: z.object({ n: z.number() }) };

const silent = pino({ level: 'silent' }) as Logger;

function raw(text: string): Buffer {
  return Buffer.from(text);
}

describe('Channel on a ROUTER', () => {
  let router: zmq.Router;
  let channel: Channel<typeof inbound, typeof outbound>;
  let client: zmq.Dealer;
  const pings: Array<{ n: number; from: string }> = [];
  let endpoint = '';

  beforeEach(async () => {
    pings.length = 0;
    router = new zmq.Router({ linger: 0, mandatory: true });
    await router.bind('tcp://127.0.0.1:*');
    endpoint = router.lastEndpoint!;
    channel = new Channel({
      name: 'test peer',
      socket: router,
      inbound,
      log: silent,
      maxFrameBytes: 1024,
      handlers: {
        ping: ({ n }, from) => {
          pings.push({ n, from });
          channel.send('pong', { n }, from);
        },
        boom: () => {
          throw new Error('a handler that throws');
        },
        reject: async () => {
          await Promise.resolve();
          throw new Error('a handler that rejects');
        },
      },
    }).start();
    client = new zmq.Dealer({ linger: 0, routingId: 'client-1' });
    client.connect(endpoint);
  });

  afterEach(async () => {
    client.close();
    await channel.close();
  });

  async function pingPong(n: number): Promise<void> {
    await client.send(encodeRequest(`id-${n}`, 'ping', { n }));
    const [reply] = await client.receive();
    expect(JSON.parse(reply!.toString())).toMatchObject({ v: PROTOCOL_VERSION, msgType: 'pong', content: { n } });
  }

  async function dropped(reason: string, count: number): Promise<ChannelStats> {
    return until(async () => channel.stats(), (s) => (s.dropped[reason] ?? 0) >= count, 5000, `${count} frames dropped for ${reason}`);
  }

  test('a valid frame reaches its handler with the typed content and the peer', async () => {
    await pingPong(1);
    expect(pings).toEqual([{ n: 1, from: 'client-1' }]);
    expect(channel.stats()).toMatchObject({ received: 1, handled: 1, sent: 1, dropped: {} });
  });

  test.each([
    ['not_json', raw('{"v":1,"id":"a","msgType":"ping",')],
    ['version', raw('{"v":2,"id":"a","msgType":"ping","content":{"n":1}}')],
    ['version', raw('[1,2,3]')],
    ['bad_envelope', raw('{"v":1,"id":"","msgType":"ping","content":{"n":1}}')],
    ['bad_envelope', raw('"just a string"')],
    ['unknown_type', encodeRequest('a', 'shutdown', {})],
    ['unknown_type', encodeRequest('a', '__proto__', {})],
    ['bad_content', encodeRequest('a', 'ping', { n: 'one' })],
    ['bad_content', encodeRequest('a', 'ping', { n: 1, extra: true })],
    // JSON.parse turns 1e999 into Infinity: a number, but not a finite one.
    ['bad_content', raw('{"v":1,"id":"a","msgType":"ping","content":{"n":1e999}}')],
    ['too_large', encodeRequest('a', 'ping', { n: 1, pad: 'x'.repeat(2048) })],
    ['unexpected_reply', encodeReply('a', { ok: true, data: 1 })],
  ])('a frame dropped for %s is counted and the loop keeps serving', async (reason, frame) => {
    await client.send(frame);
    const stats = await dropped(reason, 1);
    expect(stats.handled).toBe(0);
    expect(pings).toEqual([]);
    await pingPong(7);
    expect(pings).toEqual([{ n: 7, from: 'client-1' }]);
  });

  test('a message in several frames is dropped as malformed', async () => {
    await client.send([encodeRequest('a', 'ping', { n: 1 }), encodeRequest('b', 'ping', { n: 2 })]);
    await dropped('malformed', 1);
    await pingPong(3);
    expect(pings.map((p) => p.n)).toEqual([3]);
  });

  test('a handler that throws and one that rejects: both counted, the loop keeps serving', async () => {
    await client.send(encodeRequest('a', 'boom', {}));
    await client.send(encodeRequest('b', 'reject', {}));
    await client.send(encodeRequest('c', 'boom', {}));
    const stats = await dropped('handler_error', 3);
    expect(stats.dropped.handler_error).toBe(3);
    await pingPong(4);
    expect(channel.stats()).toMatchObject({ received: 4, handled: 4 });
  });

  test('a hundred bad frames in a row: all counted, a few log lines', async () => {
    const lines: unknown[] = [];
    const counting = { warn: (...args: unknown[]) => lines.push(args), error: (...args: unknown[]) => lines.push(args) } as unknown as Logger;
    const quiet = new zmq.Router({ linger: 0, mandatory: true });
    await quiet.bind('tcp://127.0.0.1:*');
    const other = new Channel({ name: 'noisy peer', socket: quiet, inbound, log: counting, handlers: { ping: () => undefined, boom: () => undefined, reject: () => undefined } }).start();
    const noisy = new zmq.Dealer({ linger: 0 });
    noisy.connect(quiet.lastEndpoint!);
    try {
      for (let i = 0; i < 100; i++) await noisy.send(raw('not json'));
      await until(async () => other.stats(), (s) => s.dropped.not_json === 100, 5000, '100 frames dropped');
      expect(lines.length).toBeGreaterThanOrEqual(1);
      expect(lines.length).toBeLessThanOrEqual(10);
    } finally {
      noisy.close();
      await other.close();
    }
  });

  test('a send to a peer that is not there is reported, not silently dropped (the channel makes its ROUTER mandatory)', async () => {
    const failures: string[] = [];
    const lonely = new zmq.Router({ linger: 0 });
    await lonely.bind('tcp://127.0.0.1:*');
    const alone = new Channel<typeof inbound, typeof outbound>({
      name: 'nobody',
      socket: lonely,
      inbound,
      log: silent,
      handlers: { ping: () => undefined, boom: () => undefined, reject: () => undefined },
      onSendFailed: (_err, to) => failures.push(to),
    }).start();
    try {
      expect(alone.send('pong', { n: 1 }, 'no-such-peer')).toBe(true);
      await until(async () => failures, (f) => f.length === 1, 5000, 'the failed send reported');
      expect(failures).toEqual(['no-such-peer']);
      expect(alone.stats().sendFailures).toBe(1);
      // The queue behind the failed send is not stalled.
      expect(alone.send('pong', { n: 2 }, 'no-such-peer-either')).toBe(true);
      await until(async () => failures, (f) => f.length === 2, 5000, 'the second failed send reported');
    } finally {
      await alone.close();
    }
  });

  test('close() twice is safe and ends the loop', async () => {
    await channel.close();
    await channel.close();
    expect(router.closed).toBe(true);
  });
});

describe('Channel on a DEALER', () => {
  test('the same checks on the connecting side; a serial channel takes one message at a time', async () => {
    const server = new zmq.Router({ linger: 0, mandatory: true });
    await server.bind('tcp://127.0.0.1:*');
    const dealer = new zmq.Dealer({ linger: 0, routingId: 'dealer-1' });
    let running = 0;
    let most = 0;
    const seen: number[] = [];
    const channel = new Channel<typeof inbound, typeof outbound>({
      name: 'server',
      socket: dealer,
      inbound,
      log: silent,
      serial: true,
      handlers: {
        ping: async ({ n }) => {
          running += 1;
          most = Math.max(most, running);
          await new Promise((r) => setImmediate(r));
          seen.push(n);
          running -= 1;
        },
        boom: () => {
          throw new Error('boom');
        },
        reject: async () => {
          throw new Error('rejected');
        },
      },
    });
    dealer.connect(server.lastEndpoint!);
    channel.start();
    try {
      // The server learns the dealer's routing id from its first message.
      channel.send('pong', { n: 0 });
      const [peer] = await server.receive();
      expect(peer!.toString()).toBe('dealer-1');
      for (const frame of [raw('{'), raw('{"v":0,"id":"a","msgType":"ping","content":{"n":1}}'), raw('{"v":1,"id":"a","msgType":"ping","content":{"n":-1e999}}'), encodeRequest('b', 'boom', {}), encodeRequest('c', 'reject', {})]) {
        await server.send([peer!, frame]);
      }
      for (let n = 1; n <= 5; n++) await server.send([peer!, encodeRequest(`p${n}`, 'ping', { n })]);
      const stats = await until(async () => channel.stats(), () => seen.length === 5, 5000, 'five pings handled');
      expect(seen).toEqual([1, 2, 3, 4, 5]);
      expect(most).toBe(1);
      expect(stats.dropped).toEqual({ not_json: 1, version: 1, bad_content: 1, handler_error: 2 });
    } finally {
      await channel.close();
      server.close();
    }
  });
});

describe('Channel as a request/reply server and client', () => {
  test('every readable request is answered: data, a named error, or why it was refused; the client matches replies by id', async () => {
    const { PlatformError } = await import('../../protocol/errors');
    const server = new zmq.Router({ linger: 0 });
    await server.bind('tcp://127.0.0.1:*');
    const requests = {
      add: z.object({ a: z.number().finite(), b: z.number().finite() }),
      missing: z.object({}),
      crash: z.object({}),
    };
    const serving = new Channel<typeof requests, Record<string, never>>({
      name: 'client',
      socket: server,
      inbound: requests,
      log: silent,
      replies: true,
      handlers: {
        add: async ({ a, b }) => a + b,
        missing: () => {
          throw new PlatformError('CALL_NOT_FOUND', 'no such call');
        },
        crash: async () => {
          throw new TypeError('a bug');
        },
      },
    }).start();
    const replies = new Map<string, unknown>();
    const dealer = new zmq.Dealer({ linger: 0 });
    const client = new Channel<Record<string, never>, typeof requests>({
      name: 'server',
      socket: dealer,
      inbound: {},
      log: silent,
      handlers: {},
      onReply: (reply) => void replies.set(reply.id, reply.ok ? { data: reply.data } : { error: reply.error.code }),
    });
    dealer.connect(server.lastEndpoint!);
    client.start();
    try {
      client.sendFrame(encodeRequest('r1', 'add', { a: 2, b: 3 }));
      client.sendFrame(encodeRequest('r2', 'missing', {}));
      client.sendFrame(encodeRequest('r3', 'crash', {}));
      client.sendFrame(encodeRequest('r4', 'drop', {}));
      client.sendFrame(raw('{"v":1,"id":"r5","msgType":"add","content":{"a":1,"b":1e999}}'));
      await until(async () => replies.size, (n) => n === 5, 5000, 'five replies');
      expect(Object.fromEntries(replies)).toEqual({
        r1: { data: 5 },
        r2: { error: 'CALL_NOT_FOUND' },
        r3: { error: 'INTERNAL' },
        r4: { error: 'PROTOCOL_ERROR' },
        r5: { error: 'BAD_REQUEST' },
      });
      // A named error is an answer; only the bug counts as a handler failure.
      expect(serving.stats().dropped).toEqual({ handler_error: 1, unknown_type: 1, bad_content: 1 });
    } finally {
      await client.close();
      await serving.close();
    }
  });
});
