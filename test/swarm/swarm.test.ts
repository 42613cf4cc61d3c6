import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hashPassword } from '../../api/auth';
import { PROJECT_ROOT } from '../../cli/actions/images';
import { docker, extraCaCerts, run } from '../cluster/compose';
import { freePort } from '../helpers/ports';

const BIN = path.join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
const DICE = path.join(PROJECT_ROOT, 'runtimes', 'python', 'dice');
const FINAL = ['DONE', 'ERROR', 'TIMEOUT'];

interface Health {
  status: string;
  workers: { connected: number; nodes: string[] };
}
interface CallView {
  callNum: number;
  status: string;
  node?: string;
  reason?: string;
  result?: string;
}

/**
 * The platform as a Docker Swarm stack on the real engine (`faas stack deploy`): a one-node swarm on
 * loopback unless one is active, the stack's registry, the platform images pushed to it, credentials as
 * Swarm secrets, the api published on a port of its own. Calls go through the stack's api; the workers
 * are rolled while calls run, then run replicated and scaled; `faas stack rm --volumes` leaves nothing.
 */
describe('the Docker Swarm stack', () => {
  const label = `s${randomBytes(4).toString('hex')}`;
  const stack = `faasst${label.slice(1)}`;
  const work = mkdtempSync(path.join(os.tmpdir(), 'faas-swarm-'));
  const secrets = path.join(work, 'secrets');
  const password = randomBytes(12).toString('hex');
  const channels = `/run/faas-${stack}`;
  const functionSecrets = `/dev/shm/faas-${stack}`;
  const namespace = `com.docker.stack.namespace=${stack}`;
  let madeSwarm = false;
  let apiPort = 0;
  let registryPort = 0;
  let url = '';
  const timings: Record<string, number> = {};

  const env = (): NodeJS.ProcessEnv => ({
    ...process.env,
    FAAS_CONFIG: path.join(work, 'config.json'),
    FAAS_PLATFORM_LABEL: label,
    FAAS_CHANNEL_DIR: channels,
    FAAS_SECRETS_DIR: functionSecrets,
    FAAS_WORKER_CAPACITY: '4',
    FAAS_NPM_CA_CERTS: extraCaCerts(),
  });
  const faas = (args: string[], timeoutMs?: number) => run([process.execPath, BIN, '--url', url, '--user', 'ops', '--password', password, ...args], { env: env(), timeoutMs });
  const stackDeploy = (extra: string[] = []) => faas(['stack', 'deploy', '--name', stack, '--api-port', String(apiPort), '--registry-port', String(registryPort), '--tag', label, '--secrets', secrets, '--json', ...extra], 900_000);
  const auth = { authorization: `Basic ${Buffer.from(`ops:${password}`).toString('base64')}` };
  const timed = async <T>(name: string, step: () => Promise<T>): Promise<T> => {
    const started = Date.now();
    try {
      return await step();
    } finally {
      timings[name] = Date.now() - started;
    }
  };
  const until = async <T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await check().catch(() => undefined);
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`${what}: not after ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 300));
    }
  };
  const health = async (): Promise<Health | undefined> => {
    try {
      return (await (await fetch(`${url}/health`)).json()) as Health;
    } catch {
      return undefined;
    }
  };
  const call = async (n: number): Promise<CallView> => (await (await fetch(`${url}/call/${n}`, { headers: auth })).json()) as CallView;
  const invokeAsync = async (fn: string, params: unknown): Promise<number | undefined> => {
    const response = await fetch(`${url}/invokeFunction`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ funcName: fn, params }) });
    return response.status === 202 || response.status === 200 ? ((await response.json()) as CallView).callNum : undefined;
  };
  const stackObjects = async () => ({
    services: (await run(['docker', 'service', 'ls', '-q', '--filter', `label=${namespace}`])).stdout.trim(),
    containers: (await docker.listContainers({ all: true, filters: { label: [namespace] } })).map((c) => c.Id),
    functionContainers: (await docker.listContainers({ all: true, filters: { label: [`io.faas.platform=${label}`] } })).map((c) => c.Id),
    networks: (await docker.listNetworks({ filters: { label: [namespace] } })).map((n) => n.Name),
    volumes: ((await docker.listVolumes({ filters: { label: [namespace] } })).Volumes ?? []).map((v) => v.Name),
    secrets: (await run(['docker', 'secret', 'ls', '--format', '{{.Name}}'])).stdout.split('\n').filter((n) => n.startsWith(`${stack}_`)),
  });

  beforeAll(async () => {
    const state = (await run(['docker', 'info', '--format', '{{.Swarm.LocalNodeState}}'])).stdout.trim();
    if (state === 'inactive') {
      const init = await run(['docker', 'swarm', 'init', '--advertise-addr', '127.0.0.1', '--listen-addr', '127.0.0.1:2377']);
      if (init.code !== 0) throw new Error(`docker swarm init failed: ${init.stderr}`);
      madeSwarm = true;
    }
    [apiPort, registryPort] = await Promise.all([freePort(), freePort()]);
    url = `http://127.0.0.1:${apiPort}`;
    mkdirSync(secrets, { mode: 0o700 });
    writeFileSync(path.join(secrets, 'auth_users'), `ops:${await hashPassword(password)}\n`, { mode: 0o600 });
    const deployed = await timed('deploy', () => stackDeploy());
    if (deployed.code !== 0) throw new Error(`faas stack deploy failed:\n${deployed.stderr.slice(-3000)}`);
  }, 900_000);

  afterAll(async () => {
    // Whatever the tests did, nothing of the stack stays behind.
    if (Object.values(await stackObjects()).some((list) => list.length > 0)) await faas(['stack', 'rm', '--name', stack, '--volumes'], 300_000);
    for (const c of await docker.listContainers({ all: true, filters: { label: [`io.faas.platform=${label}`] } })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    for (const i of await docker.listImages({ filters: { label: [`io.faas.platform=${label}`] } })) await docker.getImage(i.Id).remove({ force: true }).catch(() => undefined);
    // The platform images' tags go; their layers stay, the next build's cache.
    for (const i of await docker.listImages({ filters: { reference: [`127.0.0.1:${registryPort}/*/*:${label}`, `127.0.0.1:${registryPort}/*:${label}`] } })) {
      for (const tag of i.RepoTags ?? []) await docker.getImage(tag).remove({ noprune: true }).catch(() => undefined);
    }
    if (madeSwarm) await run(['docker', 'swarm', 'leave', '--force']);
    for (const dir of [work, channels, functionSecrets]) rmSync(dir, { recursive: true, force: true });
    process.stdout.write(`swarm timings (ms): ${JSON.stringify(timings)}\n`);
  }, 600_000);

  test('the stack serves calls through its api, with a runtime pulled from its registry, and refuses calls without a password', async () => {
    expect(await health()).toMatchObject({ status: 'ok', workers: { connected: 1 } });
    // Users come from a Swarm secret: the api is published on every interface and asks for them.
    expect((await fetch(`${url}/functions`)).status).toBe(401);
    const inspected = JSON.parse((await run(['docker', 'service', 'inspect', `${stack}_api`, `${stack}_db-service`, `${stack}_worker`])).stdout) as Array<{ Spec: { TaskTemplate: { ContainerSpec: { Env?: string[] } } } }>;
    for (const service of inspected) {
      for (const variable of service.Spec.TaskTemplate.ContainerSpec.Env ?? []) expect(variable).not.toMatch(/^FAAS_(CURVE_SECRET_KEY|CURVE_CLIENT_SECRET_KEY|API_PASSWORD|AUTH_USERS|SECRETS_KEY)=./);
    }

    const registry = `127.0.0.1:${registryPort}`;
    const image = `${registry}/swarm-python:${label}`;
    const built = await timed('runtime build+push', () => faas(['runtime', 'build', path.join(PROJECT_ROOT, 'runtimes', 'python'), '--tag', `swarm-python:${label}`, '--label', `io.faas.platform=${label}`, '--registry', registry, '--json']));
    expect(JSON.parse(built.stdout)).toMatchObject({ image, pushed: true });
    const catalog = (await (await fetch(`http://${registry}/v2/_catalog`)).json()) as { repositories: string[] };
    expect(catalog.repositories.sort()).toEqual(['faas/api', 'faas/db-service', 'faas/worker', 'swarm-python']);
    await docker.getImage(image).remove({ force: true });

    expect((await faas(['runtime', 'register', '--name', 'swarmpy', '--image', image, '--path', '/ws', '--deps', 'pip3 install -r requirements.txt', '--run', 'python3 test.py'])).code).toBe(0);
    expect((await faas(['fn', 'deploy', DICE, '--runtime', 'swarmpy'])).code).toBe(0);
    const rolled = await timed('first call', () => faas(['invoke', 'dice', '-p', 'roll=2d6', '--json'], 300_000));
    const done = JSON.parse(rolled.stdout) as CallView & { error?: string };
    expect({ status: done.status, error: done.error }).toEqual({ status: 'DONE', error: undefined });
    expect(JSON.parse(done.result!)).toHaveLength(2);
  });

  test('docker service update --force rolls the workers while calls run: every accepted call ends, none lost or stuck', async () => {
    const nap = path.join(work, 'nap');
    mkdirSync(nap);
    writeFileSync(path.join(nap, 'test.py'), 'import json, sys, time\np = json.load(sys.stdin)\ntime.sleep(float(p.get("s", 1)))\nprint(json.dumps("slept"))\n');
    writeFileSync(path.join(nap, 'requirements.txt'), '');
    expect((await faas(['fn', 'deploy', nap, '--runtime', 'swarmpy'])).code).toBe(0);
    expect(await faas(['invoke', 'nap', '-p', 's=0', '-q'], 120_000)).toMatchObject({ code: 0, stdout: '"slept"\n' });
    const before = (await health())!.workers.nodes;

    // Calls keep coming while the update runs, and until the new worker served some.
    const accepted: number[] = [];
    let refused = 0;
    let rolling = true;
    const load = (async () => {
      while (rolling) {
        const n = await invokeAsync('nap', { s: 1 });
        if (n === undefined) refused++;
        else accepted.push(n);
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    await until('calls running before the roll', async () => (accepted.length >= 4 ? true : undefined), 60_000);
    const update = await timed('rolling update', () => run(['docker', 'service', 'update', '--force', '--detach=false', `${stack}_worker`], { timeoutMs: 300_000 }));
    expect(update.code).toBe(0);
    const after = await until('the new worker connected', async () => {
      const h = await health();
      return h && h.workers.connected === 1 && !before.includes(h.workers.nodes[0]!) ? h.workers.nodes : undefined;
    }, 120_000);
    const rolledAt = accepted.length;
    await until('calls after the roll', async () => (accepted.length >= rolledAt + 4 ? true : undefined), 60_000);
    rolling = false;
    await load;

    // Every accepted call ends final; an ERROR says why.
    const ended = await timed('calls final', () =>
      until('every accepted call final', async () => {
        const calls = await Promise.all(accepted.map(call));
        return calls.every((c) => FINAL.includes(c.status)) ? calls : undefined;
      }, 180_000),
    );
    const byStatus: Record<string, number> = {};
    for (const c of ended) byStatus[c.status] = (byStatus[c.status] ?? 0) + 1;
    process.stdout.write(`rolling update: ${accepted.length} calls accepted, ${refused} refused, ended ${JSON.stringify(byStatus)} ${JSON.stringify(ended.filter((c) => c.status !== 'DONE').map((c) => `${c.reason}: ${(c as { error?: string }).error}`))}, nodes ${JSON.stringify([...new Set(ended.map((c) => c.node))])}\n`);
    expect(ended.map((c) => c.callNum).sort((a, b) => a - b)).toEqual([...accepted].sort((a, b) => a - b));
    expect(ended.filter((c) => c.status !== 'DONE' && !(c.status === 'ERROR' && c.reason))).toEqual([]);
    expect(ended.filter((c) => c.status === 'DONE').every((c) => c.result === '"slept"')).toBe(true);
    // Both the old worker and the new one served calls; the old one drained and left nothing behind.
    const nodes = new Set(ended.map((c) => c.node));
    expect(nodes.has(before[0]!) && nodes.has(after[0]!)).toBe(true);
    expect(await docker.listContainers({ all: true, filters: { label: [`io.faas.node=${before[0]}`] } })).toEqual([]);
    const tasks = (await run(['docker', 'service', 'ps', `${stack}_worker`, '--format', '{{.DesiredState}} {{.CurrentState}}'])).stdout.split('\n').filter(Boolean);
    expect(tasks.filter((t) => t.startsWith('Running'))).toHaveLength(1);
    expect(tasks.filter((t) => t.startsWith('Shutdown')).every((t) => /Shutdown\s+(Complete|Shutdown)/.test(t))).toBe(true);
  });

  test('replicated workers: docker service scale changes how many serve', async () => {
    const removed = await run(['docker', 'service', 'rm', `${stack}_worker`]);
    expect(removed.code).toBe(0);
    await until('the global workers gone', async () => ((await docker.listContainers({ all: true, filters: { label: [`com.docker.swarm.service.name=${stack}_worker`] } })).length === 0 ? true : undefined), 120_000);
    const deployed = await timed('deploy replicated', () => stackDeploy(['--replicated', '1']));
    expect(deployed.code).toBe(0);
    expect((await run(['docker', 'service', 'inspect', `${stack}_worker`, '--format', '{{json .Spec.Mode}}'])).stdout.trim()).toBe('{"Replicated":{"Replicas":1}}');

    const scaled = await timed('scale to 2', () => run(['docker', 'service', 'scale', '--detach=false', `${stack}_worker=2`], { timeoutMs: 180_000 }));
    expect(scaled.code).toBe(0);
    const two = await until('two workers connected', async () => ((await health())?.workers.connected === 2 ? (await health())!.workers.nodes : undefined), 120_000);
    expect(two).toHaveLength(2);
    // Both serve: calls land on each.
    const nodes = new Set<string>();
    const made: CallView[] = [];
    await until('calls on both workers', async () => {
      const calls = await Promise.all(Array.from({ length: 6 }, async () => (await (await fetch(`${url}/invokeFunction?wait=true`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ funcName: 'dice', params: { roll: '1d6' } }) })).json()) as CallView));
      made.push(...calls);
      for (const c of calls) if (c.status === 'DONE') nodes.add(c.node!);
      return nodes.size === 2 ? true : undefined;
    }, 120_000);
    // Every call made while looking for both workers ended DONE (checked here: inside the wait a failed check would only retry).
    expect(made.filter((c) => c.status !== 'DONE')).toEqual([]);

    const down = await timed('scale to 1', () => run(['docker', 'service', 'scale', '--detach=false', `${stack}_worker=1`], { timeoutMs: 180_000 }));
    expect(down.code).toBe(0);
    await until('one worker connected', async () => ((await health())?.workers.connected === 1 ? true : undefined), 120_000);
    expect((await run(['docker', 'service', 'ls', '--filter', `name=${stack}_worker`, '--format', '{{.Replicas}}'])).stdout.trim()).toBe('1/1');
    expect(JSON.parse((await faas(['invoke', 'dice', '-p', 'roll=1d6', '--json'])).stdout)).toMatchObject({ status: 'DONE' });
  });

  test('faas stack rm --volumes leaves no service, container, secret, network or volume of the stack', async () => {
    const before = await stackObjects();
    expect(before.volumes.sort()).toEqual([`${stack}_api-data`, `${stack}_db-data`, `${stack}_registry-data`]);
    expect(before.secrets).toHaveLength(9);
    const removed = await timed('stack rm', () => faas(['stack', 'rm', '--name', stack, '--volumes', '--json'], 300_000));
    expect(removed.code).toBe(0);
    expect(await stackObjects()).toEqual({ services: '', containers: [], functionContainers: [], networks: [], volumes: [], secrets: [] });
  });
});
