import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { mkdir, open, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import * as tar from 'tar';
import yauzl from 'yauzl';
import { PlatformError } from '../protocol/errors';

export type ArchiveFormat = 'tar.gz' | 'zip';

export interface ArchiveLimits {
  maxEntries: number;
  maxTotalBytes: number;
  /** Unpacked size over packed size; past it (and past RATIO_FLOOR_BYTES unpacked) the archive is a bomb. */
  maxRatio: number;
}

export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = { maxEntries: 10_000, maxTotalBytes: 256 * 1024 * 1024, maxRatio: 100 };
/** Small archives may compress as well as they like: a ratio only matters past this many bytes. */
const RATIO_FLOOR_BYTES = 1024 * 1024;

/** Checks the running unpacked total against the caps; throws as soon as one is crossed. */
function checkTotal(total: number, packedBytes: number, limits: ArchiveLimits): void {
  if (total > limits.maxTotalBytes) throw new PlatformError('PAYLOAD_TOO_LARGE', `unpacked size exceeds ${limits.maxTotalBytes} bytes`);
  if (total > RATIO_FLOOR_BYTES && total > limits.maxRatio * packedBytes) {
    throw new PlatformError('INVALID_ARCHIVE', `the archive unpacks to more than ${limits.maxRatio} times its size (a zip bomb?)`);
  }
}

/** The archive type from its first bytes, never from its name. */
export async function detectFormat(file: string): Promise<ArchiveFormat> {
  const handle = await open(file, 'r');
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await handle.read(head, 0, 4, 0);
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'tar.gz';
    if (bytesRead === 4 && head[0] === 0x50 && head[1] === 0x4b && (head[2] === 0x03 || head[2] === 0x05)) return 'zip';
  } finally {
    await handle.close();
  }
  throw new PlatformError('INVALID_ARCHIVE', 'the package is neither a .tar.gz nor a .zip archive');
}

/** A relative path that stays inside the folder it is extracted to. */
export function checkEntryPath(name: string): void {
  const bad = (why: string) => new PlatformError('INVALID_ARCHIVE', `entry "${name.slice(0, 200)}" rejected: ${why}`);
  if (name.length === 0 || name.length > 1024) throw bad('empty or overlong name');
  if (name.includes('\0')) throw bad('NUL in name');
  if (name.includes('\\')) throw bad('backslash in name');
  if (/^[a-zA-Z]:/.test(name)) throw bad('drive letter');
  if (name.startsWith('/')) throw bad('absolute path');
  if (name.split('/').includes('..')) throw bad('".." in path');
}

/** Extracts a .tar.gz or .zip into `dest` (an empty folder), refusing anything unsafe. */
export async function extractArchive(file: string, format: ArchiveFormat, dest: string, limits = DEFAULT_ARCHIVE_LIMITS): Promise<void> {
  const packed = (await stat(file)).size;
  if (format === 'tar.gz') await extractTar(file, packed, dest, limits);
  else await extractZip(file, packed, dest, limits);
}

