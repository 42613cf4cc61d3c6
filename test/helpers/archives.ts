import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as tar from 'tar';
import yazl from 'yazl';
import { PROJECT_ROOT } from '../../cli/actions/images';

export const FIXTURES = path.join(PROJECT_ROOT, 'test', 'fixtures', 'functions');
export const DICE = path.join(PROJECT_ROOT, 'runtimes', 'python', 'dice');

/** The files of a folder, at the root of a .tar.gz. */
export async function tarGzOf(dir: string): Promise<Buffer> {
  const files = readdirSync(dir).filter((f) => !f.endsWith('.tar.gz') && !f.endsWith('.zip')).sort();
  const chunks: Buffer[] = [];
  const stream = tar.c({ gzip: true, cwd: dir, portable: true }, files);
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** The files of a folder, at the root of a .zip. */
export async function zipOf(dir: string): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const f of readdirSync(dir).filter((f) => !f.endsWith('.tar.gz') && !f.endsWith('.zip')).sort()) {
    zip.addBuffer(readFileSync(path.join(dir, f)), f);
  }
  zip.end();
  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}
