import { mkdtemp, readdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { PROJECT_ROOT } from './images';

/** Packs the files of a folder (at the archive's root) into a .tar.gz. */
export async function packDirectory(dir: string, file: string): Promise<string> {
  const entries = (await readdir(dir)).filter((name) => !name.endsWith('.tar.gz') && !name.endsWith('.zip') && !name.startsWith('.'));
  if (entries.length === 0) throw new Error(`${dir} holds no files to deploy`);
  await tar.c({ gzip: true, cwd: dir, file, portable: true }, entries.sort());
  return file;
}

/** A folder becomes a temporary .tar.gz; an archive is used as it is. */
export async function archiveFor(target: string): Promise<string> {
  const info = await stat(target);
  if (!info.isDirectory()) return target;
  const temp = await mkdtemp(path.join(os.tmpdir(), 'faas-deploy-'));
  return packDirectory(target, path.join(temp, `${path.basename(path.resolve(target))}.tar.gz`));
}

/** Writes runtimes/python/dice/python.tar.gz, the archive of the seed's registerFunction example. */
export async function packExamples(): Promise<string[]> {
  const dice = path.join(PROJECT_ROOT, 'runtimes', 'python', 'dice');
  return [await packDirectory(dice, path.join(dice, 'python.tar.gz'))];
}
