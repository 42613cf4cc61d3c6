import { createHash } from 'node:crypto';
import { LABELS } from '../protocol/labels';
import type { Logger } from '../protocol/log';
import type { FunctionRecord, Runtime } from '../protocol/types';
import { BuildError, INJECTABLE_LABEL, tail, type ContainerDriver } from '../miniworker/container-driver';
import type { PackageCache } from './package-cache';
import { PullError, type RuntimeImages } from './runtime-images';

/** Bumped when what goes into every function image changes (2: the output folder). */
const IMAGE_LAYOUT = 2;

export interface FunctionImage {
  ref: string;
  /** Its dependencies step changed nothing outside the function's folder: a stem cell can run it. */
  injectable: boolean;
}

export class PrepareError extends Error {
  constructor(
    message: string,
    readonly reason: 'dependencies_failed' | 'image_missing' | 'docker_error',
    readonly log = '',
  ) {
    super(message);
    this.name = 'PrepareError';
  }
}

/**
 * One image per function version per node, with code and dependencies in place: dependencies are
 * installed once, never per call. Concurrent requests for the same version share one build.
 */
export class FunctionImages {
  private readonly building = new Map<string, Promise<FunctionImage>>();
  /** Images known to be here, by what they are made of: the hot path does not ask Docker again. */
  private readonly ready = new Map<string, FunctionImage>();

  constructor(
    private readonly driver: ContainerDriver,
    private readonly packages: PackageCache,
    private readonly runtimeImages: RuntimeImages,
    private readonly options: { platformLabel: string; nodeId: string; depsNetwork: string; depsTimeoutMs: number; log: Logger },
  ) {}

  /**
   * An image is named by what goes into it: the runtime image (by id, so a rebuilt runtime gives new
   * images), its folder and dependencies command, and the package. Functions registered with the
   * same package on the same runtime share it.
   */
  private imageName(runtimeImageId: string, fn: FunctionRecord, runtime: Runtime): { repo: string; tag: string; ref: string } {
    const repo = `${this.options.platformLabel}-fn/${runtime.name}`;
    const tag = createHash('sha256').update(JSON.stringify([IMAGE_LAYOUT, runtimeImageId, runtime.path, runtime.dependencies, fn.version])).digest('hex').slice(0, 24);
    return { repo, tag, ref: `${repo}:${tag}` };
  }

  /** The function image, built when missing. Known images are answered from memory. */
  ensure(fn: FunctionRecord, runtime: Runtime): Promise<FunctionImage> {
    const key = JSON.stringify([runtime.image, runtime.path, runtime.dependencies, fn.version]);
    const known = this.ready.get(key);
    if (known) return Promise.resolve(known);
    let pending = this.building.get(key);
    if (!pending) {
      pending = this.build(fn, runtime)
        .then((image) => {
          this.ready.set(key, image);
          return image;
        })
        .finally(() => this.building.delete(key));
      this.building.set(key, pending);
    }
    return pending;
  }

  private async build(fn: FunctionRecord, runtime: Runtime): Promise<FunctionImage> {
    const log = this.options.log.child({ function: fn.functionName, version: fn.version.slice(0, 12) });
    try {
      let runtimeImageId: string;
      try {
        runtimeImageId = await this.runtimeImages.ensure(runtime.image);
      } catch (err) {
        if (!(err instanceof PullError)) throw err;
        throw new PrepareError(`${err.message}; build it here (faas images) or push it to a registry the nodes reach (faas runtime build --registry)`, 'image_missing');
      }
      const { repo, tag, ref } = this.imageName(runtimeImageId, fn, runtime);
      const existing = await this.driver.imageInfo(ref);
      if (existing) return { ref, injectable: existing.labels[INJECTABLE_LABEL] === 'true' };
      const packagePath = await this.packages.get(fn.version);
      const started = Date.now();
      const { injectable } = await this.driver.buildFunctionImage({
        runtimeImage: runtime.image,
        workingDir: runtime.path,
        dependencies: runtime.dependencies,
        packagePath,
        labels: {
          [LABELS.platform]: this.options.platformLabel,
          [LABELS.node]: this.options.nodeId,
          [LABELS.version]: fn.version,
          [LABELS.role]: 'prepare',
        },
        repo,
        tag,
        networkMode: this.options.depsNetwork,
        timeoutMs: this.options.depsTimeoutMs,
      });
      log.info({ image: ref, injectable, ms: Date.now() - started }, 'function image ready');
      return { ref, injectable };
    } catch (err) {
      if (err instanceof PrepareError) throw err;
      if (err instanceof BuildError) throw new PrepareError(`${err.message}: ${tail(err.log, 2000)}`, 'dependencies_failed', err.log);
      throw new PrepareError(`preparing the function failed: ${err instanceof Error ? err.message : String(err)}`, 'docker_error');
    }
  }
}
