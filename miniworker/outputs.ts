import { Parser as TarParser, type ReadEntry } from 'tar';
import yazl from 'yazl';

/** A call's output files, relative to the output folder. */
export interface OutputFile {
  path: string;
  data: Buffer;
}

/** Outputs are kept as a zip, the form in which they are downloaded. */
export async function filesToZip(files: OutputFile[]): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const file of files) {
    // Linux allows names a zip entry may not hold (a backslash, "C:"): they are made safe, or skipped.
    const name = file.path.replace(/\\/g, '_').replace(/^(\.\/)+/, '').replace(/^\/+/, '').replace(/^([A-Za-z]):/, '$1_');
    if (!name || name.split('/').includes('..')) continue;
    try {
      zip.addBuffer(file.data, name, { mode: 0o100644 });
    } catch {
      /* a name yazl refuses: left out */
    }
  }
  zip.end();
  const out: Buffer[] = [];
  for await (const chunk of zip.outputStream as AsyncIterable<Buffer>) out.push(chunk);
  return Buffer.concat(out);
}

/**
 * The regular files of a tar (as the engine gives a container's folder), relative to that folder;
 * an empty list when it holds none.
 */
export async function tarFiles(tar: Buffer): Promise<OutputFile[]> {
  const files: OutputFile[] = [];
  const reading: Array<Promise<void>> = [];
  const parser = new TarParser({
    onReadEntry: (entry: ReadEntry) => {
      const name = entry.path.replace(/^(\.\/)+/, '').replace(/^\/+/, '');
      if (entry.type === 'File' && name && !name.split('/').includes('..')) {
        const chunks: Buffer[] = [];
        entry.on('data', (chunk: Buffer) => chunks.push(chunk));
        reading.push(
          new Promise<void>((resolve) =>
            entry.on('end', () => {
              files.push({ path: name, data: Buffer.concat(chunks) });
              resolve();
            }),
          ),
        );
      } else {
        entry.resume();
      }
    },
  });
  await new Promise<void>((resolve, reject) => {
    parser.on('end', () => resolve());
    parser.on('error', reject);
    parser.end(tar);
  });
  await Promise.all(reading);
  return files;
}

export interface CollectedOutputs {
  /** null when the folder was larger than the cap (then nothing is kept). */
  zip: Buffer | null;
  /** What the files hold, uncompressed (or the archive's size when past the cap). */
  bytes: number;
  truncated: boolean;
}

const MAX_OUTPUT_FILES = 10_000;

/**
 * A call's output files as kept: a zip, or nothing (only the size) past `maxBytes`, past 10,000 files,
 * or when the zip would not fit the store. A name the zip cannot hold is skipped, never fatal.
 */
export async function keptOutputs(files: OutputFile[], maxBytes: number): Promise<CollectedOutputs | undefined> {
  if (files.length === 0) return undefined;
  const bytes = files.reduce((sum, f) => sum + f.data.length, 0);
  if (bytes > maxBytes || files.length > MAX_OUTPUT_FILES) return { zip: null, bytes, truncated: true };
  const zip = await filesToZip(files);
  if (zip.length > maxBytes + 2 * 1024 * 1024) return { zip: null, bytes, truncated: true };
  return { zip, bytes, truncated: false };
}
