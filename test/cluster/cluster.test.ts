import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../../cli/actions/images';
import { freePort } from '../helpers/ports';
import { ensureClusterBaseImages } from '../../cli/actions/images';
import { composeCommand, docker, extraCaCerts, imageExists, run } from './compose';

const BIN = path.join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
const DICE = path.join(PROJECT_ROOT, 'runtimes', 'python', 'dice');

/**
 * The compose cluster on one machine: registry, db-service, api and two workers, with host networking
 * on 127.0.0.1 (docker-compose.host.yml) and ports of its own. A runtime image goes through the
 * registry: built and pushed, removed here, pulled by the workers on registration.
 */
describe('the docker-compose cluster', () => {
  const label = `t${randomBytes(4).toString('hex')}`;
  const project = `faasct${label.slice(1)}`;
  const work = mkdtempSync(path.join(os.tmpdir(), 'faas-cluster-'));
  const compose = [...composeCommand(), '-p', project, '-f', 'docker-compose.yml', '-f', 'docker-compose.host.yml'];
  let env: NodeJS.ProcessEnv = {};
  let url = '';
  let registry = '';
  const timings: Record<string, number> = {};

  const faas = (args: string[]) => run([process.execPath, BIN, '--url', url, ...args], { env: { ...process.env, FAAS_CONFIG: path.join(work, 'config.json') } });
  const cluster = (args: string[], timeoutMs?: number) => run([...compose, ...args], { env, timeoutMs });
  const timed = async <T>(name: string, step: () => Promise<T>): Promise<T> => {
    const started = Date.now();
    try {
      return await step();
    } finally {
      timings[name] = Date.now() - started;
    }
  };
  const health = async () => {
    try {
      const response = await fetch(`${url}/health`);
      return (await response.json()) as { status: string; workers: { connected: number; nodes: string[] } };
    } catch {
      return undefined;
    }
  };

  beforeAll(async () => {
    const [api, db, worker, reg] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    url = `http://127.0.0.1:${api}`;
    registry = `127.0.0.1:${reg}`;
    const bases = await timed('base images', () => ensureClusterBaseImages());
    env = {
      ...process.env,
      FAAS_API_PORT: String(api),
      FAAS_DB_PORT: String(db),
      FAAS_WORKER_PORT: String(worker),
      FAAS_REGISTRY_PORT: String(reg),
      FAAS_PLATFORM_LABEL: label,
      FAAS_NODE_IMAGE: bases.node,
      FAAS_REGISTRY_IMAGE: bases.registry,
      FAAS_NPM_CA_CERTS: extraCaCerts(),
      FAAS_WORKER_CAPACITY: '2',
    };
    const built = await timed('build', () => cluster(['build', '-q']));
    if (built.code !== 0) throw new Error(`compose build failed:\n${built.stderr.slice(-3000)}`);
    const up = await timed('up', () => cluster(['up', '-d', '--scale', 'worker=2'], 300_000));
    if (up.code !== 0) throw new Error(`compose up failed:\n${up.stderr.slice(-3000)}`);
    await timed('healthy', async () => {
      const deadline = Date.now() + 120_000;
      while (Date.now() < deadline) {
        const h = await health();
        if (h?.status === 'ok' && h.workers.connected === 2) return;
        await new Promise((r) => setTimeout(r, 500));
      }
      throw new Error(`the cluster did not report two workers: ${JSON.stringify(await health())}\n${(await cluster(['logs', '--no-color', '--tail', '40'])).stdout}`);
    });
  }, 900_000);

  afterAll(async () => {
    // Whatever the tests did, nothing of the cluster stays behind.
    await cluster(['down', '-v', '--remove-orphans', '-t', '30'], 180_000);
    for (const c of await docker.listContainers({ all: true, filters: { label: [`io.faas.platform=${label}`] } })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    for (const i of await docker.listImages({ filters: { label: [`io.faas.platform=${label}`] } })) await docker.getImage(i.Id).remove({ force: true }).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
    process.stdout.write(`cluster timings (ms): ${JSON.stringify(timings)}\n`);
  }, 300_000);

  test('a runtime pushed to the registry is pulled by each worker, and both workers serve calls', async () => {
    const image = `${registry}/faas-cluster-python:${label}`;
    const built = await timed('runtime build+push', () => faas(['runtime', 'build', path.join(PROJECT_ROOT, 'runtimes', 'python'), '--tag', `faas-cluster-python:${label}`, '--label', `io.faas.platform=${label}`, '--registry', registry, '--json']));
    expect(built.stderr).toBe('');
    expect(JSON.parse(built.stdout)).toMatchObject({ image, pushed: true });
    const catalog = (await (await fetch(`http://${registry}/v2/_catalog`)).json()) as { repositories: string[] };
    expect(catalog.repositories).toContain('faas-cluster-python');
    // The local copy goes: only the registry has it now.
    await docker.getImage(image).remove({ force: true });
    expect(await imageExists(image)).toBe(false);

    const rt = await faas(['runtime', 'register', '--name', 'clusterpy', '--image', image, '--path', '/ws', '--deps', 'pip3 install -r requirements.txt', '--run', 'python3 test.py']);
    expect(rt.code).toBe(0);
    await timed('pull', async () => {
      const deadline = Date.now() + 180_000;
      while (!(await imageExists(image)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    });
    expect(await imageExists(image)).toBe(true);
    expect((await faas(['fn', 'deploy', DICE, '--runtime', 'clusterpy'])).code).toBe(0);

    const nodes = new Set<string>();
    await timed('calls on both workers', async () => {
      for (let round = 0; round < 10 && nodes.size < 2; round++) {
        const calls = await Promise.all(
          Array.from({ length: 6 }, async () => {
            const response = await fetch(`${url}/invokeFunction?wait=true`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ funcName: 'dice', params: { roll: '2d6' } }) });
            return (await response.json()) as { status: string; node: string; result: string; error?: string };
          }),
        );
        for (const call of calls) {
          expect(call).toMatchObject({ status: 'DONE' });
          expect(JSON.parse(call.result)).toHaveLength(2);
          nodes.add(call.node);
        }
      }
    });
    const workers = JSON.parse((await faas(['workers', '--json'])).stdout) as { nodeId: string }[];
    expect(workers).toHaveLength(2);
    expect([...nodes].sort()).toEqual(workers.map((w) => w.nodeId).sort());

    const logs = (await cluster(['logs', '--no-color', 'worker'])).stdout;
    expect(logs).toContain('runtime image missing on this node: pulling it');
    expect(logs).toContain('runtime image pulled');
    expect(logs).toContain(image);
  });

  test('SIGTERM on a worker lets its running call finish; the other worker goes on serving', async () => {
    const nap = path.join(work, 'nap');
    mkdirSync(nap);
    writeFileSync(path.join(nap, 'test.py'), 'import json, sys, time\np = json.load(sys.stdin)\ntime.sleep(float(p.get("s", 3)))\nprint(json.dumps("slept"))\n');
    writeFileSync(path.join(nap, 'requirements.txt'), '');
    expect((await faas(['fn', 'deploy', nap, '--runtime', 'clusterpy'])).code).toBe(0);
    expect((await faas(['invoke', 'nap', '-p', 's=0'])).stdout.trim()).toBe('"slept"');

    const started = await Promise.all([1, 2].map(async () => Number((await faas(['invoke', 'nap', '-p', 's=4', '--async', '-q'])).stdout)));
    // Wait until one call runs, then stop the worker that holds it.
    let running: { callNum: number; node: string } | undefined;
    const deadline = Date.now() + 60_000;
    while (!running && Date.now() < deadline) {
      for (const n of started) {
        const call = JSON.parse((await faas(['call', 'get', String(n), '--json'])).stdout) as { callNum: number; status: string; node?: string };
        if (call.status === 'RUNNING' && call.node) running = { callNum: call.callNum, node: call.node };
      }
      if (!running) await new Promise((r) => setTimeout(r, 200));
    }
    expect(running).toBeDefined();
    const container = (await docker.listContainers({ filters: { label: [`com.docker.compose.project=${project}`, 'com.docker.compose.service=worker'] } })).find((c) => c.Id.startsWith(running!.node));
    expect(container).toBeDefined();
    await timed('worker drain', () => docker.getContainer(container!.Id).stop({ t: 30 }));
    const stopped = await docker.getContainer(container!.Id).inspect();
    expect(stopped.State.ExitCode).toBe(0);
    const ended = JSON.parse((await faas(['call', 'get', String(running!.callNum), '--json'])).stdout);
    expect(ended).toMatchObject({ status: 'DONE', result: '"slept"' });
    // Nothing of the stopped node is left running.
    expect(await docker.listContainers({ filters: { label: [`io.faas.node=${running!.node}`] } })).toEqual([]);

    for (const n of started) {
      const deadlineFinal = Date.now() + 60_000;
      let call = JSON.parse((await faas(['call', 'get', String(n), '--json'])).stdout);
      while (!['DONE', 'ERROR', 'TIMEOUT'].includes(call.status) && Date.now() < deadlineFinal) {
        await new Promise((r) => setTimeout(r, 250));
        call = JSON.parse((await faas(['call', 'get', String(n), '--json'])).stdout);
      }
      expect(call.status).toBe('DONE');
    }
    const after = await faas(['invoke', 'dice', '-p', 'roll=1d6', '--json']);
    expect(JSON.parse(after.stdout)).toMatchObject({ status: 'DONE' });
  });

  test('docker compose down leaves no container, volume or function container behind', async () => {
    const down = await timed('down', () => cluster(['down', '-v', '--remove-orphans', '-t', '30'], 180_000));
    expect(down.code).toBe(0);
    expect(await docker.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${project}`] } })).toEqual([]);
    expect(await docker.listContainers({ all: true, filters: { label: [`io.faas.platform=${label}`] } })).toEqual([]);
    const volumes = (await docker.listVolumes({ filters: { label: [`com.docker.compose.project=${project}`] } })).Volumes ?? [];
    expect(volumes.map((v) => v.Name)).toEqual([]);
  });
});

describe('the registry on a bare machine (Debian docker-registry, registry/start-local.sh)', () => {
  test('starts on the given address, takes a pushed runtime image, gives it back, stops', async () => {
    const port = await freePort();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-registry-'));
    const env = { ...process.env, FAAS_REGISTRY_ADDR: `127.0.0.1:${port}`, FAAS_REGISTRY_DIR: dir };
    const script = path.join(PROJECT_ROOT, 'registry', 'start-local.sh');
    const tag = `faas-bare-python:${randomBytes(4).toString('hex')}`;
    const image = `127.0.0.1:${port}/${tag}`;
    try {
      const started = await run(['bash', script], { env });
      expect(started).toMatchObject({ code: 0, stdout: `registry at 127.0.0.1:${port}, storage in ${dir}\n` });
      const built = await run([process.execPath, BIN, 'runtime', 'build', path.join(PROJECT_ROOT, 'runtimes', 'python'), '--tag', tag, '--label', `io.faas.test=${tag}`, '--registry', `127.0.0.1:${port}`, '-q']);
      expect(built).toMatchObject({ code: 0, stdout: `${image}\n` });
      await docker.getImage(image).remove({ force: true });
      const pulled = await run(['docker', 'pull', '-q', image]);
      expect(pulled.code).toBe(0);
      expect(await imageExists(image)).toBe(true);
    } finally {
      await docker.getImage(image).remove({ force: true }).catch(() => undefined);
      await run(['bash', script, 'stop'], { env });
      rmSync(dir, { recursive: true, force: true });
    }
    expect((await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.status, () => 'down'))).toBe('down');
  });
});
