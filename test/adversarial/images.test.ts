import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DbClient } from '../../protocol/db-client';
import { DockerClient, DockerRedirectError } from '../../protocol/docker-client';
import { tarGzOf } from '../helpers/archives';
import { docker, TestPlatform } from '../helpers/platform';
import { freePort } from '../helpers/ports';
import { until } from '../helpers/until';

/**
 * Hostile runtime images against the real api, db-service, worker and Docker engine: names that
 * would change which request the Docker client makes, an engine that answers with redirects, a
 * runtime an older version stored with such a name, and an image that declares a VOLUME.
 */

const PROC = { name: 'pyproc', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py', mode: 'process' };
const DOCKER_SOCKET = process.env.DOCKER_HOST?.startsWith('unix://') ? process.env.DOCKER_HOST.slice(7) : '/var/run/docker.sock';
/** The tmpfs cap of the test platform's containers: /tmp, and each VOLUME of an image. */
const TMPFS_MB = 16;

async function packageOf(files: Record<string, string>): Promise<Buffer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-images-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return tarGzOf(dir);
}

/** An HTTP server on loopback that counts what reaches it: where a followed redirect would land. */
async function trapServer(): Promise<{ port: number; hits: string[]; close: () => Promise<void> }> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    res.end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, hits, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/**
 * A Docker engine on a loopback port that passes every request to the real one, except those whose
 * path matches a pattern: these are answered 301 with the pattern's Location. Hijacked requests
 * (attach) are passed on as raw streams.
 */
async function redirectingEngine(redirects: Array<[RegExp, string]>): Promise<{ port: number; redirected: string[]; close: () => Promise<void> }> {
  const redirected: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    const hit = redirects.find(([pattern]) => pattern.test(req.url ?? ''));
    if (hit) {
      redirected.push(`${req.method} ${req.url}`);
      res.writeHead(301, { Location: hit[1] });
      res.end();
      return;
    }
    // No keep-alive agent: an idle socket to the engine would outlive the test and hold the process open.
    const upstream = http.request({ socketPath: DOCKER_SOCKET, path: req.url, method: req.method, headers: req.headers, agent: false }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      // An attach answers its headers long before any data: they must reach the client at once.
      res.flushHeaders();
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    // A long answer (the worker's event stream) ends with its client: nothing to the engine outlives the test.
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    const upstream = net.connect(DOCKER_SOCKET, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
      socket.pipe(upstream);
      upstream.pipe(socket);
    });
    const end = () => {
      socket.destroy();
      upstream.destroy();
    };
    upstream.on('error', end);
    socket.on('error', end);
    upstream.on('close', end);
    socket.on('close', end);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    redirected,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

interface DockerEvent {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
}

/** Docker's container and volume events from now on, kept until stopped. */
async function watchEvents(): Promise<{ events: DockerEvent[]; stop: () => void }> {
  const stream = (await docker.getEvents({ filters: { type: ['container', 'volume'] } })) as NodeJS.ReadableStream & { destroy: () => void };
  const events: DockerEvent[] = [];
  let rest = '';
  stream.on('data', (chunk: Buffer) => {
    const lines = (rest + chunk.toString('utf8')).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) events.push(JSON.parse(line) as DockerEvent);
  });
  stream.on('error', () => undefined);
  return { events, stop: () => stream.destroy() };
}

/** Hostile image names, each as a user would send it. */
const HOSTILE_IMAGES: Array<[string, unknown]> = [
  ['the redirect of the finding', '../../127.0.0.1:1/x?'],
  ['dot-dot segments', 'img/../../containers/json'],
  ['a bare dot-dot', '..'],
  ['a query', 'pythonruntime?fromImage=x'],
  ['a fragment', 'pythonruntime#x'],
  ['percent-encoded dot-dots', '%2e%2e/%2e%2e/127.0.0.1:1/x'],
  ['an absolute URL', 'http://127.0.0.1:2375/images/json'],
  ['a host and port, then dot-dot', '127.0.0.1:1/../../x'],
  ['upper case in the path', 'library/PythonRuntime'],
  ['an empty path component', 'team//pythonruntime'],
  ['an absolute path', '/pythonruntime'],
  ['a NUL byte', 'pythonruntime\u0000'],
  ['a line break', 'pythonruntime\r\nHost: evil'],
  ['an IPv6 host without brackets', 'fe80::1:5000/pythonruntime'],
  ['a space', 'python runtime'],
  ['an over-long name', `a/${'b'.repeat(300)}`],
  ['a number', 42],
];

