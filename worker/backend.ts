import { setTimeout as sleep } from 'node:timers/promises';
import type { BackendSettings } from '../protocol/backend';
import { LABELS } from '../protocol/labels';
import type { Logger } from '../protocol/log';
import type { FunctionRecord, Runtime } from '../protocol/types';
import { ContainerDriver } from '../miniworker/container-driver';
import type { WorkerConfig } from './config';
import { DependencyBuilder } from './dependency-build';
import { FunctionImages, type Catalog, type FunctionImage } from './function-images';
import type { PackageCache } from './package-cache';
import { RuntimeImages } from './runtime-images';

/**
 * A node's back-end, in the lifecycle of a pluggable deployer: prepare (the engine, a runtime's
 * image, a function's image), deploy (a container: done by miniworkers, see miniworker/backend.ts),
 * clean up (containers no miniworker drives) and shut down (everything of this node removed).
 * Docker is the implementation used everywhere; `hollow` runs nothing, for control-plane scale tests.
 */
export interface NodeBackend {
  readonly name: BackendSettings['name'];
  /** Prepares the node: the engine answers, and what an earlier run of this node left is removed (how many). */
  start(): Promise<number>;
  /** The runtime's image is on this node. */
  prepareRuntime(image: string): Promise<void>;
  /** The image a call of this function runs in, made when missing. */
  prepareFunction(fn: FunctionRecord, runtime: Runtime): Promise<FunctionImage>;
  /** Images nothing needs any more go soon. */
  collectSoon(): void;
  /**
   * Removes containers of this node that no live miniworker drives (how many): a call container is
   * judged by its call, a warm or stem container by its miniworker.
   */
  cleanup(liveMiniworkers: Set<string>, activeCalls: Set<number>): Promise<number>;
  /** Removes every container of this node; safe to call twice. */
  shutdown(): Promise<void>;
}

export interface NodeBackendContext {
  config: WorkerConfig;
  packages: PackageCache;
  log: Logger;
  /** What the node runs now; undefined until the api said. */
  catalog: () => Catalog | undefined;
  /** Images the calls in flight were given. */
  inUse: () => Iterable<string>;
}

export class DockerNodeBackend implements NodeBackend {
  readonly name = 'docker';
  private readonly driver = new ContainerDriver();
  private readonly runtimeImages: RuntimeImages;
  private readonly images: FunctionImages;
  private readonly labels: Record<string, string>;

  constructor({ config, packages, log, catalog, inUse }: NodeBackendContext) {
    this.labels = { [LABELS.platform]: config.platformLabel, [LABELS.node]: config.nodeId };
    this.runtimeImages = new RuntimeImages(this.driver.docker, {
      nodeId: config.nodeId,
      pullTimeoutMs: config.pullTimeoutMs,
      registries: config.registries,
      registryUser: config.registryUser,
      registryPassword: config.registryPassword,
      log,
    });
    const builder = new DependencyBuilder(this.driver, {
      user: config.functionUser,
      network: config.depsNetwork,
      memoryBytes: config.depsMemoryMb * 1024 * 1024,
      nanoCpus: Math.round(config.cpus * 1e9),
      pidsLimit: config.pidsLimit,
      nofile: config.nofile,
      maxLayerBytes: config.maxFunctionImageMb * 1024 * 1024,
      timeoutMs: config.depsTimeoutMs,
      maxConcurrent: config.maxConcurrentBuilds,
      pollMs: 1000,
      maxLogBytes: 64 * 1024,
    });
    this.images = new FunctionImages(this.driver, packages, this.runtimeImages, builder, {
      platformLabel: config.platformLabel,
      nodeId: config.nodeId,
      owner: config.functionUser,
      gcIntervalMs: config.imageGcIntervalMs,
      log,
      catalog,
      inUse,
    });
  }

  async start(): Promise<number> {
    await this.driver.ping();
    const orphans = await this.driver.removeLabelled(this.labels);
    this.images.start();
    return orphans;
  }

  async prepareRuntime(image: string): Promise<void> {
    await this.runtimeImages.ensure(image);
  }

  prepareFunction(fn: FunctionRecord, runtime: Runtime): Promise<FunctionImage> {
    return this.images.ensure(fn, runtime);
  }

  collectSoon(): void {
    this.images.collectSoon();
  }

  async cleanup(liveMiniworkers: Set<string>, activeCalls: Set<number>): Promise<number> {
    const filters = { label: Object.entries(this.labels).map(([k, v]) => `${k}=${v}`) };
    const found = await this.driver.docker.listContainers({ all: true, filters });
    const stale = found.filter((c) => {
      const owner = c.Labels[LABELS.miniworker];
      // The containers of a miniworker that is gone are removed whatever their age.
      if (owner !== undefined && !liveMiniworkers.has(owner)) return true;
      // A call container with a live owner (or none named) goes only when no miniworker runs its call,
      // and not in its first seconds: its miniworker may be about to take it up.
      return c.Labels[LABELS.role] === 'call' && !activeCalls.has(Number(c.Labels[LABELS.call])) && Date.now() / 1000 - c.Created > 5;
    });
    await Promise.all(stale.map((c) => this.driver.remove(c.Id)));
    return stale.length;
  }

  async shutdown(): Promise<void> {
    this.images.close();
    await this.driver.removeLabelled(this.labels);
  }
}

/** A node without an engine: see protocol/backend.ts. Images are names, containers live in miniworkers' memory. */
export class HollowNodeBackend implements NodeBackend {
  readonly name = 'hollow';
  private readonly warning?: NodeJS.Timeout;

  constructor(
    private readonly settings: { prepareMs: number; startMs: number; callMs: number },
    private readonly log: Logger,
  ) {
    const say = () => log.warn({ backend: 'hollow', startMs: settings.startMs, callMs: settings.callMs, prepareMs: settings.prepareMs }, 'HOLLOW NODE: no container runs here; calls answer their params. For control-plane scale tests only');
    say();
    this.warning = setInterval(say, 60_000);
    this.warning.unref();
  }

  async start(): Promise<number> {
    return 0;
  }

  async prepareRuntime(): Promise<void> {
    if (this.settings.prepareMs > 0) await sleep(this.settings.prepareMs);
  }

  async prepareFunction(fn: FunctionRecord): Promise<FunctionImage> {
    if (this.settings.prepareMs > 0) await sleep(this.settings.prepareMs);
    return { ref: `hollow/${fn.functionName}:${fn.version.slice(0, 12)}`, injectable: true };
  }

  collectSoon(): void {}

  async cleanup(): Promise<number> {
    return 0;
  }

  async shutdown(): Promise<void> {
    if (this.warning) clearInterval(this.warning);
  }
}

export function nodeBackend(settings: BackendSettings, context: NodeBackendContext): NodeBackend {
  return settings.name === 'hollow' ? new HollowNodeBackend(settings, context.log) : new DockerNodeBackend(context);
}
