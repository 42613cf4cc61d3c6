import { randomBytes } from 'node:crypto';
import { lstatSync, mkdtempSync, readdirSync, rmSync, writeFileSync, type Dirent } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { DbClient } from '../../protocol/db-client';
import type { FunctionRecord } from '../../protocol/types';
import { tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';

/**
 * Hostile uploads against the real db-service and api (no worker: registering needs none). Each
 * case posts one package that must be refused, and then checks what the refusal must leave behind:
 * nothing outside the staging folder, nothing inside it, and the function's good version in place.
 *
 * The archives are made here, byte by byte where the usual writers refuse to make them (tar.c
 * will not write "..", yazl validates names): a ustar header writer and a small zip writer.
 */

const RUNTIME = { name: 'pyfixture', image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 main.py' };
/** The function every hostile upload tries to replace. */
const VICTIM = 'victim';
const MAX_UPLOAD = 2 * 1024 * 1024;
const MiB = 1024 * 1024;
const MAIN_PY = Buffer.from('print("good")\n');

/** A name no test run has used, so that finding it anywhere means this case wrote it. */
const evilName = () => `evil-${randomBytes(6).toString('hex')}`;

// ---------------------------------------------------------------------------------------------
// tar: hand-written ustar headers, so any name, type, size or link target can be written.

const TAR_TYPE = { file: '0', hardlink: '1', symlink: '2', char: '3', dir: '5', fifo: '6', pax: 'x', gnuLongName: 'L' } as const;

interface TarEntry {
  name: string;
  type?: keyof typeof TAR_TYPE;
  data?: Buffer;
  /** The size written in the header; the data that follows is `data`, or that many zero bytes. */
  size?: number;
  linkname?: string;
  mode?: number;
  /** The 12 raw bytes of the header's size field, whatever `size` says (e.g. a base-256 negative number). */
  sizeField?: Buffer;
}

function octal(header: Buffer, offset: number, length: number, value: number): void {
  header.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'ascii');
}

function tarHeader(entry: TarEntry, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(entry.name, 0, 100, 'utf8');
  octal(h, 100, 8, entry.mode ?? (entry.type === 'dir' ? 0o755 : 0o644));
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  if (entry.sizeField) entry.sizeField.copy(h, 124, 0, 12);
  else octal(h, 124, 12, size);
  octal(h, 136, 12, 0);
  h.write(TAR_TYPE[entry.type ?? 'file'], 156, 1, 'ascii');
  h.write(entry.linkname ?? '', 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  octal(h, 329, 8, entry.type === 'char' ? 1 : 0); // /dev/null is 1,3
  octal(h, 337, 8, entry.type === 'char' ? 3 : 0);
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}

/** The blocks of a tar archive, lazily: a 300 MiB entry is a stream of one reused zero buffer. */
function* tarBlocks(entries: TarEntry[]): Generator<Buffer> {
  const zeros = Buffer.alloc(MiB);
  for (const entry of entries) {
    const size = entry.data?.length ?? entry.size ?? 0;
    yield tarHeader(entry, size);
    if (entry.data) yield entry.data;
    else for (let left = size; left > 0; left -= zeros.length) yield left >= zeros.length ? zeros : zeros.subarray(0, left);
    if (size % 512) yield Buffer.alloc(512 - (size % 512));
  }
  yield Buffer.alloc(1024);
}

/** One pax record ("<len> key=value\n", where len counts itself). */
function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  return Buffer.from(`${length}${body}`);
}

async function gzip(parts: Iterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(parts), zlib.createGzip(), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) out.push(chunk);
  });
  return Buffer.concat(out);
}

const tarGz = (entries: TarEntry[]) => gzip(tarBlocks(entries));

// ---------------------------------------------------------------------------------------------
// zip: a minimal writer (local headers, central directory, end record) with any name, mode or size.

interface ZipEntry {
  name: string;
  data?: Buffer;
  deflate?: boolean;
  /** st_mode (type and permission bits), stored in the high half of the external attributes. */
  unixMode?: number;
  /** An uncompressed size written in both headers instead of the real one: an entry that lies. */
  claimSize?: number;
}