describe('adversarial: hostile runtime images', () => {
  let platform: TestPlatform;
  let db: DbClient;
  const tag = `faas-volumes-${Date.now().toString(36)}`;
  let volumeImage = '';

  const deploy = async (runtime: string, name: string, data: Buffer) => {
    const answer = await platform.upload(runtime, name, data);
    expect([200, 201]).toContain(answer.status);
  };
  const call = async (funcName: string, params: unknown = {}) => {
    const answer = await platform.json('POST', '/invokeFunction', { funcName, params });
    expect(answer.status).toBe(202);
    return platform.waitFinal(answer.body.callNum, 120_000);
  };
  const workerLog = () => readFileSync(path.join(platform.dataDir, 'worker.log'), 'utf8');
  const welcomes = () => workerLog().split('\n').filter((line) => line.includes('registered with the api')).length;
  /** Replaces the worker, with `env` added, and waits for its welcome. */
  const restartWorker = async (env: NodeJS.ProcessEnv = {}) => {
    const before = welcomes();
    await platform.stopService('worker');
    platform.spawn('worker', env);
    await until(async () => welcomes(), (n) => n > before, 30_000, 'the new worker registered');
    await platform.waitHealthy();
    return platform.procs.get('worker')!;
  };
  const listedRuntimes = async () => {
    const answer = await platform.json('GET', '/v1/runtimes');
    expect(answer.status).toBe(200);
    return answer.body as Array<{ name: string; image: string }>;
  };

  beforeAll(async () => {
    platform = await TestPlatform.start({ env: { FAAS_TMPFS_MB: String(TMPFS_MB), FAAS_CALL_TIMEOUT_MS: '30000', FAAS_PULL_TIMEOUT_MS: '5000' } });
    db = new DbClient(platform.env.FAAS_DB_ENDPOINT!).start();
    expect((await platform.json('POST', '/registerRuntime', PROC)).status).toBe(201);
    await deploy('pyproc', 'hello', await packageOf({ 'main.py': 'import json\nprint(json.dumps("hello"))\n' }));
    // A runtime image with a VOLUME, made here from the local runtime image (nothing is pulled).
    execFileSync('docker', ['build', '-q', '-t', tag, '-'], { input: `FROM pythonruntime\nLABEL io.faas.platform=${platform.label}\nVOLUME /data\n`, stdio: ['pipe', 'pipe', 'pipe'] });
    volumeImage = `${tag}:latest`;
  });
  afterAll(async () => {
    db?.close();
    await platform?.stop();
    const left = await docker.listImages({ filters: { reference: [tag, `${tag}-ws`] } });
    for (const image of left) await docker.getImage(image.Id).remove({ force: true }).catch(() => undefined);
  });

  describe.each([['/registerRuntime'], ['/v1/runtimes']])('registering through %s', (route) => {
    test.each(HOSTILE_IMAGES)('%s is refused 400 with the reason, and nothing is stored', async (_what, image) => {
      const name = `evil-${Math.random().toString(36).slice(2, 8)}`;
      const answer = await platform.json('POST', route, { ...PROC, name, image });
      expect(answer.status).toBe(400);
      expect(answer.body.error.code).toBe('BAD_REQUEST');
      expect(answer.body.error.message).toMatch(/^image: /);
      if (typeof image === 'string') expect(answer.body.error.message).toContain('is not a valid Docker image reference');
      expect((await listedRuntimes()).filter((r) => r.name === name || r.image === image)).toEqual([]);
      expect((await platform.json('GET', `/v1/runtimes/${name}`)).status).toBe(404);
    });
  });

  test('an image refused without a name is refused for its image, not for the name made from it', async () => {
    const answer = await platform.json('POST', '/registerRuntime', { image: '../x', path: '/ws', run: 'true' });
    expect(answer.status).toBe(400);
    expect(answer.body.error.message).toBe('image: "../x" is not a valid Docker image reference ([registry[:port]/]path[:tag][@sha256:digest]): it contains ".."');
  });

  test('there is no PUT on runtimes to slip a name through: 404, and nothing stored', async () => {
    const answer = await platform.json('PUT', '/v1/runtimes/evil-put', { ...PROC, name: 'evil-put', image: '../../127.0.0.1:1/x?' });
    expect(answer.status).toBe(404);
    expect((await listedRuntimes()).map((r) => r.name)).not.toContain('evil-put');
  });

  test('references with a registry port, an IPv6 registry, a tag and a digest are still taken', async () => {
    const images = ['127.0.0.1:5000/team/pythonruntime:v1', '[::1]:5000/pythonruntime', `localhost/pythonruntime@sha256:${'a'.repeat(64)}`];
    for (const [i, image] of images.entries()) {
      const answer = await platform.json('POST', '/v1/runtimes', { ...PROC, name: `good-${i}`, image });
      expect(answer.status).toBe(201);
      expect(answer.body.image).toBe(image);
    }
    expect((await listedRuntimes()).filter((r) => r.name.startsWith('good-')).map((r) => r.image)).toEqual(images);
    for (const i of images.keys()) expect((await platform.json('DELETE', `/v1/runtimes/good-${i}`)).status).toBe(204);
  });

  test('the Docker client follows no redirect from an engine: the second server sees nothing, and every call fails contained', async () => {
    const trap = await trapServer();
    const closedPort = await freePort();
    const engine = http.createServer((req, res) => {
      // Alternate between a landing place that listens and one that refuses connections.
      res.writeHead(301, { Location: req.url?.includes('ping') ? `http://127.0.0.1:${closedPort}/x` : `http://127.0.0.1:${trap.port}/stolen${req.url}` });
      res.end();
    });
    await new Promise<void>((resolve) => engine.listen(0, '127.0.0.1', resolve));
    const uncaught: unknown[] = [];
    const record = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', record);
    try {
      const client = new DockerClient({ host: '127.0.0.1', port: (engine.address() as net.AddressInfo).port, protocol: 'http' });
      const attempts: Array<() => Promise<unknown>> = [
        () => client.ping(),
        () => client.getImage('pythonruntime').inspect(),
        () => client.listContainers({ all: true }),
        () => client.createContainer({ Image: 'pythonruntime' }),
        () => client.pull('pythonruntime'),
        () => client.getContainer('abc').remove({ force: true }),
      ];
      for (const attempt of attempts) {
        const err = await attempt().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(DockerRedirectError);
        expect((err as Error).message).toMatch(/^the Docker engine answered (GET|POST|DELETE) \/\S+ with a redirect, which is never followed$/);
      }
      // A refused connection at the Location would surface as an uncaught error on a later turn.
      await new Promise((resolve) => setImmediate(resolve));
      expect(trap.hits).toEqual([]);
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', record);
      await new Promise<void>((resolve) => engine.close(() => resolve()));
      await trap.close();
    }
  });

  test('a worker whose engine redirects image requests stays up: no request reaches the Location, the calls fail with the reason, others run', async () => {
    const trap = await trapServer();
    const closedPort = await freePort();
    const engine = await redirectingEngine([
      [/\/images\/127\.0\.0\.1:1\/faas-trap\/listening/, `http://127.0.0.1:${trap.port}/stolen`],
      [/\/images\/127\.0\.0\.1:1\/faas-trap\/closed/, `http://127.0.0.1:${closedPort}/stolen`],
      // Pulls are answered here too: nothing this test registers is ever fetched from a network.
      [/\/images\/create/, `http://127.0.0.1:${closedPort}/stolen`],
    ]);
    try {
      const worker = await restartWorker({ DOCKER_HOST: `tcp://127.0.0.1:${engine.port}` });
      for (const kind of ['listening', 'closed']) {
        expect((await platform.json('POST', '/v1/runtimes', { ...PROC, name: `trap-${kind}`, image: `127.0.0.1:1/faas-trap/${kind}:latest` })).status).toBe(201);
        await deploy(`trap-${kind}`, `trapped-${kind}`, await packageOf({ 'main.py': 'print(1)\n' }));
      }
      // The worker looked at both images when they were registered (its warm-up) and again for the calls.
      for (const kind of ['listening', 'closed']) {
        const final = await call(`trapped-${kind}`);
        expect(final.status).toBe('ERROR');
        expect(final.error).toContain(`the Docker engine answered GET /images/127.0.0.1:1/faas-trap/${kind}:latest/json with a redirect, which is never followed`);
      }
      expect(engine.redirected.filter((r) => r.includes('closed')).length).toBeGreaterThanOrEqual(1);
      expect(trap.hits).toEqual([]);
      expect(worker.alive).toBe(true);
      // Through the same engine, a function of a sound runtime runs.
      expect(await call('hello')).toMatchObject({ status: 'DONE', result: '"hello"' });
      expect(worker.alive).toBe(true);
    } finally {
      for (const kind of ['listening', 'closed']) {
        await platform.json('DELETE', `/v1/functions/trapped-${kind}`);
        await platform.json('DELETE', `/v1/runtimes/trap-${kind}`);
      }
      await restartWorker();
      await engine.close();
      await trap.close();
    }
  });

  test('a registry the operator has not listed is refused at registration: 400 with the setting named, nothing stored', async () => {
    for (const image of ['169.254.169.254/latest/meta-data', 'registry.example.com:5000/team/py:v1', '[fd00::1]:5000/py']) {
      const answer = await platform.json('POST', '/v1/runtimes', { ...PROC, name: 'far-away', image });
      expect({ image, status: answer.status, code: answer.body.error?.code }).toEqual({ image, status: 400, code: 'BAD_REQUEST' });
      expect(answer.body.error.message).toContain('FAAS_ALLOWED_REGISTRIES');
    }
    expect((await listedRuntimes()).map((r) => r.name)).not.toContain('far-away');
  });

  test('a stored runtime naming a registry not listed is never pulled by a worker: no pull reaches the engine, its calls end image_missing with the reason', async () => {
    // Any pull that did reach this engine would be answered here, never passed on to a network.
    const engine = await redirectingEngine([[/\/images\/create/, 'http://127.0.0.1:1/never']]);
    try {
      await restartWorker({ DOCKER_HOST: `tcp://127.0.0.1:${engine.port}` });
      await db.putRuntime({ ...PROC, mode: 'process', name: 'far-stored', image: 'registry.invalid:5000/pythonruntime', registeredAt: new Date().toISOString() });
      await deploy('far-stored', 'far', await packageOf({ 'main.py': 'print(1)\n' }));
      const final = await call('far');
      expect(final).toMatchObject({ status: 'ERROR', reason: 'image_missing' });
      expect(final.error).toContain('FAAS_ALLOWED_REGISTRIES');
      expect(engine.redirected.filter((r) => r.includes('registry.invalid'))).toEqual([]);
      expect(await call('hello')).toMatchObject({ status: 'DONE', result: '"hello"' });
    } finally {
      await platform.json('DELETE', '/v1/functions/far');
      await platform.json('DELETE', '/v1/runtimes/far-stored');
      await restartWorker();
      await engine.close();
    }
  });

  test('a runtime stored by an older version with a hostile image is skipped by a restarted worker, its calls fail with the reason, and others run', async () => {
    // As an older version stored it: straight into db-service, past the api's check.
    await db.putRuntime({ ...PROC, mode: 'process', name: 'stored-evil', image: '../../127.0.0.1:1/x?', registeredAt: new Date().toISOString() });
    await deploy('stored-evil', 'on-evil', await packageOf({ 'main.py': 'print(1)\n' }));
    const worker = await restartWorker();
    await until(async () => workerLog(), (log) => log.includes('runtime skipped: its record is not valid') && log.includes('stored-evil'), 10_000, 'the worker skipping the stored runtime');
    const final = await call('on-evil');
    expect(final).toMatchObject({ status: 'ERROR', reason: 'image_missing' });
    expect(final.error).toBe(
      'runtime "stored-evil" cannot run calls: its image "../../127.0.0.1:1/x?" is not a valid Docker image reference ([registry[:port]/]path[:tag][@sha256:digest]): it contains "?"; register the runtime again with a valid image',
    );
    expect(await call('hello')).toMatchObject({ status: 'DONE', result: '"hello"' });
    expect(worker.alive).toBe(true);
    // The stored record is still listed (an operator removes it), and a second restart is as calm.
    expect((await listedRuntimes()).map((r) => r.name)).toContain('stored-evil');
    const again = await restartWorker();
    expect(await call('hello')).toMatchObject({ status: 'DONE' });
    expect(again.alive).toBe(true);
  });

  describe('a runtime image with a VOLUME', () => {
    let watch: Awaited<ReturnType<typeof watchEvents>>;
    const volumesBefore = new Set<string>();
    /** What the function found at /data and how far it could fill it. */
    const probe = [
      'import errno, json, os',
      'def probe():',
      '    fstype = next((l.split(" - ")[1].split()[0] for l in open("/proc/self/mountinfo") if l.split()[4] == "/data"), None)',
      '    written, error = 0, None',
      '    try:',
      '        with open("/data/fill", "wb") as f:',
      `            for _ in range(${TMPFS_MB * 2}):`,
      '                f.write(b"x" * (1 << 20))',
      '                f.flush()',
      '                written += 1 << 20',
      '    except OSError as e:',
      '        error = errno.errorcode.get(e.errno, str(e.errno))',
      '    return {"fstype": fstype, "owner": os.stat("/data").st_uid, "written": written, "error": error}',
    ].join('\n');

    beforeAll(async () => {
      for (const v of (await docker.listVolumes()).Volumes ?? []) volumesBefore.add(v.Name);
      watch = await watchEvents();
      const volumeRuntimes = [
        { ...PROC, name: 'volproc', image: volumeImage },
        { ...PROC, name: 'volhandler', image: volumeImage, run: 'python3 /opt/faas/handler.py', mode: 'handler' },
      ];
      for (const runtime of volumeRuntimes) expect((await platform.json('POST', '/registerRuntime', runtime)).status).toBe(201);
    });
    afterAll(() => watch?.stop());

    /** Volumes mounted into containers of this platform, by the containers' role. */
    const mountedVolumes = () => {
      const roles = new Map<string, string>();
      for (const e of watch.events) if (e.Type === 'container' && e.Actor.Attributes['io.faas.platform'] === platform.label) roles.set(e.Actor.ID, e.Actor.Attributes['io.faas.role'] ?? '?');
      return watch.events
        .filter((e) => e.Type === 'volume' && e.Action === 'mount' && roles.has(e.Actor.Attributes.container ?? ''))
        .map((e) => ({ volume: e.Actor.ID, destination: e.Actor.Attributes.destination, role: roles.get(e.Actor.Attributes.container!)! }));
    };

    test('process mode: /data is a tmpfs of the cap owned by the function user, and writing past it fails ENOSPC', async () => {
      await deploy('volproc', 'fill-proc', await packageOf({ 'main.py': `${probe}\nprint(json.dumps(probe()))\n` }));
      const final = await call('fill-proc');
      expect(final.status).toBe('DONE');
      const found = JSON.parse(final.result);
      expect(found).toMatchObject({ fstype: 'tmpfs', owner: 65534, error: 'ENOSPC' });
      expect(found.written).toBeLessThanOrEqual(TMPFS_MB * 1024 * 1024);
    });

    test('handler mode (stem cells included): /data is a tmpfs of the cap, and writing past it fails ENOSPC', async () => {
      await deploy('volhandler', 'fill-handler', await packageOf({ 'handler.py': `${probe}\n\ndef handle(params):\n    return probe()\n` }));
      // Twice: a cold container, then the warm one.
      for (let i = 0; i < 2; i += 1) {
        const final = await call('fill-handler');
        expect(final.status).toBe('DONE');
        const found = JSON.parse(final.result);
        expect(found).toMatchObject({ fstype: 'tmpfs', owner: 65534, error: 'ENOSPC' });
        expect(found.written).toBeLessThanOrEqual(TMPFS_MB * 1024 * 1024);
      }
    });

    test('a VOLUME over the function folder refuses the function with the reason; nothing is built', async () => {
      execFileSync('docker', ['build', '-q', '-t', `${tag}-ws`, '-'], { input: `FROM pythonruntime\nLABEL io.faas.platform=${platform.label}\nVOLUME /ws\n`, stdio: ['pipe', 'pipe', 'pipe'] });
      expect((await platform.json('POST', '/registerRuntime', { ...PROC, name: 'volws', image: `${tag}-ws:latest` })).status).toBe(201);
      await deploy('volws', 'hidden-code', await packageOf({ 'main.py': 'print(1)\n' }));
      const final = await call('hidden-code');
      expect(final).toMatchObject({ status: 'ERROR', reason: 'dependencies_failed' });
      expect(final.error).toContain('VOLUME /ws');
      const images = await docker.listImages({ filters: { label: [`io.faas.platform=${platform.label}`, 'io.faas.role=prepare'] } });
      expect(images.filter((i) => (i.RepoTags ?? []).some((t) => t.includes('/volws:')))).toEqual([]);
    });

    test('no container got a volume, the dependencies step included, and no anonymous volume of this platform is left on the host', async () => {
      // Containers of a function are removed with their call, or when the warm ones are retired.
      expect((await platform.json('DELETE', '/v1/functions/fill-handler')).status).toBe(204);
      await until(() => platform.containers(['io.faas.function=fill-handler']), (left) => left.length === 0, 30_000, 'the warm containers removed');
      const mounted = mountedVolumes();
      expect(mounted).toEqual([]);
      const now = new Set(((await docker.listVolumes()).Volumes ?? []).map((v) => v.Name));
      expect(mounted.filter((m) => now.has(m.volume))).toEqual([]);
      expect([...now].filter((name) => !volumesBefore.has(name) && mounted.some((m) => m.volume === name))).toEqual([]);
    });
  });
});
