import { mkdirSync } from 'node:fs';
import { CommandFailed } from '../context';
import { docker, waitFor } from './docker-cli';
import { ensureClusterBaseImages } from './images';
import { makeStackSecrets, removeStackSecrets, type MadeSecrets } from './stack-secrets';

/**
 * The platform as a Docker Swarm stack (docker-compose.yml with docker-compose.swarm.yml), deployed in
 * the order it needs: the stack's registry, the platform images built and pushed to it, the secrets,
 * then the stack. The engines pull from the registry as 127.0.0.1:<registry port>, published on the
 * manager (see docker-compose.swarm.yml).
 */
export const PLATFORM_TARGETS = ['db-service', 'api', 'worker'] as const;
const NAMESPACE = 'com.docker.stack.namespace';

export interface StackOptions {
  name: string;
  apiPort: number;
  registryPort: number;
  tag: string;
  /** Files whose content becomes the secret of their name (see stack-secrets.ts). */
  secretsDir?: string;
  /** Workers as a replicated service of this many, in place of one per node. */
  replicas?: number;
  /** How long to wait for the api to answer with workers connected; 0: do not wait. */
  waitMs: number;
  say: (line: string) => void;
}

export interface StackDeployed extends MadeSecrets {
  stack: string;
  api: string;
  registry: string;
  images: string[];
}

/** The settings docker-compose.swarm.yml reads, beside the FAAS_* ones of docker-compose.yml. */
export function stackEnv(o: Pick<StackOptions, 'name' | 'apiPort' | 'registryPort' | 'tag' | 'replicas'>, bases: { node: string; registry: string }): NodeJS.ProcessEnv {
  return {
    ...process.env,
    FAAS_STACK: o.name,
    FAAS_STACK_API_PORT: String(o.apiPort),
    FAAS_STACK_REGISTRY_PORT: String(o.registryPort),
    FAAS_IMAGE_PREFIX: `127.0.0.1:${o.registryPort}/faas`,
    FAAS_TAG: o.tag,
    FAAS_NODE_IMAGE: bases.node,
    FAAS_REGISTRY_IMAGE: bases.registry,
    ...(o.replicas !== undefined ? { FAAS_WORKER_REPLICAS: String(o.replicas) } : {}),
  };
}

/** The compose files of the stack. */
export function stackFiles(replicated: boolean): string[] {
  return ['-c', 'docker-compose.yml', '-c', 'docker-compose.swarm.yml', ...(replicated ? ['-c', 'docker-compose.swarm-replicated.yml'] : [])];
}

async function requireManager(): Promise<void> {
  const state = (await docker(['info', '--format', '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}'])).trim();
  if (state !== 'active true') throw new CommandFailed(`this Docker engine is not a Swarm manager (${state}): run \`docker swarm init\` first`);
}

/**
 * The stack's registry runs before the stack, so that the images can be pushed before any service
 * needs them: it is the stack's `registry` service, made here in its place (same name and namespace)
 * and then taken over by `docker stack deploy`.
 */
async function ensureRegistry(o: StackOptions, image: string): Promise<string> {
  const service = `${o.name}_registry`;
  const exists = await docker(['service', 'inspect', service, '--format', '{{.ID}}']).then(
    () => true,
    () => false,
  );
  if (!exists) {
    o.say(`starting the stack's registry (${service}) on 127.0.0.1:${o.registryPort}`);
    await docker([
      'service', 'create', '--detach', '--name', service,
      '--label', `${NAMESPACE}=${o.name}`,
      '--constraint', 'node.role == manager',
      '--publish', `mode=host,published=${o.registryPort},target=5000`,
      '--endpoint-mode', 'dnsrr',
      '--mount', `type=volume,source=${o.name}_registry-data,target=/var/lib/registry,volume-label=${NAMESPACE}=${o.name}`,
      '--env', 'REGISTRY_HTTP_ADDR=0.0.0.0:5000', '--env', 'REGISTRY_STORAGE_DELETE_ENABLED=true', '--env', 'FAAS_REGISTRY_PORT=5000',
      image,
    ]);
  }
  const registry = `127.0.0.1:${o.registryPort}`;
  await waitFor(`the registry at ${registry}`, async () => ((await fetch(`http://${registry}/v2/`, { signal: AbortSignal.timeout(2000) })).ok ? true : undefined), 120_000);
  return registry;
}

