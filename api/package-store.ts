import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import * as tar from 'tar';
import { PlatformError } from '../protocol/errors';
import { DEFAULT_ARCHIVE_LIMITS, detectFormat, extractArchive, sha256File, type ArchiveFormat, type ArchiveLimits } from './archive';

export interface StoredPackage {
  sha256: string;
  size: number;
  format: ArchiveFormat;
}

const SHA256 = /^[a-f0-9]{64}$/;

/**
 * Function packages, content-addressed. An upload (a .tar.gz or a .zip) is checked and unpacked in
 * a staging folder, then packed again as a canonical .tar.gz named by its sha256; workers fetch it
 * by hash over HTTP, so no folder is shared between the api and the workers.
 */
export class PackageStore {
  private readonly packagesDir: string;
  private readonly stagingDir: string;

  constructor(
    dataDir: string,
    private readonly limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS,
  ) {
    this.packagesDir = path.join(dataDir, 'packages');
    this.stagingDir = path.join(dataDir, 'staging');
  }

  async init(): Promise<void> {
    await mkdir(this.packagesDir, { recursive: true });
    await rm(this.stagingDir, { recursive: true, force: true });
    await mkdir(this.stagingDir, { recursive: true });
  }

  get uploadDir(): string {
    return this.stagingDir;
  }

  /** Checks and stores an uploaded archive; the upload and every staging file are gone afterwards. */
  async ingest(uploadPath: string): Promise<StoredPackage> {
    const work = await mkdtemp(path.join(this.stagingDir, 'pkg-'));
    try {
      const format = await detectFormat(uploadPath);
      const tree = path.join(work, 'tree');
      await mkdir(tree);
      await extractArchive(uploadPath, format, tree, this.limits);
      const files = await listTree(tree);
      if (!files.some((f) => f.file)) throw new PlatformError('INVALID_ARCHIVE', 'the archive holds no files');
      const packed = path.join(work, 'package.tar.gz');
      await tar.c({ gzip: true, cwd: tree, file: packed, portable: true, mtime: new Date(0), noDirRecurse: true }, files.map((f) => f.path));
      const sha256 = await sha256File(packed);
      const { size } = await stat(packed);
      const final = this.path(sha256);
      if (!existsSync(final)) await rename(packed, final);
      return { sha256, size, format };
    } finally {
      await rm(work, { recursive: true, force: true });
      await rm(uploadPath, { force: true });
    }
  }

  /** Removes an upload that will not be ingested. */
  async discard(uploadPath: string): Promise<void> {
    await rm(uploadPath, { force: true });
  }

  path(sha256: string): string {
    if (!SHA256.test(sha256)) throw new PlatformError('PACKAGE_NOT_FOUND', 'not a sha256');
    return path.join(this.packagesDir, `${sha256}.tar.gz`);
  }

  has(sha256: string): boolean {
    return SHA256.test(sha256) && existsSync(this.path(sha256));
  }
}

/** Every file and folder under root, relative, sorted, folders before what they hold. */
async function listTree(root: string): Promise<Array<{ path: string; file: boolean }>> {
  const out: Array<{ path: string; file: boolean }> = [];
  const walk = async (rel: string) => {
    const entries = await readdir(path.join(root, rel), { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        out.push({ path: child, file: false });
        await walk(child);
      } else if (entry.isFile()) {
        out.push({ path: child, file: true });
      }
    }
  };
  await walk('');
  return out;
}
