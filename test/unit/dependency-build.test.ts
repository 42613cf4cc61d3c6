import * as tar from 'tar';
import { loadWorkerConfig } from '../../worker/config';
import { buildHostConfig, containerPath, DEPS_DIR, folderTar, isInjectable, mb, TailBuffer, type BuildLimits } from '../../worker/dependency-build';
import { functionImageRef, unneededImages } from '../../worker/function-images';

const LIMITS: BuildLimits = {
  user: '65534:65534',
  network: 'none',
  memoryBytes: 256 * 1024 * 1024,
  nanoCpus: 1e9,
  pidsLimit: 128,
  nofile: 1024,
  maxLayerBytes: 512 * 1024 * 1024,
  timeoutMs: 300_000,
  maxConcurrent: 2,
  pollMs: 1000,
  maxLogBytes: 64 * 1024,
};

describe('the dependencies step’s container', () => {
  test('drops every capability, gains no privilege, has memory without swap, caps file size, keeps no engine log', () => {
    const host = buildHostConfig(LIMITS);
    expect(host).toMatchObject({
      NetworkMode: 'none',
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      PidsLimit: 128,
      Memory: 256 * 1024 * 1024,
      MemorySwap: 256 * 1024 * 1024,
      NanoCpus: 1e9,
      LogConfig: { Type: 'none', Config: {} },
    });
    expect(host.Ulimits).toContainEqual({ Name: 'fsize', Soft: 512 * 1024 * 1024, Hard: 512 * 1024 * 1024 });
    // Scratch folders are tmpfs no larger than the memory the step has.
    expect(host.Tmpfs?.['/tmp']).toContain(`size=${256 * 1024 * 1024}`);
    expect(host.Tmpfs?.['/var/tmp']).toBeDefined();
  });

  test('the runtime image’s VOLUME paths are capped tmpfs, never host disk', () => {
    const host = buildHostConfig(LIMITS, ['/data', '/var/lib/x']);
    expect(host.Tmpfs?.['/data']).toContain(`size=${256 * 1024 * 1024}`);
    expect(host.Tmpfs?.['/var/lib/x']).toContain('nosuid');
    expect(host.Binds ?? []).toEqual([]);
  });

  test('the network is the operator’s choice', () => {
    expect(buildHostConfig({ ...LIMITS, network: 'builds-net' }).NetworkMode).toBe('builds-net');
  });
});

describe('isInjectable', () => {
  const pkg = ['main.py', 'requirements.txt', 'lib/', 'lib/util.py'];
  const skeleton = ['/ws', '/opt', '/opt/faas', DEPS_DIR, '/out'];

  test('a step that added only the package and the platform’s folders is injectable', () => {
    expect(isInjectable([...skeleton, '/ws/main.py', '/ws/requirements.txt', '/ws/lib', '/ws/lib/util.py'], '/ws', pkg)).toBe(true);
    expect(isInjectable(['/tmp/x', '/var/tmp/y'], '/ws/', pkg)).toBe(true);
  });

  test('anything installed, built next to the code, or written elsewhere needs the function image', () => {
    expect(isInjectable([...skeleton, `${DEPS_DIR}/lib`], '/ws', pkg)).toBe(false);
    expect(isInjectable(['/ws/lib/build', '/ws/lib/build/x.py'], '/ws', pkg)).toBe(false);
    expect(isInjectable(['/ws/node_modules'], '/ws', pkg)).toBe(false);
    expect(isInjectable(['/etc/x'], '/ws', pkg)).toBe(false);
    // A prefix is not a folder: /wsx is not /ws.
    expect(isInjectable(['/wsx'], '/ws', pkg)).toBe(false);
  });

  test('package paths are read as the tar names them (./, trailing slash)', () => {
    expect(isInjectable(['/app/code/a.py', '/app/code/d'], '/app/code', ['./a.py', './d/'])).toBe(true);
  });
});

describe('folderTar', () => {
  test('holds the folders, owned by the given user, and ends like a tar', async () => {
    const entries: Array<{ path: string; uid: number; gid: number; type: string }> = [];
    const parser = new tar.Parser({ onReadEntry: (e) => (entries.push({ path: e.path, uid: e.uid!, gid: e.gid!, type: e.type }), e.resume()) });
    await new Promise<void>((resolve) => {
      parser.on('end', resolve);
      parser.end(folderTar(['/ws', DEPS_DIR], 65534, 65533));
    });
    expect(entries).toEqual([
      { path: 'ws/', uid: 65534, gid: 65533, type: 'Directory' },
      { path: 'opt/faas/deps/', uid: 65534, gid: 65533, type: 'Directory' },
    ]);
  });
});

