import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yazl from 'yazl';
import { checkEntryPath, detectFormat, extractArchive } from '../../api/archive';

async function zipWith(entries: Array<[string, string]>): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const [name, content] of entries) zip.addBuffer(Buffer.from(content), name);
  zip.end();
  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe('archive checks', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'faas-archive-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test.each(['../x', '/etc/passwd', 'a/../../x', '..\\x', 'C:/x', 'a\0b', ''])('entry path %j is refused', (name) => {
    expect(() => checkEntryPath(name)).toThrow(/rejected/);
  });

  test.each(['test.py', './test.py', 'lib/util.py', 'a..b/c'])('entry path %j is accepted', (name) => {
    expect(() => checkEntryPath(name)).not.toThrow();
  });

  test('the type comes from the content, not the name', async () => {
    const zip = path.join(dir, 'package.tar.gz');
    writeFileSync(zip, await zipWith([['a.txt', 'a']]));
    expect(await detectFormat(zip)).toBe('zip');
    const text = path.join(dir, 'x.zip');
    writeFileSync(text, 'hello');
    await expect(detectFormat(text)).rejects.toMatchObject({ code: 'INVALID_ARCHIVE' });
  });

  test('a zip is extracted by name into its folder', async () => {
    const file = path.join(dir, 'ok.zip');
    writeFileSync(file, await zipWith([['main.py', 'print(1)'], ['lib/x.py', '']]));
    const out = path.join(dir, 'out');
    require('node:fs').mkdirSync(out);
    await extractArchive(file, 'zip', out);
    expect(readdirSync(out).sort()).toEqual(['lib', 'main.py']);
  });
});
