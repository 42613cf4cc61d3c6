import { createHash } from 'node:crypto';
import { InvalidImageRefError } from '../protocol/image-ref';
import { LABELS } from '../protocol/labels';
import type { Logger } from '../protocol/log';
import type { FunctionRecord, Runtime } from '../protocol/types';
import { INJECTABLE_LABEL, tail, type ContainerDriver } from '../miniworker/container-driver';
import { BuildError, type DependencyBuilder } from './dependency-build';
import type { PackageCache } from './package-cache';
import { PullError, type RuntimeImages } from './runtime-images';

/**
 * A failed dependencies step is answered from memory this long: a function whose step fails (or
 * is refused) cannot make the node run it again for every call, ahead of other functions' builds.
 */
const FAILED_BUILD_MEMORY_MS = 60_000;

/** Bumped when what goes into every function image changes (3: built as the sandbox user, dependencies in DEPS_DIR). */
const IMAGE_LAYOUT = 3;

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

/** What the node runs: the runtimes and current function versions the api told it about. */
export interface Catalog {
  runtimes: Iterable<Runtime>;
  functions: Iterable<FunctionRecord>;
}

/**
 * An image is named by what goes into it: the runtime image by id (a runtime rebuilt under the same
 * tag gives new images), its folder and dependencies command, the package, and the user who owns
 * its files. Functions registered with the same package on the same runtime share it.
 */
export function functionImageRef(
  platformLabel: string,
  runtimeImageId: string,
  fn: Pick<FunctionRecord, 'version'>,
  runtime: Pick<Runtime, 'name' | 'path' | 'dependencies'>,
  owner: string,
): string {
  const tag = createHash('sha256').update(JSON.stringify([IMAGE_LAYOUT, runtimeImageId, runtime.path, runtime.dependencies, fn.version, owner])).digest('hex').slice(0, 24);
  return `${platformLabel}-fn/${runtime.name}:${tag}`;
}

/**
 * The function images of this node that nothing needs: not the image of a current function version
 * (on its runtime image as it is now), and not the image of a call in flight. `images` are the
 * engine's listing of the node's function images.
 */
export function unneededImages(images: Array<{ Id: string; RepoTags?: string[] | null }>, needed: Set<string>): string[] {
  const out: string[] = [];
  for (const image of images) {
    const tags = (image.RepoTags ?? []).filter((t) => t !== '<none>:<none>');
    if (tags.length === 0) out.push(image.Id);
    else out.push(...tags.filter((t) => !needed.has(t)));
  }
  return out;
}

/**
 * One image per function version per node, with code and dependencies in place: dependencies are
 * installed once, never per call. Concurrent requests for the same version share one build. Images
 * no current version needs are removed (see collect).
 */
export class FunctionImages {
  private readonly building = new Map<string, Promise<FunctionImage>>();
  /** Images known to be here, by name: the hot path does not ask Docker again. */
  private readonly ready = new Map<string, FunctionImage>();
  /** Steps that failed lately, by image name. */
  private readonly failed = new Map<string, { error: PrepareError; until: number }>();
  /**
   * Runtime image name → id, while the engine's image events are followed: any image event (a tag
   * moved by a rebuild, a removal, a load) empties it, so the next call asks once. The hot path
   * makes no Docker request per call, and a rebuilt runtime is noticed at its next call.
   */
  private readonly runtimeIds = new Map<string, string>();
  private generation = 0;
  private events?: NodeJS.ReadableStream;
  private watching = false;
  private closed = false;
  private gcTimer?: NodeJS.Timeout;
  private gcSoon?: NodeJS.Timeout;
  private collecting?: Promise<void>;
  private collectAgain = false;

  constructor(
    private readonly driver: ContainerDriver,
    private readonly packages: PackageCache,
    private readonly runtimeImages: RuntimeImages,
    private readonly builder: DependencyBuilder,
    private readonly options: {
      platformLabel: string;
      nodeId: string;
      /** uid:gid that owns the files of function images (the sandbox user). */
      owner: string;
      gcIntervalMs: number;
      log: Logger;
      /** What the node runs now; undefined until the api said. */
      catalog: () => Catalog | undefined;
      /** Images the calls in flight were given. */
      inUse: () => Iterable<string>;
    },
  ) {}

