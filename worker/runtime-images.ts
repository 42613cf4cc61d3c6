import type Docker from 'dockerode';
import { InvalidImageRefError, parseImageRef } from '../protocol/image-ref';
import type { Logger } from '../protocol/log';
import { registryRefusal, type RegistryPolicy } from '../protocol/registries';

/** Raised when a runtime image is neither on this node nor obtainable from its registry. */
export class PullError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PullError';
  }
}

interface PullEvent {
  id?: string;
  status?: string;
  error?: string;
  progressDetail?: { current?: number; total?: number };
}

/**
 * Runtime images on this node: one that is missing is pulled from its registry (the registry is the
 * host part of the image name, e.g. registry.local:5000/pythonruntime), once however many calls ask
 * at the same time, with its progress in the worker's log.
 */
export class RuntimeImages {
  private readonly pulls = new Map<string, Promise<string>>();

  constructor(
    private readonly docker: Docker,
    private readonly options: {
      nodeId: string;
      pullTimeoutMs: number;
      progressEveryMs?: number;
      /** Where a missing image may be pulled from; unset: anywhere (tests of the pull itself). */
      registries?: RegistryPolicy;
      registryUser?: string;
      registryPassword?: string;
      log: Logger;
    },
  ) {}

  /**
   * The image's id, pulled first when it is not here. A name that is not an image reference (a
   * runtime stored by an older version) throws InvalidImageRefError before any request is made.
   */
  async ensure(image: string): Promise<string> {
    const parsed = parseImageRef(image);
    if (!parsed.ok) throw new InvalidImageRefError(image, parsed.error);
    const id = await this.localId(image);
    if (id) return id;
    // An image already here is used whatever its name; only pulls reach out, to allowed registries.
    const refused = this.options.registries ? registryRefusal(image, this.options.registries) : undefined;
    if (refused) throw new PullError(`runtime image "${image}" is not on node ${this.options.nodeId} and is not pulled: ${refused}`);
    let pending = this.pulls.get(image);
    if (!pending) {
      pending = this.pull(image, parsed.ref.domain).finally(() => this.pulls.delete(image));
      this.pulls.set(image, pending);
    }
    return pending;
  }

  private async localId(image: string): Promise<string | undefined> {
    try {
      return (await this.docker.getImage(image).inspect()).Id;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw err;
    }
  }

  /** `registry`: the host part of the name, which the registry credentials are for. */
  private async pull(image: string, registry: string | undefined): Promise<string> {
    const log = this.options.log.child({ image });
    const started = Date.now();
    log.info('runtime image missing on this node: pulling it');
    try {
      const auth = this.options.registryUser && registry ? { authconfig: { username: this.options.registryUser, password: this.options.registryPassword ?? '', serveraddress: registry } } : {};
      const stream = (await this.docker.pull(image, auth)) as NodeJS.ReadableStream;
      await this.follow(stream, image, log);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      log.warn({ err: why }, 'pulling the runtime image failed');
      throw new PullError(`runtime image "${image}" is not on node ${this.options.nodeId} and could not be pulled: ${why.trim().slice(0, 300)}`);
    }
    const id = await this.localId(image);
    if (!id) throw new PullError(`runtime image "${image}" was pulled but is not on node ${this.options.nodeId}`);
    log.info({ ms: Date.now() - started, id: id.slice(7, 19) }, 'runtime image pulled');
    return id;
  }

  /** Follows Docker's progress stream to its end, logging a summary at most every few seconds. */
  private follow(stream: NodeJS.ReadableStream, image: string, log: Logger): Promise<void> {
    const layers = new Map<string, { current: number; total: number; done: boolean }>();
    let lastLog = 0;
    const every = this.options.progressEveryMs ?? 2000;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        (stream as unknown as { destroy?: () => void }).destroy?.();
        reject(new Error(`no answer within ${this.options.pullTimeoutMs} ms`));
      }, this.options.pullTimeoutMs);
      this.docker.modem.followProgress(
        stream,
        (err: Error | null, output: PullEvent[]) => {
          clearTimeout(timer);
          const failed = err?.message ?? output.find((o) => o.error)?.error;
          if (failed) reject(new Error(failed));
          else resolve();
        },
        (event: PullEvent) => {
          if (!event.id || !event.status) return;
          const layer = layers.get(event.id) ?? { current: 0, total: 0, done: false };
          if (event.progressDetail?.total) layer.total = event.progressDetail.total;
          if (event.progressDetail?.current !== undefined) layer.current = event.progressDetail.current;
          if (/^(Pull complete|Already exists|Download complete)$/.test(event.status)) layer.done = true;
          layers.set(event.id, layer);
          const now = Date.now();
          if (now - lastLog >= every) {
            lastLog = now;
            const values = [...layers.values()];
            log.info(
              {
                layers: `${values.filter((l) => l.done).length}/${values.length}`,
                mb: Number((values.reduce((sum, l) => sum + l.current, 0) / 1e6).toFixed(1)),
                image,
              },
              'pulling runtime image',
            );
          }
        },
      );
    });
  }
}