function zip(entries: ZipEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name, 'utf8');
    const data = entry.data ?? Buffer.alloc(0);
    const body = entry.deflate ? zlib.deflateRawSync(data) : data;
    const crc = zlib.crc32(data);
    const size = entry.claimSize ?? data.length;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // names are UTF-8
    local.writeUInt16LE(entry.deflate ? 8 : 0, 8);
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x21, 12); // 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(entry.unixMode !== undefined ? (3 << 8) | 20 : 20, 4); // made by: 3 = unix
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(entry.deflate ? 8 : 0, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(entry.unixMode !== undefined ? (entry.unixMode << 16) >>> 0 : 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

// ---------------------------------------------------------------------------------------------
// HTTP by hand, for what fetch would fix up: literal ".." in paths, odd multipart bodies.

interface Part {
  name: string;
  filename?: string;
  data: Buffer | string;
}
const BOUNDARY = 'faas-adversarial-boundary';

function multipart(parts: Part[], { close = true } = {}): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const disposition = `form-data; name="${part.name}"${part.filename !== undefined ? `; filename="${part.filename}"` : ''}`;
    const type = part.filename !== undefined ? 'Content-Type: application/octet-stream\r\n' : '';
    chunks.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: ${disposition}\r\n${type}\r\n`), Buffer.from(part.data), Buffer.from('\r\n'));
  }
  if (close) chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

function post(url: string, route: string, body: Buffer, contentType = `multipart/form-data; boundary=${BOUNDARY}`): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    // `path` as an option, not in a URL string: a URL would resolve the ".." segments before sending.
    const { hostname, port } = new URL(url);
    const headers = { 'content-type': contentType, 'content-length': body.length };
    const req = http.request({ hostname, port, path: route, method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined });
        } catch {
          resolve({ status: res.statusCode ?? 0, body: text });
        }
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------

describe('adversarial: hostile uploads are refused and leave nothing behind', () => {
  let platform: TestPlatform;
  let db: DbClient;
  let goodPackage: Buffer;
  let goodRecord: FunctionRecord;
  let packagesBefore: string[];
  const evilNames: string[] = [];

  const apiDir = () => path.join(platform.dataDir, 'api');
  const stagingDir = () => path.join(apiDir(), 'staging');
  const packagesNow = () => readdirSync(path.join(apiDir(), 'packages')).sort();

  const evil = () => {
    const name = evilName();
    evilNames.push(name);
    return name;
  };

  /** Every path named `name` reachable from where an escape could land. */
  function tracesOf(name: string): string[] {
    const found = new Set<string>();
    // The test's whole data folder: the api data dir, its parent and every sibling (db, logs).
    const walk = (dir: string) => {
      let entries: Dirent[];
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        return; // a staging folder removed while we looked
      }
      for (const entry of entries) {
        const full = path.join(dir, entry.name);
        if (entry.name.includes(name)) found.add(full);
        if (entry.isDirectory()) walk(full);
      }
    };
    walk(platform.dataDir);
    for (const dir of ['/tmp', os.tmpdir(), path.dirname(platform.dataDir), '/']) {
      try {
        lstatSync(path.join(dir, name)); // lstat: a dangling symlink counts too
        found.add(path.join(dir, name));
      } catch {
        /* absent, as it should be */
      }
    }
    return [...found];
  }

  /** The staging folder's content once the api has had ~2 s to clean up (cleanup may be async). */
  async function stagingLeftovers(): Promise<string[]> {
    const deadline = Date.now() + 2000;
    for (;;) {
      const left = readdirSync(stagingDir());
      if (left.length === 0 || Date.now() > deadline) return left;
      await sleep(50);
    }
  }

  /** The refusal itself, then what it must leave: no trace of `evil`, an empty staging folder, the victim intact. */
  async function expectRefused(answer: { status: number; body: any }, status: number, code: string, evilEntry?: string): Promise<void> {
    expect({ status: answer.status, body: answer.body }).toEqual({ status, body: { error: { code, message: expect.any(String) } } });
    await expectNothingChanged(evilEntry);
  }

  async function expectNothingChanged(evilEntry?: string): Promise<void> {
    expect(await stagingLeftovers()).toEqual([]);
    if (evilEntry) expect(tracesOf(evilEntry)).toEqual([]);
    expect(packagesNow()).toEqual(packagesBefore);
    expect((await platform.json('GET', '/functions')).body).toContain(VICTIM);
    // The stored record itself, read from db-service: same version, same registration time.
    expect(await db.getFunction(VICTIM)).toEqual(goodRecord);
  }

  const upload = (data: Buffer, filename = 'package.bin', name = VICTIM) => platform.upload(RUNTIME.name, name, data, filename);

  beforeAll(async () => {
    platform = await TestPlatform.start({ services: ['db', 'api'], env: { FAAS_MAX_UPLOAD_BYTES: String(MAX_UPLOAD) } });
    await platform.waitApi();
    // /health answers before db-service does; registration needs it.
    for (let i = 0; i < 100 && !(await platform.json('GET', '/health')).body?.db?.connected; i++) await sleep(100);
    db = new DbClient(platform.env.FAAS_DB_ENDPOINT!).start();

    expect((await platform.json('POST', '/registerRuntime', RUNTIME)).status).toBe(201);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-upload-good-'));
    writeFileSync(path.join(dir, 'main.py'), MAIN_PY);
    writeFileSync(path.join(dir, 'requirements.txt'), '');
    goodPackage = await tarGzOf(dir);
    rmSync(dir, { recursive: true, force: true });
    const first = await upload(goodPackage, 'good.tar.gz');
    expect(first.status).toBe(201);
    goodRecord = (await db.getFunction(VICTIM))!;
    expect(goodRecord.version).toBe(first.body.version);
    packagesBefore = packagesNow();
    expect(packagesBefore).toEqual([`${first.body.version}.tar.gz`]);
  });

  afterAll(async () => {
    db?.close();
    await platform?.stop();
    // Should a case have escaped, do not leave its file on the machine.
    for (const name of evilNames) for (const dir of ['/tmp', os.tmpdir(), '/']) rmSync(path.join(dir, name), { recursive: true, force: true });
  });

  // --- zip entries whose names leave the folder ------------------------------------------------

  test('1. zip slip: an entry "../evil" is refused', async () => {
    const name = evil();
    await expectRefused(await upload(zip([{ name: 'main.py', data: MAIN_PY }, { name: `../${name}`, data: Buffer.from('x') }])), 400, 'INVALID_ARCHIVE', name);
  });

  test('1b. zip slip deep: "a/../../../../evil" is refused', async () => {
    const name = evil();
    await expectRefused(await upload(zip([{ name: 'main.py', data: MAIN_PY }, { name: `a/../../../../${name}`, data: Buffer.from('x') }])), 400, 'INVALID_ARCHIVE', name);
  });

  test('2. zip absolute path "/tmp/evil" is refused', async () => {
    const name = evil();
    await expectRefused(await upload(zip([{ name: 'main.py', data: MAIN_PY }, { name: `/tmp/${name}`, data: Buffer.from('x') }])), 400, 'INVALID_ARCHIVE', name);
    const root = evil();
    await expectRefused(await upload(zip([{ name: `/${root}`, data: Buffer.from('x') }])), 400, 'INVALID_ARCHIVE', root);
  });

  test('3. zip backslash "..\\evil" is refused (a Windows separator is not a file name character)', async () => {
    const name = evil();
    await expectRefused(await upload(zip([{ name: 'main.py', data: MAIN_PY }, { name: `..\\${name}`, data: Buffer.from('x') }])), 400, 'INVALID_ARCHIVE', name);
  });

  test('4. zip sibling prefix: escaping to "staging2" (which starts like "staging") is refused', async () => {
    // Extraction happens in api/staging/pkg-*/tree: three levels up is api/, so this lands in api/staging2,
    // which a check by string prefix on the staging path would let through.
    const name = evil();
    await expectRefused(await upload(zip([{ name: 'main.py', data: MAIN_PY }, { name: `../../../staging2/${name}`, data: Buffer.from('x') }])), 400, 'INVALID_ARCHIVE', name);
    expect(() => lstatSync(path.join(apiDir(), 'staging2'))).toThrow();
  });

  test('4b. zip sibling prefix: escaping to "api2" beside the api data dir is refused', async () => {
    const name = evil();
    await expectRefused(await upload(zip([{ name: 'main.py', data: MAIN_PY }, { name: `../../../../api2/${name}`, data: Buffer.from('x') }])), 400, 'INVALID_ARCHIVE', name);
    expect(() => lstatSync(path.join(platform.dataDir, 'api2'))).toThrow();
  });

  test('5. zip drive letter "C:/evil" is refused', async () => {
    const name = evil();
    await expectRefused(await upload(zip([{ name: 'main.py', data: MAIN_PY }, { name: `C:/${name}`, data: Buffer.from('x') }])), 400, 'INVALID_ARCHIVE', name);
  });

  test('5b. zip entry name with a NUL byte is refused', async () => {
    const name = evil();
    await expectRefused(await upload(zip([{ name: 'main.py', data: MAIN_PY }, { name: `${name}\0.py`, data: Buffer.from('x') }])), 400, 'INVALID_ARCHIVE', name);
  });

  // --- tar entries that leave the folder or are not plain files ---------------------------------

  test('6. tar.gz with "../evil" is refused', async () => {
    const name = evil();
    await expectRefused(await upload(await tarGz([{ name: 'main.py', data: MAIN_PY }, { name: `../${name}`, data: Buffer.from('x') }])), 400, 'INVALID_ARCHIVE', name);
  });

  test('6b. tar.gz with an absolute "/tmp/evil" is refused, not stripped and accepted', async () => {
    const name = evil();
    await expectRefused(await upload(await tarGz([{ name: 'main.py', data: MAIN_PY }, { name: `/tmp/${name}`, data: Buffer.from('x') }])), 400, 'INVALID_ARCHIVE', name);
  });

  test('6c. tar.gz whose pax header rewrites a harmless name to "../evil" is refused', async () => {
    const name = evil();
    const pax = paxRecord('path', `../../../../${name}`);
    const archive = await tarGz([
      { name: 'main.py', data: MAIN_PY },
      { name: 'PaxHeader/harmless', type: 'pax', data: pax },
      { name: 'harmless', data: Buffer.from('x') },
    ]);
    await expectRefused(await upload(archive), 400, 'INVALID_ARCHIVE', name);
  });

  test('6d. tar.gz whose GNU long name is "../evil" is refused', async () => {
    const name = evil();
    const archive = await tarGz([
      { name: 'main.py', data: MAIN_PY },
      { name: '././@LongLink', type: 'gnuLongName', data: Buffer.from(`../${'a/'.repeat(60)}../../../../${name}\0`) },
      { name: 'harmless', data: Buffer.from('x') },
    ]);
    await expectRefused(await upload(archive), 400, 'INVALID_ARCHIVE', name);
  });

  test('7. tar.gz symlink to outside, then a file through it, is refused', async () => {
    // The link points at /tmp (not /etc): should extraction follow it, the escape lands where we look.
    const name = evil();
    const archive = await tarGz([
      { name: 'main.py', data: MAIN_PY },
      { name: 'link', type: 'symlink', linkname: '/tmp' },
      { name: `link/${name}`, data: Buffer.from('x') },
    ]);
    await expectRefused(await upload(archive), 400, 'INVALID_ARCHIVE', name);
  });

  test('8. tar.gz hardlink to /etc/passwd is refused', async () => {
    const name = evil();
    const archive = await tarGz([
      { name: 'main.py', data: MAIN_PY },
      { name, type: 'hardlink', linkname: '/etc/passwd' },
    ]);
    await expectRefused(await upload(archive), 400, 'INVALID_ARCHIVE', name);
  });

  test('9. tar.gz with a FIFO entry is refused', async () => {
    const name = evil();
    await expectRefused(await upload(await tarGz([{ name: 'main.py', data: MAIN_PY }, { name, type: 'fifo' }])), 400, 'INVALID_ARCHIVE', name);
  });

  test('9b. tar.gz with a character device entry (1,3) is refused', async () => {
    const name = evil();
    await expectRefused(await upload(await tarGz([{ name: 'main.py', data: MAIN_PY }, { name, type: 'char' }])), 400, 'INVALID_ARCHIVE', name);
  });

  test('10. zip symlink entry (mode 0o120000 in the external attributes) is refused', async () => {
    const name = evil();
    const archive = zip([
      { name: 'main.py', data: MAIN_PY, unixMode: 0o100644 },
      { name, data: Buffer.from('/etc/passwd'), unixMode: 0o120777 },
    ]);
    await expectRefused(await upload(archive), 400, 'INVALID_ARCHIVE', name);
  });

  // --- bombs and lies about sizes ----------------------------------------------------------------

  test('11. zip bomb by ratio: 200 MB of zeros in ~200 KB is refused on its header, before inflating', async () => {
    // 200 MB is under the 256 MiB total cap, so checkTotal's ratio rule (100x past 1 MiB) is what fires.
    const archive = zip([{ name: 'main.py', data: MAIN_PY }, { name: 'zeros.bin', data: Buffer.alloc(200 * 1000 * 1000), deflate: true }]);
    expect(archive.length).toBeLessThan(MAX_UPLOAD);
    const answer = await upload(archive);
    await expectRefused(answer, 400, 'INVALID_ARCHIVE');
    expect(answer.body.error.message).toMatch(/times its size/);
  }, 60_000);

  test('11b. tar.gz bomb by ratio: 200 MB of zeros is refused', async () => {
    const archive = await tarGz([{ name: 'main.py', data: MAIN_PY }, { name: 'zeros.bin', size: 200 * 1000 * 1000 }]);
    expect(archive.length).toBeLessThan(MAX_UPLOAD);
    const answer = await upload(archive);
    await expectRefused(answer, 400, 'INVALID_ARCHIVE');
    expect(answer.body.error.message).toMatch(/times its size/);
  }, 60_000);

  test('12. zip bomb by count: 10,001 tiny entries are refused', async () => {
    const entries: ZipEntry[] = [];
    for (let i = 0; i <= 10_000; i++) entries.push({ name: `f${String(i).padStart(5, '0')}`, data: Buffer.from('x') });
    const archive = zip(entries);
    expect(archive.length).toBeLessThan(MAX_UPLOAD);
    const answer = await upload(archive);
    await expectRefused(answer, 400, 'INVALID_ARCHIVE');
    expect(answer.body.error.message).toMatch(/10000 entries/);
  }, 60_000);

  test('12b. tar.gz bomb by count: 10,001 tiny entries are refused', async () => {
    const entries: TarEntry[] = [];
    for (let i = 0; i <= 10_000; i++) entries.push({ name: `f${String(i).padStart(5, '0')}`, data: Buffer.from('x') });
    const answer = await upload(await tarGz(entries));
    await expectRefused(answer, 400, 'INVALID_ARCHIVE');
    expect(answer.body.error.message).toMatch(/10000 entries/);
  }, 60_000);

  test('13. one huge entry: a tar.gz header claiming 300 MiB (past the 256 MiB cap) is 413', async () => {
    const archive = await tarGz([{ name: 'main.py', data: MAIN_PY }, { name: 'huge.bin', size: 300 * MiB }]);
    expect(archive.length).toBeLessThan(MAX_UPLOAD);
    await expectRefused(await upload(archive), 413, 'PAYLOAD_TOO_LARGE');
  }, 60_000);

  test('13b. a tar.gz entry with a negative (base-256) size does not buy room for a huge one', async () => {
    // A running total that took -1 TiB at its word would let the next 300 MiB through.
    // -2^40 in base-256 (GNU): a leading 0xff marks a negative two's complement number, ff×7 then 00×5.
    const negative = Buffer.alloc(12, 0xff).fill(0, 7);
    const archive = await tarGz([
      { name: 'main.py', data: MAIN_PY },
      { name: 'negative.bin', sizeField: negative },
      { name: 'huge.bin', size: 300 * MiB },
    ]);
    await expectRefused(await upload(archive), 413, 'PAYLOAD_TOO_LARGE');
  }, 60_000);

  test('14. zip entry whose headers claim 16 bytes but inflate to 64 KiB is refused', async () => {
    const archive = zip([{ name: 'main.py', data: MAIN_PY }, { name: 'liar.bin', data: Buffer.alloc(64 * 1024, 'A'), deflate: true, claimSize: 16 }]);
    await expectRefused(await upload(archive), 400, 'INVALID_ARCHIVE');
  });

  test('14b. zip entry whose headers claim more bytes than it holds is refused', async () => {
    const archive = zip([{ name: 'main.py', data: MAIN_PY }, { name: 'short.bin', data: Buffer.from('only ten b'), deflate: true, claimSize: 100 * 1024 }]);
    await expectRefused(await upload(archive), 400, 'INVALID_ARCHIVE');
  });

  // --- not archives, or broken ones --------------------------------------------------------------

  test('15. random bytes are not an archive', async () => {
    const junk = randomBytes(64 * 1024);
    junk[0] = 0; // neither gzip's 1f 8b nor zip's "PK"
    await expectRefused(await upload(junk), 400, 'INVALID_ARCHIVE');
  });

  test('15b. gzip magic followed by random bytes is refused', async () => {
    await expectRefused(await upload(Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), randomBytes(64 * 1024)])), 400, 'INVALID_ARCHIVE');
  });

  test('15c. zip magic followed by random bytes is refused', async () => {
    await expectRefused(await upload(Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), randomBytes(64 * 1024)])), 400, 'INVALID_ARCHIVE');
  });

  test('16. a truncated gzip (a valid tar.gz cut in half) is refused', async () => {
    // Incompressible content, so that half the .gz ends inside the file data, after main.py.
    const whole = await tarGz([{ name: 'main.py', data: MAIN_PY }, { name: 'blob.bin', data: randomBytes(256 * 1024) }]);
    await expectRefused(await upload(whole.subarray(0, Math.floor(whole.length / 2))), 400, 'INVALID_ARCHIVE');
  });

  test('16b. a truncated zip (a valid zip cut in half, no central directory) is refused', async () => {
    const whole = zip([{ name: 'main.py', data: MAIN_PY }, { name: 'blob.bin', data: randomBytes(256 * 1024) }]);
    await expectRefused(await upload(whole.subarray(0, Math.floor(whole.length / 2))), 400, 'INVALID_ARCHIVE');
  });

  test('17. an upload larger than FAAS_MAX_UPLOAD_BYTES is 413', async () => {
    await expectRefused(await upload(randomBytes(MAX_UPLOAD + 512 * 1024)), 413, 'PAYLOAD_TOO_LARGE');
  });

  // --- hostile multipart bodies ------------------------------------------------------------------

  test('18. a file part with an empty field name is 400 BAD_REQUEST and the api stays up', async () => {
    const body = multipart([{ name: '', filename: 'x.tar.gz', data: goodPackage }]);
    await expectRefused(await post(platform.url, `/registerFunction/${RUNTIME.name}/${VICTIM}`, body), 400, 'BAD_REQUEST');
    const health = await platform.json('GET', '/health');
    expect(health.body.db.connected).toBe(true);
  });

  test('18b. two files in "module" are 400 BAD_REQUEST, and the first one is removed', async () => {
    const body = multipart([
      { name: 'module', filename: 'a.tar.gz', data: goodPackage },
      { name: 'module', filename: 'b.tar.gz', data: goodPackage },
    ]);
    await expectRefused(await post(platform.url, `/registerFunction/${RUNTIME.name}/${VICTIM}`, body), 400, 'BAD_REQUEST');
  });

  test('18c. a multipart body without a file is 400 BAD_REQUEST', async () => {
    await expectRefused(await post(platform.url, `/registerFunction/${RUNTIME.name}/${VICTIM}`, multipart([{ name: 'handler', data: 'main.handle' }])), 400, 'BAD_REQUEST');
  });

  test('18d. a multipart body that never closes its boundary is 400 BAD_REQUEST, not a 500', async () => {
    const body = multipart([{ name: 'module', filename: 'x.tar.gz', data: goodPackage }], { close: false });
    await expectRefused(await post(platform.url, `/registerFunction/${RUNTIME.name}/${VICTIM}`, body), 400, 'BAD_REQUEST');
  });

  test('18e. a multipart Content-Type without a boundary is 400 BAD_REQUEST, not a 500', async () => {
    const body = multipart([{ name: 'module', filename: 'x.tar.gz', data: goodPackage }]);
    await expectRefused(await post(platform.url, `/registerFunction/${RUNTIME.name}/${VICTIM}`, body, 'multipart/form-data'), 400, 'BAD_REQUEST');
  });

  test('18f. a hostile multipart filename is only a label: nothing is written under it', async () => {
    // Accepted (the archive is good) under another function name; the file name must not become a path.
    const name = evil();
    const body = multipart([{ name: 'module', filename: `../../../../../tmp/${name}`, data: goodPackage }]);
    const answer = await post(platform.url, `/registerFunction/${RUNTIME.name}/filename-probe`, body);
    expect(answer.status).toBe(201);
    expect(answer.body.version).toBe(goodRecord.version);
    expect(tracesOf(name)).toEqual([]);
    expect(await stagingLeftovers()).toEqual([]);
    expect(await db.getFunction(VICTIM)).toEqual(goodRecord);
  });

  test('19. a client that aborts mid-upload leaves the api up and the staging folder empty', async () => {
    const total = Math.floor(MAX_UPLOAD * 0.9);
    const head = Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="module"; filename="big.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n`);
    const req = http.request(`${platform.url}/registerFunction/${RUNTIME.name}/${VICTIM}`, {
      method: 'POST',
      headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': total },
    });
    req.on('error', () => undefined); // the socket is destroyed on purpose
    let answered = false;
    req.on('response', () => (answered = true));
    req.write(head);
    req.write(randomBytes(Math.floor(total / 2) - head.length));
    // Abort only once the api has started writing the upload, so that there is something to clean.
    const deadline = Date.now() + 5000;
    while (readdirSync(stagingDir()).length === 0 && Date.now() < deadline) await sleep(10);
    expect(readdirSync(stagingDir()).length).toBeGreaterThan(0);
    req.destroy();
    expect(answered).toBe(false);

    const health = await platform.json('GET', '/health');
    expect(health.body.db.connected).toBe(true);
    await expectNothingChanged();
  });

  // --- bad names ---------------------------------------------------------------------------------

  test('20. bad names: 400 INVALID_NAME for the function, 404 for the runtime, nothing registered', async () => {
    const body = multipart([{ name: 'module', filename: 'good.tar.gz', data: goodPackage }]);
    const route = (rt: string, fn: string) => post(platform.url, `/registerFunction/${rt}/${fn}`, body);
    // An encoded "../x" reaches the route as the name "../x".
    await expectRefused(await route(RUNTIME.name, '..%2Fx'), 400, 'INVALID_NAME');
    await expectRefused(await route(RUNTIME.name, '..'), 400, 'INVALID_NAME');
    await expectRefused(await route(RUNTIME.name, 'A-Upper'), 400, 'INVALID_NAME');
    await expectRefused(await route(RUNTIME.name, 'a'.repeat(64)), 400, 'INVALID_NAME');
    await expectRefused(await route(RUNTIME.name, '-lead'), 400, 'INVALID_NAME');
    // A literal "../x" is two more path segments: no route has that shape.
    await expectRefused(await route(RUNTIME.name, '../x'), 404, 'NOT_FOUND');
    // The runtime name is checked after the function's: an encoded slash is no runtime; a literal one no route.
    await expectRefused(await route('py%2Ffixture', 'okname'), 404, 'RUNTIME_NOT_FOUND');
    await expectRefused(await route('py/fixture', 'okname'), 404, 'NOT_FOUND');
    await expectRefused(await route('..', 'okname'), 404, 'RUNTIME_NOT_FOUND');
    const listed = (await platform.json('GET', '/functions')).body as string[];
    expect(listed.filter((f) => f !== VICTIM && f !== 'filename-probe')).toEqual([]);
  });

  // --- empty -------------------------------------------------------------------------------------

  test('21. an empty archive (a gzip of an empty tar) is refused', async () => {
    await expectRefused(await upload(await gzip([Buffer.alloc(1024)])), 400, 'INVALID_ARCHIVE');
  });

  test('21b. an empty gzip stream (no tar at all) is refused', async () => {
    await expectRefused(await upload(await gzip([])), 400, 'INVALID_ARCHIVE');
  });

  test('21c. an empty zip (only the end record) is refused', async () => {
    await expectRefused(await upload(zip([])), 400, 'INVALID_ARCHIVE');
  });

  test('21d. an archive holding only folders has no code and is refused', async () => {
    await expectRefused(await upload(await tarGz([{ name: 'src/', type: 'dir' }, { name: 'src/lib/', type: 'dir' }])), 400, 'INVALID_ARCHIVE');
  });

  // --- and after all that ------------------------------------------------------------------------

  test('the good package still registers as the very same version (200: nothing had changed)', async () => {
    const again = await upload(goodPackage, 'good.tar.gz');
    expect(again.status).toBe(200);
    expect(again.body.version).toBe(goodRecord.version);
    expect(await stagingLeftovers()).toEqual([]);
  });
});