  start(): void {
    void this.watch();
    this.gcTimer = setInterval(() => this.collectSoon(0), this.options.gcIntervalMs);
    this.gcTimer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.gcTimer) clearInterval(this.gcTimer);
    if (this.gcSoon) clearTimeout(this.gcSoon);
    (this.events as unknown as { destroy?: () => void } | undefined)?.destroy?.();
  }

  /** The function image, built when missing. Known images are answered from memory. */
  ensure(fn: FunctionRecord, runtime: Runtime): Promise<FunctionImage> {
    const id = this.runtimeIds.get(runtime.image);
    if (id) {
      const known = this.ready.get(functionImageRef(this.options.platformLabel, id, fn, runtime, this.options.owner));
      if (known) return Promise.resolve(known);
    }
    return this.prepare(fn, runtime);
  }

  /** A pass of removal soon (after a function was removed or replaced); passes never overlap. */
  collectSoon(delayMs = 500): void {
    if (this.closed || this.gcSoon) return;
    this.gcSoon = setTimeout(() => {
      this.gcSoon = undefined;
      void this.collect().catch((err) => this.options.log.warn({ err: String(err) }, 'removing unneeded function images failed'));
    }, delayMs);
    this.gcSoon.unref();
  }

  /**
   * Removes this node's function images that no current version needs: a deleted function's, a
   * replaced version's, those made from a runtime image since rebuilt. An image a container still
   * uses (a warm container, a call of the previous version) is refused by the engine (409): it is
   * removed by a later pass.
   */
  collect(): Promise<void> {
    if (this.collecting) {
      this.collectAgain = true;
      return this.collecting;
    }
    this.collecting = this.collectOnce().finally(() => {
      this.collecting = undefined;
      if (this.collectAgain && !this.closed) {
        this.collectAgain = false;
        this.collectSoon(0);
      }
    });
    return this.collecting;
  }

  private async collectOnce(): Promise<void> {
    const now = Date.now();
    for (const [ref, failure] of this.failed) if (failure.until <= now) this.failed.delete(ref);
    const first = this.options.catalog();
    if (!first || this.closed) return;
    // null: the runtime's image is not on this node, so no image of its functions can be current.
    const ids = new Map<string, string | null>();
    for (const runtime of first.runtimes) {
      if (ids.has(runtime.image)) continue;
      const info = await this.driver.imageInfo(runtime.image);
      ids.set(runtime.image, info?.id ?? null);
    }
    const { platformLabel, nodeId } = this.options;
    const images = await this.driver.docker.listImages({ filters: { label: [`${LABELS.platform}=${platformLabel}`, `${LABELS.node}=${nodeId}`, `${LABELS.role}=prepare`] } });
    // What is needed is judged on the catalog as it is now, after the awaits above.
    const catalog = this.options.catalog();
    if (!catalog) return;
    const runtimes = new Map([...catalog.runtimes].map((r) => [r.name, r]));
    const needed = new Set<string>([...this.options.inUse(), ...this.building.keys()]);
    for (const fn of catalog.functions) {
      const runtime = runtimes.get(fn.runtimeName);
      if (!runtime) continue;
      const id = ids.get(runtime.image);
      // A runtime learned during the pass: judge nothing now, the next pass will.
      if (id === undefined) return;
      if (id) needed.add(functionImageRef(platformLabel, id, fn, runtime, this.options.owner));
    }
    for (const name of unneededImages(images, needed)) {
      this.ready.delete(name);
      try {
        await this.driver.docker.getImage(name).remove();
        this.options.log.info({ image: name }, 'removed a function image no version needs');
      } catch (err) {
        const status = (err as { statusCode?: number }).statusCode;
        if (status !== 404 && status !== 409) throw err;
      }
    }
  }

  /** The runtime image's id; remembered only while image events are followed. */
  private async runtimeId(image: string): Promise<string> {
    const known = this.runtimeIds.get(image);
    if (known) return known;
    const generation = this.generation;
    let id: string;
    try {
      id = await this.runtimeImages.ensure(image);
    } catch (err) {
      if (!(err instanceof PullError)) throw err;
      throw new PrepareError(`${err.message}; build it here (faas images) or push it to a registry the nodes reach (faas runtime build --registry)`, 'image_missing');
    }
    // An image event during the inspect may have made this id stale: it is used, not remembered.
    if (this.watching && generation === this.generation) this.runtimeIds.set(image, id);
    return id;
  }

  private async prepare(fn: FunctionRecord, runtime: Runtime): Promise<FunctionImage> {
    let runtimeImageId: string;
    try {
      runtimeImageId = await this.runtimeId(runtime.image);
    } catch (err) {
      if (err instanceof PrepareError) throw err;
      // A runtime stored by an older version with an image that is not a reference: refused before any request.
      if (err instanceof InvalidImageRefError) {
        throw new PrepareError(`runtime "${runtime.name}" cannot run calls: its image ${err.message}; register the runtime again with a valid image`, 'image_missing');
      }
      throw new PrepareError(`preparing the function failed: ${err instanceof Error ? err.message : String(err)}`, 'docker_error');
    }
    const ref = functionImageRef(this.options.platformLabel, runtimeImageId, fn, runtime, this.options.owner);
    const known = this.ready.get(ref);
    if (known) return known;
    const failure = this.failed.get(ref);
    if (failure && failure.until > Date.now()) throw failure.error;
    this.failed.delete(ref);
    let pending = this.building.get(ref);
    if (!pending) {
      pending = this.build(ref, fn, runtime)
        .then((image) => {
          this.ready.set(ref, image);
          return image;
        })
        .finally(() => this.building.delete(ref));
      this.building.set(ref, pending);
    }
    return pending;
  }

  private async build(ref: string, fn: FunctionRecord, runtime: Runtime): Promise<FunctionImage> {
    const log = this.options.log.child({ function: fn.functionName, version: fn.version.slice(0, 12) });
    try {
      const existing = await this.driver.imageInfo(ref);
      if (existing) return { ref, injectable: existing.labels[INJECTABLE_LABEL] === 'true' };
      const packagePath = await this.packages.get(fn.version);
      const started = Date.now();
      const [repo, tag] = [ref.slice(0, ref.lastIndexOf(':')), ref.slice(ref.lastIndexOf(':') + 1)];
      const { injectable, layerBytes } = await this.builder.build({
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
      });
      log.info({ image: ref, injectable, layerMb: Math.round(layerBytes / 1e5) / 10, ms: Date.now() - started }, 'function image ready');
      return { ref, injectable };
    } catch (err) {
      if (err instanceof PrepareError) throw err;
      if (err instanceof BuildError) {
        const error = new PrepareError(`${err.message}: ${tail(err.log, 2000)}`, 'dependencies_failed', err.log);
        this.failed.set(ref, { error, until: Date.now() + FAILED_BUILD_MEMORY_MS });
        throw error;
      }
      throw new PrepareError(`preparing the function failed: ${err instanceof Error ? err.message : String(err)}`, 'docker_error');
    }
  }

  /** Follows the engine's image events for as long as the worker runs, reconnecting after a loss. */
  private async watch(): Promise<void> {
    let pause = 500;
    while (!this.closed) {
      try {
        const stream = (await this.driver.docker.getEvents({ filters: { type: ['image'] } })) as NodeJS.ReadableStream;
        this.events = stream;
        this.watching = true;
        pause = 500;
        // Whatever happened while nothing was followed is unknown.
        this.dropRuntimeIds();
        await new Promise<void>((resolve) => {
          stream.on('data', () => this.dropRuntimeIds());
          stream.on('end', resolve);
          stream.on('close', resolve);
          stream.on('error', () => resolve());
        });
      } catch (err) {
        if (!this.closed) this.options.log.warn({ err: String(err) }, 'cannot follow the engine’s image events');
      }
      this.watching = false;
      this.dropRuntimeIds();
      if (this.closed) return;
      await new Promise((r) => setTimeout(r, pause).unref());
      pause = Math.min(pause * 2, 10_000);
    }
  }

  private dropRuntimeIds(): void {
    this.generation += 1;
    this.runtimeIds.clear();
  }
}
