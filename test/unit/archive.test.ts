import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
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

/** A zip of one deflated entry whose headers claim `claimSize` bytes, whatever it holds. */
function lyingZip(name: string, data: Buffer, claimSize: number): Buffer {
  const n = Buffer.from(name);
  const body = zlib.deflateRawSync(data);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4);
  local.writeUInt16LE(8, 8);
  local.writeUInt16LE(0x21, 12);
  local.writeUInt32LE(zlib.crc32(data), 14);
  local.writeUInt32LE(body.length, 18);
  local.writeUInt32LE(claimSize, 22);
  local.writeUInt16LE(n.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(20, 6);
  central.writeUInt16LE(8, 10);
  central.writeUInt16LE(0x21, 14);
  central.writeUInt32LE(zlib.crc32(data), 16);
  central.writeUInt32LE(body.length, 20);
  central.writeUInt32LE(claimSize, 24);
  central.writeUInt16LE(n.length, 28);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(central.length + n.length, 12);
  end.writeUInt32LE(local.length + n.length + body.length, 16);
  return Buffer.concat([local, n, body, central, n, end]);
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
  test('zip entries that lie about their size are refused every time, and nothing is thrown past the refusal', async () => {
    // yauzl's size check fires on each further chunk; a second error once the pipeline let go of the
    // stream used to be thrown out of the process.
    const thrown: unknown[] = [];
    const onUncaught = (err: unknown) => thrown.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      const liar = path.join(dir, 'liar.zip');
      writeFileSync(liar, lyingZip('liar.bin', Buffer.alloc(64 * 1024, 'A'), 16));
      const short = path.join(dir, 'short.zip');
      writeFileSync(short, lyingZip('short.bin', Buffer.from('only ten b'), 100 * 1024));
      for (let i = 0; i < 100; i++) {
        for (const [file, message] of [[liar, /too many bytes/], [short, /not enough bytes/]] as const) {
          const out = mkdtempSync(path.join(dir, 'out-'));
          await expect(extractArchive(file, 'zip', out)).rejects.toMatchObject({ code: 'INVALID_ARCHIVE', message });
          // The refused entry's file is closed by then: the folder can go at once.
          rmSync(out, { recursive: true });
        }
      }
      await new Promise((r) => setImmediate(r));
      expect(thrown).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});
