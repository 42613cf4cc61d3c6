import { createWriteStream, mkdirSync } from 'node:fs';
import path from 'node:path';
import { dockerClient } from '../../protocol/docker-client';
import { loadApiConfig } from '../../api/config';
import { loadDbConfig } from '../../db-service/config';
import { ConfigError } from '../../protocol/config';
import { describeExit, startChild, type ChildHandle } from '../../protocol/supervisor';
import { loadWorkerConfig } from '../../worker/config';
import { ensureRuntimeImages, PROJECT_ROOT } from './images';
import { packExamples } from './pack';

interface Service {
  name: string;
  script: string;
  /** Between SIGTERM and SIGKILL when stopping. */
  graceMs: number;
  child?: ChildHandle;
  restarts: number;
  startedAt: number;
}

export interface UpOptions {
  port: number;
  host: string;
  dataDir: string;
}

/**
 * A one-node platform in the foreground: db-service, api and one worker, each restarted if it
 * crashes, their logs in <data>/logs. Their configuration is checked before any starts. Ctrl-C
 * stops the worker first (it removes its containers), then the api, then db-service; a second
 * Ctrl-C kills what is left.
 */
export async function up(options: UpOptions): Promise<void> {
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const dataDir = path.resolve(options.dataDir);
  const logDir = path.join(dataDir, 'logs');
  const env = {
    ...process.env,
    FAAS_API_HOST: options.host,
    FAAS_API_PORT: String(options.port),
    FAAS_API_URL: process.env.FAAS_API_URL ?? `http://${options.host === '0.0.0.0' ? '127.0.0.1' : options.host}:${options.port}`,
    FAAS_DB_DIR: process.env.FAAS_DB_DIR ?? path.join(dataDir, 'db'),
    FAAS_API_DATA_DIR: process.env.FAAS_API_DATA_DIR ?? path.join(dataDir, 'api'),
    FAAS_WORKER_DATA_DIR: process.env.FAAS_WORKER_DATA_DIR ?? path.join(dataDir, 'worker'),
  };
  let drainGraceMs: number;
  try {
    loadDbConfig(env);
    loadApiConfig(env);
    drainGraceMs = loadWorkerConfig(env).drainGraceMs;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`faas up: bad configuration: ${err.message}\n`);
    process.exitCode = 2;
    return;
  }
  try {
    await dockerClient().ping();
  } catch {
    process.stderr.write(
      `No Docker engine answers at ${process.env.DOCKER_HOST ?? '/var/run/docker.sock'}: start one (\`sudo systemctl start docker\`, or run \`dockerd\` as root) and run \`npm start\` again.\n`,
    );
    process.exitCode = 1;
    return;
  }
  await ensureRuntimeImages({ say });
  await packExamples();

  mkdirSync(logDir, { recursive: true });
  const dist = path.join(PROJECT_ROOT, 'dist');
  const services: Service[] = [
    { name: 'db-service', script: path.join(dist, 'db-service', 'main.js'), graceMs: 20_000, restarts: 0, startedAt: 0 },
    { name: 'api', script: path.join(dist, 'api', 'main.js'), graceMs: 20_000, restarts: 0, startedAt: 0 },
    // The worker lets running calls go on for its drain grace, then cleans up for up to 10 s.
    { name: 'worker', script: path.join(dist, 'worker', 'main.js'), graceMs: drainGraceMs + 15_000, restarts: 0, startedAt: 0 },
  ];
  let stopping = false;

  const start = (service: Service) => {
    const log = createWriteStream(path.join(logDir, `${service.name}.log`), { flags: 'a' });
    const child = startChild({ name: service.name, command: process.execPath, args: [service.script], env, stdio: ['ignore', 'pipe', 'pipe'], graceMs: service.graceMs });
    child.child.stdout!.pipe(log);
    child.child.stderr!.on('data', (chunk: Buffer) => {
      log.write(chunk);
      process.stderr.write(`[${service.name}] ${chunk}`);
    });
    service.child = child;
    service.startedAt = Date.now();
    void child.exited.then((exit) => {
      if (stopping) return;
      // A crash is restarted, with a growing pause if it keeps crashing right after start.
      const quick = Date.now() - service.startedAt < 10_000;
      service.restarts = quick ? service.restarts + 1 : 0;
      const delay = Math.min(500 * 2 ** service.restarts, 30_000);
      say(`${service.name} ${describeExit(exit)}; restarting in ${delay} ms`);
      setTimeout(() => !stopping && start(service), delay);
    });
  };

  for (const service of services) start(service);
  const url = `http://${options.host}:${options.port}`;
  const deadline = Date.now() + 60_000;
  let healthy = false;
  while (!healthy && Date.now() < deadline && !stopping) {
    try {
      healthy = (await fetch(`${url}/health`)).status === 200;
    } catch {
      /* not yet */
    }
    if (!healthy) await new Promise((r) => setTimeout(r, 250));
  }
  say(healthy ? `faas platform up: api ${url}, data in ${dataDir}, logs in ${logDir}. Ctrl-C stops it.` : `the platform did not become healthy within 60 s; see the logs in ${logDir}`);

  await new Promise<void>((resolve) => {
    const stop = async () => {
      if (stopping) {
        say('killing…');
        for (const service of services) void service.child?.stop({ signal: 'SIGKILL' });
        return;
      }
      stopping = true;
      say('stopping…');
      for (const service of [...services].reverse()) {
        const exit = await service.child?.stop();
        if (exit?.forced) say(`${service.name} did not stop within ${service.graceMs} ms and was killed`);
      }
      say('stopped');
      resolve();
    };
    process.on('SIGINT', () => void stop());
    process.on('SIGTERM', () => void stop());
  });
}
