import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as zmq from 'zeromq';
import { curveKeyPairText } from '../../cli/actions/keys';
import { DbServer } from '../../db-service/server';
import { PlatformStore } from '../../db-service/store';
import { ConfigError } from '../../protocol/config';
import { clientCurveOptions, loadCurveConfig, serverCurveOptions, startZap } from '../../protocol/curve';
import { decodeMessage, encodeRequest, type Reply } from '../../protocol/envelope';
import type { Logger } from '../../protocol/log';
import { DB_OPERATION_ROLES, ZapHandler, authorize, decodeZ85Key, encodeZ85Key, parseAllowList, provenKey, provenRoutingId, roleMay, useDbPeerRoles } from '../../protocol/zap';
import { until } from '../helpers/until';

/**
 * The allow-list of CURVE client keys (a ZAP handler on real sockets over loopback) and the roles
 * db-service reads from the key that authenticated each peer.
 */

const cluster = zmq.curveKeyPair();
const apiKeys = zmq.curveKeyPair();
const workerKeys = zmq.curveKeyPair();
const strangerKeys = zmq.curveKeyPair();
const RUNTIME = { name: 'py', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py', mode: 'process', registeredAt: new Date().toISOString() };

const serverEnv: NodeJS.ProcessEnv = {
  FAAS_CURVE_PUBLIC_KEY: cluster.publicKey,
  FAAS_CURVE_SECRET_KEY: cluster.secretKey,
  FAAS_CURVE_ALLOWED_KEYS: `api:${apiKeys.publicKey}, worker:${workerKeys.publicKey}`,
};

function clientEnv(pair: { publicKey: string; secretKey: string }): NodeJS.ProcessEnv {
  return { FAAS_CURVE_PUBLIC_KEY: cluster.publicKey, FAAS_CURVE_CLIENT_PUBLIC_KEY: pair.publicKey, FAAS_CURVE_CLIENT_SECRET_KEY: pair.secretKey };
}

interface Warned {
  fields: Record<string, unknown>;
  msg: string;
}

function collectingLogger(warned: Warned[]): Logger {
  const log = {
    warn: (fields: Record<string, unknown>, msg: string) => warned.push({ fields, msg }),
    error: (fields: Record<string, unknown>, msg: string) => warned.push({ fields, msg }),
    info: () => undefined,
    debug: () => undefined,
  };
  return log as unknown as Logger;
}

/** A DEALER peer that can ask db-service and tell whether an answer came. */
class Peer {
  readonly socket: zmq.Dealer;
  private readonly replies = new Map<string, (reply: Reply) => void>();
  private next = 0;

  constructor(endpoint: string, options: Record<string, unknown>) {
    this.socket = new zmq.Dealer({ linger: 0, ...options });
    this.socket.connect(endpoint);
    void (async () => {
      try {
        for await (const [frame] of this.socket) {
          const reply = decodeMessage(frame) as Reply;
          this.replies.get(reply.id)?.(reply);
        }
      } catch {
        /* closed */
      }
    })();
  }

  ask(msgType: string, content: unknown = {}): { reply: Promise<Reply>; settled: () => boolean } {
    const id = `r${this.next++}`;
    let done = false;
    const reply = new Promise<Reply>((resolve) =>
      this.replies.set(id, (r) => {
        done = true;
        resolve(r);
      }),
    );
    void this.socket.send(encodeRequest(id, msgType, content));
    return { reply, settled: () => done };
  }

  close(): void {
    this.socket.close();
  }
}

describe('the CURVE allow-list', () => {
  test('entries: role:KEY, a bare key (a worker), commas, spaces, comments; a key may hold "#"', () => {
    let hashKey = '';
    while (!hashKey.includes('#')) hashKey = zmq.curveKeyPair().publicKey;
    const text = `# the cluster's clients\napi:${apiKeys.publicKey}   # the api\n${workerKeys.publicKey}, miniworker:${hashKey}\n\n`;
    const allowed = parseAllowList(text, 'FAAS_CURVE_ALLOWED_KEYS_FILE');
    expect([...allowed]).toEqual([
      [apiKeys.publicKey, 'api'],
      [workerKeys.publicKey, 'worker'],
      [hashKey, 'miniworker'],
    ]);
  });

  test.each([
    [`worker:${workerKeys.publicKey.slice(0, 39)}`, /is not a CURVE public key \(40 Z85 characters/],
    ['tooshort', /is not a 40-character Z85 key nor role:key/],
    [`worker:${workerKeys.publicKey.slice(0, 39)}~`, /is not a CURVE public key/],
    [`worker:${'#'.repeat(40)}`, /is not a CURVE public key/], // Z85 characters, but past 32 bits a group
    [`admin:${workerKeys.publicKey}`, /unknown role "admin" \(use api:KEY, worker:KEY, miniworker:KEY\)/],
    [`worker:${workerKeys.publicKey},api:${workerKeys.publicKey}`, /listed as both worker and api/],
  ])('a bad entry %s is refused with a clear message', (text, message) => {
    expect(() => parseAllowList(text, 'FAAS_CURVE_ALLOWED_KEYS')).toThrow(ConfigError);
    expect(() => parseAllowList(text, 'FAAS_CURVE_ALLOWED_KEYS')).toThrow(message);
  });

  test('a file gives line numbers in its errors, and is read with the variable', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-zap-'));
    try {
      const file = path.join(dir, 'allowed');
      writeFileSync(file, `worker:${workerKeys.publicKey}\n# second line\nworker:tooshort\n`);
      expect(() => parseAllowList(`worker:${workerKeys.publicKey}\n# c\nworker:tooshort\n`, 'FAAS_CURVE_ALLOWED_KEYS_FILE')).toThrow(/FAAS_CURVE_ALLOWED_KEYS_FILE line 3/);
      writeFileSync(file, `miniworker:${strangerKeys.publicKey}\n`);
      const config = loadCurveConfig({ ...serverEnv, FAAS_CURVE_ALLOWED_KEYS_FILE: file }, 'server');
      expect(config?.allowed?.get(strangerKeys.publicKey)).toBe('miniworker');
      expect(config?.allowed?.get(workerKeys.publicKey)).toBe('worker');
      expect(() => loadCurveConfig({ ...serverEnv, FAAS_CURVE_ALLOWED_KEYS_FILE: path.join(dir, 'missing') }, 'server')).toThrow(/cannot be read: ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a server with CURVE keys and no allow-list refuses to start; the cluster key is always the api', () => {
    expect(() => loadCurveConfig({ FAAS_CURVE_PUBLIC_KEY: cluster.publicKey, FAAS_CURVE_SECRET_KEY: cluster.secretKey }, 'server')).toThrow(/FAAS_CURVE_ALLOWED_KEYS or FAAS_CURVE_ALLOWED_KEYS_FILE must list/);
    expect(loadCurveConfig(serverEnv, 'server')?.allowed?.get(cluster.publicKey)).toBe('api');
    expect(() => loadCurveConfig({ ...serverEnv, FAAS_CURVE_ALLOWED_KEYS: `worker:${cluster.publicKey}` }, 'server')).toThrow(/always the api/);
    expect(loadCurveConfig({}, 'server')).toBeUndefined();
  });

  test('a client needs its own key pair, both halves, matching', () => {
    expect(() => loadCurveConfig({ FAAS_CURVE_PUBLIC_KEY: cluster.publicKey }, 'client')).toThrow(/FAAS_CURVE_CLIENT_PUBLIC_KEY and FAAS_CURVE_CLIENT_SECRET_KEY/);
    expect(() => loadCurveConfig({ ...clientEnv(workerKeys), FAAS_CURVE_CLIENT_SECRET_KEY: undefined }, 'client')).toThrow(/go together/);
    expect(() => loadCurveConfig({ ...clientEnv(workerKeys), FAAS_CURVE_CLIENT_SECRET_KEY: apiKeys.secretKey }, 'client')).toThrow(/not the public half/);
    expect(() => loadCurveConfig({ ...serverEnv, FAAS_CURVE_SECRET_KEY: apiKeys.secretKey }, 'server')).toThrow(/FAAS_CURVE_PUBLIC_KEY is not the public half/);
    expect(loadCurveConfig(clientEnv(workerKeys), 'client')?.client).toEqual(workerKeys);
    // A process holding the cluster's secret (the api) uses the cluster pair, even in an environment shared with a worker.
    expect(loadCurveConfig({ FAAS_CURVE_PUBLIC_KEY: cluster.publicKey, FAAS_CURVE_SECRET_KEY: cluster.secretKey }, 'client')?.client).toEqual(cluster);
    expect(loadCurveConfig({ ...clientEnv(workerKeys), FAAS_CURVE_SECRET_KEY: cluster.secretKey }, 'client')?.client).toEqual(cluster);
  });

  test('Z85 round trip, and a routing id proves its key only to the server', () => {
    for (const key of [cluster.publicKey, workerKeys.secretKey]) expect(encodeZ85Key(decodeZ85Key(key)!)).toBe(key);
    const id = provenRoutingId(workerKeys, cluster.publicKey);
    expect(id.length).toBeLessThanOrEqual(255);
    expect(provenKey(id, cluster.secretKey)).toBe(workerKeys.publicKey);
    expect(provenKey(id, apiKeys.secretKey)).toBeUndefined();
    // Someone with only the worker's public key cannot claim it: a forged mac fails.
    expect(provenKey(id.replace(/_[0-9a-f]{32}$/, `_${'0'.repeat(32)}`), cluster.secretKey)).toBeUndefined();
    expect(provenKey(`faas1_${apiKeys.publicKey}${id.slice(46)}`, cluster.secretKey)).toBeUndefined();
  });

  test('the role table: the api may do everything, a worker only what the table lists', () => {
    expect(roleMay('api', 'deleteFunction')).toBe(true);
    for (const op of ['putOutputs', 'getCall', 'ping', 'startCall', 'finishCall', 'failCall']) {
      expect({ op, worker: roleMay('worker', op), miniworker: roleMay('miniworker', op) }).toEqual({ op, worker: true, miniworker: true });
    }
    for (const op of ['putRuntime', 'putFunction', 'deleteFunction', 'createCall', 'createCallOnce', 'listCalls', 'getOutputs', 'requeueCall', 'unfinishedCalls', 'putNode', 'updateCall', 'toString', '__proto__']) {
      expect({ op, worker: roleMay('worker', op) }).toEqual({ op, worker: false });
    }
    expect(Object.keys(DB_OPERATION_ROLES)).toContain('getFunction');
  });
});

describe('ZAP on real sockets', () => {
  const warned: Warned[] = [];
  const saved = { ...process.env };
  let dir: string;
  let store: PlatformStore;
  let server: DbServer;
  let endpoint: string;
  let zap: ZapHandler;
  const peers: Peer[] = [];

  function peer(options: Record<string, unknown>): Peer {
    const p = new Peer(endpoint, options);
    peers.push(p);
    return p;
  }

  beforeAll(async () => {
    Object.assign(process.env, serverEnv);
    zap = (await startZap(collectingLogger(warned), serverEnv))!;
    dir = mkdtempSync(path.join(os.tmpdir(), 'faas-zap-db-'));
    store = await PlatformStore.open(dir);
    server = new DbServer(store, collectingLogger(warned));
    endpoint = await server.bind('tcp://127.0.0.1:*');
  });

  afterEach(() => {
    for (const p of peers.splice(0)) p.close();
  });

  afterAll(async () => {
    await server?.close();
    await store?.close();
    await zap?.close();
    useDbPeerRoles(undefined);
    for (const name of Object.keys(serverEnv)) delete process.env[name];
    Object.assign(process.env, saved);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('no handler, no entry: a CURVE socket is refused without one, and fails closed when it is gone', async () => {
    const router = new zmq.Router({ linger: 0, ...serverCurveOptions(serverEnv, 'workers') });
    await router.bind('tcp://127.0.0.1:*');
    const failures: string[] = [];
    void (async () => {
      for await (const event of router.events) if (event.type.startsWith('handshake:error')) failures.push(event.type);
    })().catch(() => undefined);
    await zap.close();
    try {
      expect(() => serverCurveOptions(serverEnv, 'db')).toThrow(/needs the ZAP handler/);
      // The refused client hears nothing back; its handshake timeout decides when it tries again.
      const worker = new zmq.Dealer({ linger: 0, reconnectInterval: 20, handshakeInterval: 500, ...clientCurveOptions(clientEnv(workerKeys)) });
      worker.connect(router.lastEndpoint!);
      void worker.send('while the handler is away');
      await until(async () => failures.length, (n) => n > 0, 10_000, 'a handshake refused with no handler');
      // Back again: the queued message gets through on the next attempt.
      zap = (await startZap(collectingLogger(warned), serverEnv))!;
      serverCurveOptions(serverEnv, 'db');
      serverCurveOptions(serverEnv, 'workers');
      const [, body] = await router.receive();
      expect(body!.toString()).toBe('while the handler is away');
      worker.close();
    } finally {
      router.close();
    }
  });

  test('an allowed api key connects and is served, writes included', async () => {
    const api = peer(clientCurveOptions(clientEnv(apiKeys), { proveKey: true }));
    expect(await api.ask('ping').reply).toMatchObject({ ok: true });
    expect(await api.ask('putRuntime', { runtime: RUNTIME }).reply).toMatchObject({ ok: true, data: { created: true } });
  });

  test('a worker key reads and writes call state, and is refused a write outside its role', async () => {
    const worker = peer(clientCurveOptions(clientEnv(workerKeys), { proveKey: true }));
    expect(await worker.ask('getRuntime', { name: 'py' }).reply).toMatchObject({ ok: true, data: { name: 'py' } });
    expect(await worker.ask('getCall', { callNum: 1 }).reply).toMatchObject({ ok: true, data: null });
    const forbidden = await worker.ask('putRuntime', { runtime: { ...RUNTIME, name: 'evil' } }).reply;
    expect(forbidden).toMatchObject({ ok: false, error: { code: 'FORBIDDEN', message: 'a worker may not putRuntime', retryable: false } });
    expect(await worker.ask('deleteRuntime', { name: 'py' }).reply).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await store.getRuntime('evil')).toBeNull();
    expect(await store.getRuntime('py')).not.toBeNull();
  });

  test('a worker key that claims the api key in its routing id is not the api', async () => {
    const honest = provenRoutingId(workerKeys, cluster.publicKey);
    const forged = `faas1_${apiKeys.publicKey}${honest.slice(46)}`;
    const worker = peer({ ...clientCurveOptions(clientEnv(workerKeys)), routingId: forged });
    const reply = await worker.ask('putRuntime', { runtime: { ...RUNTIME, name: 'forged' } }).reply;
    expect(reply).toMatchObject({ ok: false, error: { code: 'FORBIDDEN', message: expect.stringContaining('did not prove an allowed key') } });
    // Without a proving routing id at all, an allowed key is still no one's role.
    const plainId = peer(clientCurveOptions(clientEnv(apiKeys)));
    expect(await plainId.ask('ping').reply).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
  });

  test('an unknown key with the right server key gets nothing; the handler counts each refusal and logs the key once', async () => {
    const before = zap.refusals.get('db') ?? 0;
    const strangers = [1, 2].map(() => peer(clientCurveOptions(clientEnv(strangerKeys), { proveKey: true })));
    const probes = strangers.map((s) => s.ask('ping'));
    // One refusal per connection attempt (a refused client waits out its handshake timeout before trying again).
    await until(async () => zap.refusals.get('db') ?? 0, (n) => n >= before + 2, 10_000, 'two refused handshakes');
    // An allowed peer asked after the refusals is answered; the strangers' requests never are.
    const api = peer(clientCurveOptions(clientEnv(apiKeys), { proveKey: true }));
    expect(await api.ask('ping').reply).toMatchObject({ ok: true });
    expect(probes.map((p) => p.settled())).toEqual([false, false]);
    const lines = warned.filter((w) => w.msg === 'CURVE handshake refused' && w.fields.clientKey === strangerKeys.publicKey);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.fields).toMatchObject({ domain: 'db', address: '127.0.0.1', why: 'key not on the allow-list' });
  });

  test('the worker socket (domain workers) lets in worker keys only', async () => {
    const hub = new zmq.Router({ linger: 0, ...serverCurveOptions(serverEnv, 'workers') });
    await hub.bind('tcp://127.0.0.1:*');
    try {
      const before = zap.refusals.get('workers') ?? 0;
      const asApi = new zmq.Dealer({ linger: 0, routingId: 'api-as-worker', ...clientCurveOptions(clientEnv(apiKeys)) });
      const asWorker = new zmq.Dealer({ linger: 0, routingId: 'real-worker', ...clientCurveOptions(clientEnv(workerKeys)) });
      // A one-machine platform whose worker holds the cluster's secret is let in too.
      const asCluster = new zmq.Dealer({ linger: 0, routingId: 'cluster-worker', ...clientCurveOptions(serverEnv) });
      for (const dealer of [asApi, asWorker, asCluster]) dealer.connect(hub.lastEndpoint!);
      void asApi.send('hello from api key');
      void asWorker.send('hello from worker key');
      void asCluster.send('hello from cluster key');
      const got = new Set<string>();
      while (got.size < 2) {
        const [from, body] = await hub.receive();
        got.add(`${from!.toString()}: ${body!.toString()}`);
      }
      expect([...got].sort()).toEqual(['cluster-worker: hello from cluster key', 'real-worker: hello from worker key']);
      await until(async () => zap.refusals.get('workers') ?? 0, (n) => n > before, 10_000, 'the api key refused at the worker socket');
      const line = warned.find((w) => w.fields.domain === 'workers' && w.fields.clientKey === apiKeys.publicKey);
      expect(line?.fields.why).toBe('role api may not connect here');
      for (const dealer of [asApi, asWorker, asCluster]) dealer.close();
    } finally {
      hub.close();
    }
  });
});

describe('faas curve-keypair', () => {
  test('the cluster pair, or a client pair with the allow-list entry for its role', () => {
    const clusterText = curveKeyPairText();
    const pub = /^FAAS_CURVE_PUBLIC_KEY=(.{40})\nFAAS_CURVE_SECRET_KEY=(.{40})\n$/.exec(clusterText);
    expect(pub).not.toBeNull();
    const client = curveKeyPairText('worker').split('\n');
    const [, clientPublic] = /^FAAS_CURVE_CLIENT_PUBLIC_KEY=(.{40})$/.exec(client[0]!)!;
    const [, clientSecret] = /^FAAS_CURVE_CLIENT_SECRET_KEY=(.{40})$/.exec(client[1]!)!;
    expect(loadCurveConfig({ FAAS_CURVE_PUBLIC_KEY: pub![1], FAAS_CURVE_CLIENT_PUBLIC_KEY: clientPublic, FAAS_CURVE_CLIENT_SECRET_KEY: clientSecret }, 'client')?.client?.publicKey).toBe(clientPublic);
    // The printed entry, comment marker removed, is a valid allow-list line.
    expect([...parseAllowList(client[3]!.replace(/^# /, ''), 'FAAS_CURVE_ALLOWED_KEYS')]).toEqual([[clientPublic, 'worker']]);
    expect(() => curveKeyPairText('admin')).toThrow(/--client takes a role: api, worker, miniworker/);
  });
});

describe('without CURVE', () => {
  test('db peers are loopback peers, trusted as the api, as before', () => {
    useDbPeerRoles(undefined);
    expect(authorize(Buffer.from('any-peer'), 'deleteFunction')).toBe('api');
    expect(serverCurveOptions({}, 'db')).toEqual({});
    expect(clientCurveOptions({}, { proveKey: true })).toEqual({});
  });
});