describe('folders given to the step’s user', () => {
  const names = async (buffer: Buffer) => {
    const out: string[] = [];
    const parser = new tar.Parser({ onReadEntry: (e) => (out.push(e.path), e.resume()) });
    await new Promise<void>((resolve) => {
      parser.on('end', resolve);
      parser.end(buffer);
    });
    return out;
  };

  test('are resolved as the engine would: dots and doubled slashes cannot point elsewhere', async () => {
    expect(containerPath('/ws/./a/../b//')).toBe('/ws/b');
    expect(containerPath('/ws/../../etc')).toBe('/etc');
    expect(await names(folderTar(['/app//code/', '/ws/x/..'], 1, 1))).toEqual(['app/code/', 'ws/']);
  });

  test('never include the root itself', async () => {
    expect(await names(folderTar(['/', '/..', '//'], 1, 1))).toEqual([]);
  });
});

describe('the worker’s build settings', () => {
  test('default to no network, two builds at once, a 512 MB layer, 1 GiB of memory', () => {
    expect(loadWorkerConfig({ FAAS_NODE_ID: 'n1' })).toMatchObject({ depsNetwork: 'none', maxConcurrentBuilds: 2, maxFunctionImageMb: 512, depsMemoryMb: 1024, imageGcIntervalMs: 60_000 });
  });

  test('take a named network, and refuse a name Docker could not have', () => {
    expect(loadWorkerConfig({ FAAS_NODE_ID: 'n1', FAAS_DEPS_NETWORK: 'builds_net-1' }).depsNetwork).toBe('builds_net-1');
    expect(() => loadWorkerConfig({ FAAS_NODE_ID: 'n1', FAAS_DEPS_NETWORK: 'container:abc' })).toThrow(/FAAS_DEPS_NETWORK must be none, bridge or the name of a Docker network/);
    expect(() => loadWorkerConfig({ FAAS_NODE_ID: 'n1', FAAS_DEPS_NETWORK: 'host' })).toThrow(/FAAS_DEPS_NETWORK must not be host/);
    expect(() => loadWorkerConfig({ FAAS_NODE_ID: 'n1', FAAS_MAX_CONCURRENT_BUILDS: '0' })).toThrow(/FAAS_MAX_CONCURRENT_BUILDS must be at least 1/);
  });
});

describe('TailBuffer', () => {
  test('keeps everything under its limit', () => {
    const b = new TailBuffer(10);
    b.write(Buffer.from('hello'));
    expect(b.text()).toBe('hello');
  });

  test('keeps the last bytes, counts all, and says so', async () => {
    const b = new TailBuffer(8);
    for (const part of ['aaaa', 'bbbb', 'cccc', 'dd']) b.write(Buffer.from(part));
    await new Promise((r) => b.end(r));
    expect(b.total).toBe(14);
    expect(b.text()).toBe('[faas: 14 bytes of output, the last 8 kept]\nbbccccdd');
  });
});

describe('function image names and removal', () => {
  const runtime = { name: 'python', path: '/ws', dependencies: 'pip3 install -r requirements.txt' };
  const fn = { version: 'a'.repeat(64) };

  test('the name changes with the runtime image id, so a rebuilt runtime gives a new image', () => {
    const one = functionImageRef('faas', 'sha256:1', fn, runtime, '65534:65534');
    expect(one).toMatch(/^faas-fn\/python:[0-9a-f]{24}$/);
    expect(functionImageRef('faas', 'sha256:1', fn, runtime, '65534:65534')).toBe(one);
    expect(functionImageRef('faas', 'sha256:2', fn, runtime, '65534:65534')).not.toBe(one);
    expect(functionImageRef('faas', 'sha256:1', { version: 'b'.repeat(64) }, runtime, '65534:65534')).not.toBe(one);
    expect(functionImageRef('faas', 'sha256:1', fn, { ...runtime, dependencies: 'true' }, '65534:65534')).not.toBe(one);
    expect(functionImageRef('faas', 'sha256:1', fn, runtime, '1000:1000')).not.toBe(one);
  });

  test('images no one needs are named for removal: by tag when tagged, by id when dangling', () => {
    const images = [
      { Id: 'sha256:keep', RepoTags: ['faas-fn/python:keep'] },
      { Id: 'sha256:old', RepoTags: ['faas-fn/python:old'] },
      { Id: 'sha256:both', RepoTags: ['faas-fn/python:keep2', 'faas-fn/python:gone'] },
      { Id: 'sha256:dangling', RepoTags: ['<none>:<none>'] },
      { Id: 'sha256:untagged', RepoTags: null },
    ];
    expect(unneededImages(images, new Set(['faas-fn/python:keep', 'faas-fn/python:keep2']))).toEqual([
      'faas-fn/python:old',
      'faas-fn/python:gone',
      'sha256:dangling',
      'sha256:untagged',
    ]);
  });

  test('sizes are said in whole MB, rounded up', () => {
    expect(mb(512 * 1024 * 1024)).toBe('512 MB');
    expect(mb(1)).toBe('1 MB');
  });
});