async function extractTar(file: string, packed: number, dest: string, limits: ArchiveLimits): Promise<void> {
  const entries = await scanTar(file, packed, limits);
  if (entries === 0) throw new PlatformError('INVALID_ARCHIVE', 'the archive is empty');
  try {
    await tar.x({
      file,
      cwd: dest,
      strict: true,
      preservePaths: false,
      preserveOwner: false,
      filter: (_p, entry) => 'type' in entry && (entry.type === 'File' || entry.type === 'Directory'),
    });
  } catch (err) {
    throw new PlatformError('INVALID_ARCHIVE', `the .tar.gz cannot be extracted: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function openZip(file: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, strictFileNames: true, validateEntrySizes: true, autoClose: true }, (err, zip) =>
      err || !zip ? reject(err) : resolve(zip),
    );
  });
}

async function extractZip(file: string, packed: number, dest: string, limits: ArchiveLimits): Promise<void> {
  let zip: yauzl.ZipFile;
  try {
    zip = await openZip(file);
  } catch (err) {
    throw new PlatformError('INVALID_ARCHIVE', `the .zip cannot be read: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (zip.entryCount > limits.maxEntries) {
    zip.close();
    throw new PlatformError('INVALID_ARCHIVE', `more than ${limits.maxEntries} entries`);
  }
  let entries = 0;
  let total = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (err: unknown) => {
        zip.close();
        reject(err);
      };
      zip.on('error', (err) => fail(new PlatformError('INVALID_ARCHIVE', `the .zip cannot be read: ${err.message}`)));
      zip.on('end', () => resolve());
      zip.on('entry', (entry: yauzl.Entry) => {
        entries += 1;
        if (entries > limits.maxEntries) return fail(new PlatformError('INVALID_ARCHIVE', `more than ${limits.maxEntries} entries`));
        try {
          checkEntryPath(entry.fileName);
        } catch (err) {
          return fail(err);
        }
        const mode = (entry.externalFileAttributes >>> 16) & 0o170000;
        const isDir = entry.fileName.endsWith('/');
        if (mode !== 0 && mode !== 0o100000 && !(isDir && mode === 0o040000)) {
          return fail(new PlatformError('INVALID_ARCHIVE', `entry "${entry.fileName}" rejected: only files and folders are allowed`));
        }
        // The sizes the entry claims are checked first; the bytes it really gives are counted below.
        try {
          checkTotal(total + entry.uncompressedSize, packed, limits);
        } catch (err) {
          return fail(err);
        }
        const target = path.join(dest, entry.fileName);
        if (isDir) {
          mkdir(target, { recursive: true }).then(() => zip.readEntry(), fail);
          return;
        }
        zip.openReadStream(entry, (err, stream) => {
          if (err || !stream) return fail(new PlatformError('INVALID_ARCHIVE', `entry "${entry.fileName}": ${err?.message}`));
          // yauzl's size check can fire again on a later chunk, after the pipeline below has reported the
          // first error and let go of the stream: without a listener of its own that one would be thrown.
          stream.on('error', () => undefined);
          const limit = new Transform({
            transform(chunk: Buffer, _enc, done) {
              total += chunk.length;
              try {
                checkTotal(total, packed, limits);
                done(null, chunk);
              } catch (err) {
                done(err as Error);
              }
            },
          });
          let out: WriteStream | undefined;
          mkdir(path.dirname(target), { recursive: true })
            .then(() => pipeline(stream, limit, (out = createWriteStream(target, { flags: 'wx', mode: 0o644 }))))
            .then(() => zip.readEntry())
            .catch(async (e: unknown) => {
              // The file is closed before the caller removes the folder, or it could appear after.
              if (out && !out.closed) await once(out, 'close').catch(() => undefined);
              fail(e instanceof PlatformError ? e : new PlatformError('INVALID_ARCHIVE', `entry "${entry.fileName}": ${e instanceof Error ? e.message : String(e)}`));
            });
        });
      });
      zip.readEntry();
    });
  } finally {
    zip.close();
  }
  if (entries === 0) throw new PlatformError('INVALID_ARCHIVE', 'the archive is empty');
}

/**
 * First pass over a .tar.gz: reads every header and refuses the whole archive on the first bad
 * entry, stopping the read there (a bomb is never inflated past the cap). Returns the entry count.
 */
function scanTar(file: string, packed: number, limits: ArchiveLimits): Promise<number> {
  return new Promise((resolve, reject) => {
    let entries = 0;
    let total = 0;
    let settled = false;
    const source = createReadStream(file);
    const finish = (err?: unknown) => {
      if (settled) return;
      settled = true;
      source.destroy();
      if (err === undefined) resolve(entries);
      else if (err instanceof PlatformError) reject(err);
      else reject(new PlatformError('INVALID_ARCHIVE', `the .tar.gz cannot be read: ${err instanceof Error ? err.message : String(err)}`));
    };
    const parser = new tar.Parser({
      strict: true,
      onReadEntry: (entry) => {
        entry.resume();
        if (settled) return;
        try {
          entries += 1;
          total += entry.size ?? 0;
          if (entry.type !== 'File' && entry.type !== 'Directory') {
            throw new PlatformError('INVALID_ARCHIVE', `entry "${entry.path.slice(0, 200)}" rejected: type ${entry.type} is not allowed`);
          }
          checkEntryPath(entry.path);
          if (entries > limits.maxEntries) throw new PlatformError('INVALID_ARCHIVE', `more than ${limits.maxEntries} entries`);
          checkTotal(total, packed, limits);
        } catch (err) {
          finish(err);
        }
      },
    });
    parser.on('error', (err: unknown) => finish(err));
    parser.on('end', () => finish());
    parser.on('close', () => finish());
    source.on('error', (err) => finish(err));
    source.pipe(parser as unknown as NodeJS.WritableStream);
  });
}

/** Hashes a file with sha256, streaming. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}