/** Folders the workers bind-mount from their node: Swarm does not make a missing one. */
function makeNodeFolders(): void {
  for (const dir of [process.env.FAAS_CHANNEL_DIR || '/run/faas-channels', process.env.FAAS_SECRETS_DIR || '/dev/shm/faas-secrets']) mkdirSync(dir, { recursive: true });
}

export async function stackDeploy(o: StackOptions): Promise<StackDeployed> {
  await requireManager();
  const bases = await ensureClusterBaseImages(o.say);
  const registry = await ensureRegistry(o, bases.registry);
  const images: string[] = [];
  for (const target of PLATFORM_TARGETS) {
    const image = `${registry}/faas/${target}:${o.tag}`;
    o.say(`building ${image}`);
    await docker(['build', '-q', '--target', target, '-t', image, '--build-arg', `NODE_IMAGE=${bases.node}`, '--build-arg', `NPM_CA_CERTS=${process.env.FAAS_NPM_CA_CERTS ?? ''}`, '.']);
    o.say(`pushing ${image}`);
    await docker(['push', '-q', image]);
    images.push(image);
  }
  const secrets = await makeStackSecrets(o.name, o.secretsDir);
  if (secrets.created.length > 0) o.say(`secrets made: ${secrets.created.map((n) => `${o.name}_${n}`).join(', ')}`);
  makeNodeFolders();
  o.say(`deploying the stack ${o.name}`);
  // Without --no-wait, until every service has converged (its tasks running and healthy, updates done).
  await docker(['stack', 'deploy', `--detach=${o.waitMs > 0 ? 'false' : 'true'}`, ...stackFiles(o.replicas !== undefined), o.name], { env: stackEnv(o, bases) });
  const api = `http://127.0.0.1:${o.apiPort}`;
  if (o.waitMs > 0) {
    o.say(`waiting for the api at ${api} and a worker`);
    await waitFor(
      `the stack's api with a worker`,
      async () => {
        const health = (await (await fetch(`${api}/health`, { signal: AbortSignal.timeout(2000) })).json()) as { status?: string; workers?: { connected?: number } };
        return health.status === 'ok' && (health.workers?.connected ?? 0) > 0 ? true : undefined;
      },
      o.waitMs,
    );
  }
  return { stack: o.name, api, registry, images, ...secrets };
}

export interface StackRemoved {
  stack: string;
  volumes: string[];
  secrets: string[];
}

/**
 * `docker stack rm`, then waits until the stack's containers (workers drain first) and networks are
 * gone. With `volumes`, its volumes and secrets go too: the data and the key that opens it.
 */
export async function stackRemove(o: { name: string; volumes: boolean; say: (line: string) => void }): Promise<StackRemoved> {
  await requireManager();
  const label = `label=${NAMESPACE}=${o.name}`;
  await docker(['stack', 'rm', '--detach=true', o.name]).catch((err: Error) => {
    if (!/Nothing found in stack/.test(err.message)) throw err;
  });
  o.say('waiting for the workers to drain and the containers to go');
  await waitFor('the stack\'s containers to go', async () => ((await docker(['ps', '-aq', '--filter', label])).trim() === '' ? true : undefined), 180_000);
  await waitFor('the stack\'s networks to go', async () => ((await docker(['network', 'ls', '-q', '--filter', label])).trim() === '' ? true : undefined), 60_000);
  const removed: StackRemoved = { stack: o.name, volumes: [], secrets: [] };
  if (!o.volumes) return removed;
  const volumes = (await docker(['volume', 'ls', '-q', '--filter', label])).split('\n').filter(Boolean);
  // A volume is freed a little after its container is gone; one already removed is done.
  for (const volume of volumes) {
    await waitFor(`the volume ${volume} to be removed`, () => docker(['volume', 'rm', volume]).then(() => true, (err: Error) => (/no such volume/i.test(err.message) ? true : Promise.reject(err))), 60_000);
  }
  removed.volumes = volumes;
  removed.secrets = await removeStackSecrets(o.name);
  return removed;
}
