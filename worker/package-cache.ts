import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';

/** Function packages fetched from the api by hash, verified, and kept on this node. */
export class PackageCache {
  private readonly inflight = new Map<string, Promise<string>>();
  /** Packages known to be on disk: every call asks, so the answer comes from memory. */
  private readonly known = new Map<string, string>();

  constructor(
    private readonly dir: string,
    private readonly apiUrl: string,
    /** `user:password` when the api asks for credentials. */
    private readonly credentials?: string,
  ) {}

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
  }

  /** The local path of the package, downloading it once. */
  get(sha256: string): Promise<string> {
    if (!/^[a-f0-9]{64}$/.test(sha256)) return Promise.reject(new Error(`bad package hash ${sha256}`));
    const cached = this.known.get(sha256);
    if (cached) return Promise.resolve(cached);
    const file = path.join(this.dir, `${sha256}.tar.gz`);
    if (existsSync(file)) {
      this.known.set(sha256, file);
      return Promise.resolve(file);
    }
    let pending = this.inflight.get(sha256);
    if (!pending) {
      pending = this.download(sha256, file).finally(() => this.inflight.delete(sha256));
      this.inflight.set(sha256, pending);
    }
    return pending;
  }

  private async download(sha256: string, file: string): Promise<string> {
    const headers: Record<string, string> = this.credentials ? { authorization: `Basic ${Buffer.from(this.credentials).toString('base64')}` } : {};
    const response = await fetch(`${this.apiUrl}/packages/${sha256}`, { headers });
    if (!response.ok || !response.body) throw new Error(`package ${sha256.slice(0, 12)} not served by the api (HTTP ${response.status})`);
    const temp = `${file}.${process.pid}.part`;
    const hash = createHash('sha256');
    const hashing = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        done(null, chunk);
      },
    });
    try {
      await pipeline(Readable.fromWeb(response.body as WebReadableStream), hashing, createWriteStream(temp));
      const actual = hash.digest('hex');
      if (actual !== sha256) throw new Error(`package ${sha256.slice(0, 12)} arrived with hash ${actual.slice(0, 12)}`);
      await rename(temp, file);
      this.known.set(sha256, file);
      return file;
    } finally {
      await rm(temp, { force: true });
    }
  }
}
