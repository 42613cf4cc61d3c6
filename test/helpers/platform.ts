import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { PROJECT_ROOT } from '../../cli/actions/images';
import { startChild, type ChildExit, type ChildHandle } from '../../protocol/supervisor';
import { freePort } from './ports';

const DIST = path.join(PROJECT_ROOT, 'dist');
export const docker = new Docker();

export type ServiceName = 'db' | 'api' | 'worker';
const SCRIPTS: Record<ServiceName, string> = {
  db: path.join(DIST, 'db-service', 'main.js'),
  api: path.join(DIST, 'api', 'main.js'),
  worker: path.join(DIST, 'worker', 'main.js'),
};

export interface PlatformOptions {
  env?: NodeJS.ProcessEnv;
  services?: ServiceName[];
}

/**
 * The real processes (db-service, api, worker) from dist/, on free loopback ports, with a fresh
 * data folder and a platform label of their own, so that cleanup finds exactly what they made.
 */
export class TestPlatform {
  readonly label = `t${randomBytes(4).toString('hex')}`;
  readonly dataDir = mkdtempSync(path.join(os.tmpdir(), 'faas-test-'));
  readonly procs = new Map<ServiceName, ChildHandle>();
  readonly extraWorkers = new Map<string, ChildHandle>();
  env: NodeJS.ProcessEnv = {};
  url = '';

  static async start(options: PlatformOptions = {}): Promise<TestPlatform> {
    const platform = new TestPlatform();
    const [httpPort, dbPort, workerPort] = await Promise.all([freePort(), freePort(), freePort()]);
    platform.url = `http://127.0.0.1:${httpPort}`;
    platform.env = {
      ...process.env,
      FAAS_LOG_LEVEL: 'info',
      FAAS_API_HOST: '127.0.0.1',
      FAAS_API_PORT: String(httpPort),
      FAAS_API_URL: platform.url,
      FAAS_DB_ENDPOINT: `tcp://127.0.0.1:${dbPort}`,
      FAAS_WORKER_ENDPOINT: `tcp://127.0.0.1:${workerPort}`,
      FAAS_DB_DIR: path.join(platform.dataDir, 'db'),
      FAAS_API_DATA_DIR: path.join(platform.dataDir, 'api'),
      FAAS_WORKER_DATA_DIR: path.join(platform.dataDir, 'worker'),
      FAAS_PLATFORM_LABEL: platform.label,
      FAAS_NODE_ID: `node-${platform.label}`,
      FAAS_WORKER_CAPACITY: '2',
      ...options.env,
    };
    for (const name of options.services ?? ['db', 'api', 'worker']) platform.spawn(name);
    if ((options.services ?? ['worker']).includes('worker')) await platform.waitHealthy();
    return platform;
  }

  spawn(name: ServiceName, extraEnv: NodeJS.ProcessEnv = {}): ChildHandle {
    const child = this.startProcess(name, SCRIPTS[name], { ...this.env, ...extraEnv });
    this.procs.set(name, child);
    return child;
  }

  /** Another worker, as if on another node: its own node id and data folder. */
  spawnWorker(node: string, extraEnv: NodeJS.ProcessEnv = {}): ChildHandle {
    const env = { ...this.env, FAAS_NODE_ID: `node-${this.label}-${node}`, FAAS_WORKER_DATA_DIR: path.join(this.dataDir, `worker-${node}`), ...extraEnv };
    const child = this.startProcess(`worker-${node}`, SCRIPTS.worker, env);
    this.extraWorkers.set(node, child);
    return child;
  }

  /** Stops a service and resolves when it is gone, with how it ended (undefined if it was never started). */
  async stopService(name: ServiceName, signal: NodeJS.Signals = 'SIGTERM'): Promise<ChildExit | undefined> {
    return this.procs.get(name)?.stop({ signal });
  }

  async stopWorker(node: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<ChildExit | undefined> {
    return this.extraWorkers.get(node)?.stop({ signal });
  }

  /** Its output goes to <data>/<log>.log; past 20 s after SIGTERM it is killed. */
  private startProcess(log: string, script: string, env: NodeJS.ProcessEnv): ChildHandle {
    const out = createWriteStream(path.join(this.dataDir, `${log}.log`), { flags: 'a' });
    // FAAS_PROFILE_DIR: each process (and each miniworker, which inherits it) writes a CPU profile there.
    const profile = process.env.FAAS_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.FAAS_PROFILE_DIR}`] : [];
    const child = startChild({ name: log, command: process.execPath, args: [...profile, script], env, stdio: ['ignore', 'pipe', 'pipe'], graceMs: 20_000 });
    child.child.stdout!.pipe(out);
    child.child.stderr!.pipe(out);
    return child;
  }

  /** Waits until the api answers at all (healthy or not). */
  async waitApi(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        await fetch(`${this.url}/health`);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error(`api not answering within ${timeoutMs} ms; logs in ${this.dataDir}`);
  }

  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        if ((await fetch(`${this.url}/health`)).status === 200) return;
      } catch {
        /* not up yet */
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`platform not healthy within ${timeoutMs} ms; logs in ${this.dataDir}`);
  }

  /**
   * Removes this platform's containers until two lists half a second apart find none (within 30 s): a
   * worker killed while dockerd was creating one for it leaves a container that appears only later.
   */
  private async removeContainers(): Promise<void> {
    const deadline = Date.now() + 30_000;
    let quiet = 0;
    while (quiet < 2 && Date.now() < deadline) {
      const left = await this.containers().catch(() => []);
      quiet = left.length === 0 ? quiet + 1 : 0;
      for (const c of left) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
      if (quiet < 2) await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** Containers that carry this platform's label, running or not. */
  async containers(filters: string[] = []): Promise<Docker.ContainerInfo[]> {
    return docker.listContainers({ all: true, filters: { label: [`io.faas.platform=${this.label}`, ...filters] } });
  }

  async stop(): Promise<void> {
    try {
      for (const node of this.extraWorkers.keys()) await this.stopWorker(node);
      for (const name of ['worker', 'api', 'db'] as ServiceName[]) await this.stopService(name);
    } finally {
      await this.removeContainers();
    }
    const images = await docker.listImages({ filters: { label: [`io.faas.platform=${this.label}`] } });
    for (const image of images) await docker.getImage(image.Id).remove({ force: true }).catch(() => undefined);
    if (!process.env.FAAS_KEEP_TEST_DATA) rmSync(this.dataDir, { recursive: true, force: true });
  }

  async json<T = any>(method: string, route: string, body?: unknown): Promise<{ status: number; body: T; headers: Headers }> {
    const response = await fetch(`${this.url}${route}`, {
      method,
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: response.headers };
  }

  async upload(runtime: string, name: string, data: Buffer, filename = 'package.tar.gz', fields: Record<string, string> = {}): Promise<{ status: number; body: any }> {
    const form = new FormData();
    for (const [key, value] of Object.entries(fields)) form.append(key, value);
    form.append('module', new Blob([data]), filename);
    const response = await fetch(`${this.url}/registerFunction/${runtime}/${name}`, { method: 'POST', body: form });
    return { status: response.status, body: await response.json() };
  }

  /** Polls GET /call/:n until the call is final. */
  async waitFinal(callNum: number, timeoutMs = 90_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const { body } = await this.json('GET', `/call/${callNum}`);
      if (['DONE', 'ERROR', 'TIMEOUT'].includes(body.status)) return body;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`call ${callNum} not final within ${timeoutMs} ms`);
  }
}
