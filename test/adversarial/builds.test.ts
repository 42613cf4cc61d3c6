import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import type Docker from 'dockerode';
import { buildImage } from '../../cli/actions/images';
import { tarGzOf } from '../helpers/archives';
import { docker, TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

/**
 * Hostile dependencies steps on a real worker and a real Docker engine. The attack is a function
 * package whose requirements.txt names a local package: its setup.py runs inside pip, in the step.
 * What it finds is written to probe.json next to the code, which the function prints when called,
 * so the call's result carries the step's view of its own sandbox. Nothing reaches PyPI: the step
 * has no network.
 */

const CAP_MB = 40;
const DEPS_TIMEOUT_MS = 20_000;
const DEPS = 'pip3 install -r requirements.txt';
const PROC = { name: 'pydeps', image: 'pythonruntime', path: '/ws', dependencies: DEPS, run: 'python3 main.py', mode: 'process' };
const HANDLER = { name: 'pydepshandler', image: 'pythonruntime', path: '/ws', dependencies: DEPS, run: 'python3 /opt/faas/handler.py', mode: 'handler' };

/** setup.py of the local package "evil": `body` runs first, with record(**kv) adding to probe.json. */
const setupPy = (body: string) => `import errno, json, os, re, socket, sys, time
PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'probe.json')
def record(**kv):
    data = json.load(open(PROBE)) if os.path.exists(PROBE) else {}
    data.update(kv)
    with open(PROBE, 'w') as f:
        json.dump(data, f)
def attempt(f):
    try:
        f()
        return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
${body}
from setuptools import setup
setup(name='evil', version='0.1', py_modules=['evilmod'])
`;

/** main.py: the probe, plus whether the dependency is importable, plus `extra` (a dict named probe is in scope). */
const mainPy = (extra = '') => `import json, os
probe = json.load(open('probe.json')) if os.path.exists('probe.json') else {}
import evilmod
probe['module'] = evilmod.HELLO
${extra}
print(json.dumps(probe))
`;

async function packageOf(files: Record<string, string>): Promise<Buffer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-builds-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return tarGzOf(dir);
}

/** A function package whose dependencies step runs `setupBody`; `tag` makes packages (and so images) distinct. */
const hostile = (setupBody: string, tag: string, extraMain = '') =>
  packageOf({
    'requirements.txt': './evil\n',
    'evil/setup.py': setupPy(setupBody),
    'evil/evilmod.py': `HELLO = 'installed'\nTAG = ${JSON.stringify(tag)}\n`,
    'main.py': mainPy(extraMain),
  });

describe('adversarial: the dependencies step is sandboxed and its images are kept only while needed', () => {
  let platform: TestPlatform;
  let apiPort = 0;
  const rebuiltImage = () => `${platform.label}-rt:latest`;

  const deploy = async (runtime: string, name: string, data: Buffer) => {
    const answer = await platform.upload(runtime, name, data);
    expect([200, 201]).toContain(answer.status);
    return answer.body as { version: string };
  };
  const call = async (funcName: string) => {
    const answer = await platform.json('POST', '/invokeFunction', { funcName, params: {} });
    expect(answer.status).toBe(202);
    return platform.waitFinal(answer.body.callNum, 180_000);
  };
  const resultOf = async (funcName: string) => {
    const final = await call(funcName);
    expect({ status: final.status, error: final.error }).toEqual({ status: 'DONE', error: undefined });
    return JSON.parse(final.result);
  };
  /** This platform's function images of one function version. */
  const imagesOf = (version: string) => docker.listImages({ filters: { label: [`io.faas.platform=${platform.label}`, `io.faas.version=${version}`, 'io.faas.role=prepare'] } });
  const buildContainers = () => platform.containers(['io.faas.role=prepare']);

  beforeAll(async () => {
    platform = await TestPlatform.start({
      env: {
        FAAS_MAX_FUNCTION_IMAGE_MB: String(CAP_MB),
        FAAS_DEPS_TIMEOUT_MS: String(DEPS_TIMEOUT_MS),
        FAAS_DEPS_MEMORY_MB: '256',
        FAAS_MAX_CONCURRENT_BUILDS: '2',
        FAAS_IMAGE_GC_INTERVAL_MS: '1000',
        FAAS_WORKER_CAPACITY: '6',
        FAAS_PRELOAD: 'none',
        FAAS_CALL_TIMEOUT_MS: '30000',
      },
    });
    apiPort = Number(new URL(platform.url).port);
    for (const runtime of [PROC, HANDLER]) expect((await platform.json('POST', '/registerRuntime', runtime)).status).toBe(201);
  });
  afterAll(async () => {
    await platform?.stop();
    await docker
      .getImage(rebuiltImage())
      .remove({ force: true })
      .catch(() => undefined);
  });

  describe('what the step finds from inside', () => {
    let probe: Promise<Record<string, unknown>>;
    const probed = () =>
      (probe ??= (async () => {
        await deploy(
          'pydeps',
          'inside',
          await hostile(
            `status = open('/proc/self/status').read()
def conn(host, port):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, port))
        return 'connected'
    except socket.timeout:
        return 'timeout'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
    finally:
        s.close()
outside = {}
for p in ['/evil.txt', '/usr/evil.txt', '/usr/lib/python3/dist-packages/evil_site.py', '/opt/faas/handler.py', '/etc/passwd']:
    outside[p] = attempt(lambda: open(p, 'a').write('x'))
record(uid=os.getuid(), euid=os.geteuid(), gid=os.getgid(),
       capEff=re.search(r'CapEff:\\s*(\\w+)', status).group(1), capBnd=re.search(r'CapBnd:\\s*(\\w+)', status).group(1),
       noNewPrivs=re.search(r'NoNewPrivs:\\s*(\\d)', status).group(1),
       raw=attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)),
       ifaces=sorted(os.listdir('/sys/class/net')),
       loopback=conn('127.0.0.1', ${apiPort}), gateway=conn('172.17.0.1', ${apiPort}),
       outside=outside)`,
            'inside',
            `probe['kept'] = [p for p in ['/evil.txt', '/usr/evil.txt', '/usr/lib/python3/dist-packages/evil_site.py'] if os.path.exists(p)]`,
          ),
        );
        return resultOf('inside');
      })());

    test('the step runs as the sandbox user, not root, and its package is still installed for the function', async () => {
      const p = await probed();
      expect({ uid: p.uid, euid: p.euid, gid: p.gid }).toEqual({ uid: 65534, euid: 65534, gid: 65534 });
      expect(p.module).toBe('installed');
    });

    test('the step holds no capability and cannot gain privileges', async () => {
      const p = await probed();
      expect({ capEff: p.capEff, capBnd: p.capBnd, noNewPrivs: p.noNewPrivs }).toEqual({ capEff: '0000000000000000', capBnd: '0000000000000000', noNewPrivs: '1' });
    });

    test('a raw socket (NET_RAW) is refused in the step', async () => {
      expect((await probed()).raw).toBe('EPERM');
    });

    test('the step has no network: only a loopback of its own, the host unreachable', async () => {
      const p = await probed();
      expect(p.ifaces).toEqual(['lo']);
      // 127.0.0.1 is the container's own loopback: the api's port is not there.
      expect(p.loopback).toBe('ECONNREFUSED');
      expect(p.gateway).toBe('ENETUNREACH');
    });

    test('writes outside the function folder are refused, and nothing of them is in the function image', async () => {
      const p = await probed();
      expect(p.outside).toEqual({
        '/evil.txt': 'EACCES',
        '/usr/evil.txt': 'EACCES',
        '/usr/lib/python3/dist-packages/evil_site.py': 'EACCES',
        '/opt/faas/handler.py': 'EACCES',
        '/etc/passwd': 'EACCES',
      });
      expect(p.kept).toEqual([]);
    });
  });

  test('the engine holds the step in the sandbox: user, capabilities, network, memory without swap, CPU, processes, no log', async () => {
    await deploy('pydeps', 'slowstep', await hostile('time.sleep(8)', 'slowstep'));
    const calling = call('slowstep');
    const [found] = await until(buildContainers, (c) => c.length > 0, 60_000, 'the build container');
    const info = (await docker.getContainer(found!.Id).inspect()) as Docker.ContainerInspectInfo & { HostConfig: Docker.HostConfig };
    const host = info.HostConfig;
    expect(info.Config.User).toBe('65534:65534');
    expect({ capDrop: host.CapDrop, securityOpt: host.SecurityOpt, network: host.NetworkMode }).toEqual({ capDrop: ['ALL'], securityOpt: ['no-new-privileges'], network: 'none' });
    expect({ memory: host.Memory, swap: host.MemorySwap, cpus: host.NanoCpus, pids: host.PidsLimit }).toEqual({ memory: 256 * 1024 * 1024, swap: 256 * 1024 * 1024, cpus: 1e9, pids: 128 });
    expect(host.Ulimits).toContainEqual({ Name: 'fsize', Soft: CAP_MB * 1024 * 1024, Hard: CAP_MB * 1024 * 1024 });
    expect({ log: host.LogConfig?.Type, logPath: info.LogPath }).toEqual({ log: 'none', logPath: '' });
    expect((await calling).status).toBe('DONE');
    await until(buildContainers, (c) => c.length === 0, 30_000, 'the build container removed');
  });

  test('printing 300 MB in the step grows no log on the host; the platform keeps only its end', async () => {
    await deploy(
      'pydeps',
      'loud',
      await hostile(
        `fd = os.open('/proc/1/fd/1', os.O_WRONLY)
chunk = (b'y' * 1023 + b'\\n') * 1024
for _ in range(300):
    os.write(fd, chunk)
os.write(fd, b'LAST WORDS OF THE LOUD STEP\\n')
sys.exit(3)`,
        'loud',
      ),
    );
    const calling = call('loud');
    const [found] = await until(buildContainers, (c) => c.length > 0, 60_000, 'the build container');
    const info = await docker.getContainer(found!.Id).inspect();
    expect({ log: info.HostConfig.LogConfig?.Type, logPath: info.LogPath }).toEqual({ log: 'none', logPath: '' });
    const final = await calling;
    expect({ status: final.status, reason: final.reason }).toEqual({ status: 'ERROR', reason: 'dependencies_failed' });
    expect(final.stderr.length).toBeLessThan(70 * 1024);
    const total = Number(/\[faas: (\d+) bytes of output, the last 65536 kept\]/.exec(final.stderr)?.[1]);
    expect(total).toBeGreaterThanOrEqual(300 * 1024 * 1024);
    expect(final.stderr).toContain('LAST WORDS OF THE LOUD STEP');
    expect(await imagesOf((await platform.json('GET', '/v1/functions/loud')).body.version)).toEqual([]);
  });

  test('a step that keeps filling the disk is stopped while it runs, past FAAS_MAX_FUNCTION_IMAGE_MB, and no image is kept', async () => {
    const { version } = await deploy(
      'pydeps',
      'filler',
      await hostile(
        `i = 0
while True:
    with open('fill-%d' % i, 'wb') as f:
        f.write(os.urandom(4 * 1024 * 1024))
    i += 1
    time.sleep(0.2)`,
        'filler',
      ),
    );
    const final = await call('filler');
    expect({ status: final.status, reason: final.reason }).toEqual({ status: 'ERROR', reason: 'dependencies_failed' });
    // Stopped by the size watch, not by the time limit.
    expect(final.error).toContain(`wrote more than the function image's cap of ${CAP_MB} MB (FAAS_MAX_FUNCTION_IMAGE_MB)`);
    expect(await imagesOf(version)).toEqual([]);
    await until(buildContainers, (c) => c.length === 0, 30_000, 'the build container removed');
  });

  test('a step that ends having added more than the cap is refused with the cap in its error, and no image is kept', async () => {
    const { version } = await deploy(
      'pydeps',
      'burst',
      await hostile(
        `for i in range(${CAP_MB / 4 + 6}):
    with open('burst-%d' % i, 'wb') as f:
        f.write(os.urandom(4 * 1024 * 1024))`,
        'burst',
      ),
    );
    const final = await call('burst');
    expect({ status: final.status, reason: final.reason }).toEqual({ status: 'ERROR', reason: 'dependencies_failed' });
    expect(final.error).toContain(`the function image's cap of ${CAP_MB} MB (FAAS_MAX_FUNCTION_IMAGE_MB)`);
    expect(final.error).toContain('the function is refused');
    expect(await imagesOf(version)).toEqual([]);
  });

  test('no single file in the step may grow past the cap (EFBIG)', async () => {
    await deploy(
      'pydeps',
      'bigfile',
      await hostile(
        `def big():
    with open('big.bin', 'wb') as f:
        for _ in range(${CAP_MB * 2}):
            f.write(b'z' * 1024 * 1024)
print('BIG FILE: ' + attempt(big))
os.remove('big.bin')
sys.exit(4)`,
        'bigfile',
      ),
    );
    const final = await call('bigfile');
    expect({ status: final.status, reason: final.reason }).toEqual({ status: 'ERROR', reason: 'dependencies_failed' });
    expect(final.stderr).toContain('BIG FILE: EFBIG');
  });

  test('a step that runs past FAAS_DEPS_TIMEOUT_MS is stopped and no image is kept', async () => {
    const { version } = await deploy('pydeps', 'sleeper', await hostile('time.sleep(600)', 'sleeper'));
    const final = await call('sleeper');
    expect({ status: final.status, reason: final.reason }).toEqual({ status: 'ERROR', reason: 'dependencies_failed' });
    expect(final.error).toContain(`ran past ${DEPS_TIMEOUT_MS} ms (FAAS_DEPS_TIMEOUT_MS)`);
    expect(await imagesOf(version)).toEqual([]);
    await until(buildContainers, (c) => c.length === 0, 30_000, 'the build container removed');
  });

  test('a failing step is not run again for every call: the next call fails at once with the same words', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    const { version } = await deploy('pydeps', 'failsfast', await packageOf({ 'requirements.txt': '--no-index\nfaas-no-such-package==0.0.1\n', 'main.py': 'print(1)\n' }));
    const first = await call('failsfast');
    const second = await call('failsfast');
    for (const final of [first, second]) expect({ status: final.status, reason: final.reason }).toEqual({ status: 'ERROR', reason: 'dependencies_failed' });
    expect(second.error).toBe(first.error);
    expect(first.error).toContain('faas-no-such-package');
    // The engine's own record: one build container was created for this version, not two.
    const events = (await docker.getEvents({
      since,
      until: Math.ceil(Date.now() / 1000) + 1,
      filters: { type: ['container'], event: ['create'], label: [`io.faas.platform=${platform.label}`, `io.faas.version=${version}`] },
    })) as NodeJS.ReadableStream;
    let text = '';
    for await (const chunk of events as AsyncIterable<Buffer>) text += chunk.toString();
    expect(text.trim().split('\n').filter(Boolean)).toHaveLength(1);
  });

  test('builds beyond FAAS_MAX_CONCURRENT_BUILDS wait their turn: all end DONE, never more than two at once', async () => {
    const names = ['queued1', 'queued2', 'queued3', 'queued4', 'queued5'];
    for (const name of names) await deploy('pydeps', name, await hostile(`start = time.time()\ntime.sleep(3)\nrecord(window=[start, time.time()])`, name));
    let most = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        most = Math.max(most, (await buildContainers()).length);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const results = await Promise.all(names.map((name) => resultOf(name)));
    watching = false;
    await watcher;
    const windows = results.map((r) => r.window as [number, number]);
    const overlapAt = (t: number) => windows.filter(([s, e]) => s <= t && t < e).length;
    expect(Math.max(...windows.map(([s]) => overlapAt(s)))).toBeLessThanOrEqual(2);
    expect(most).toBeLessThanOrEqual(2);
    expect(most).toBeGreaterThan(0);
  });

  test('a local package installs as the sandbox user and imports in handler mode too', async () => {
    await deploy(
      'pydepshandler',
      'handlerdeps',
      await packageOf({
        'requirements.txt': './lib\n',
        'lib/setup.py': "from setuptools import setup\nsetup(name='hlib', version='0.1', py_modules=['hlib'])\n",
        'lib/hlib.py': "import os\ndef where():\n    return os.path.abspath(__file__)\n",
        'handler.py': 'import hlib\n\ndef handle(params):\n    return {"where": hlib.where()}\n',
      }),
    );
    const final = await call('handlerdeps');
    expect(final.status).toBe('DONE');
    expect(JSON.parse(final.result).where).toMatch(/^\/opt\/faas\/deps\/lib\/python3\.\d+\/site-packages\/hlib\.py$/);
  });

  test('an image whose step added nothing but the package is marked injectable; one with dependencies is not', async () => {
    const plain = await deploy('pydeps', 'plain', await packageOf({ 'requirements.txt': '', 'main.py': 'print("{}")\n' }));
    const withDeps = await deploy('pydeps', 'withdeps', await hostile('', 'withdeps'));
    expect((await call('plain')).status).toBe('DONE');
    expect((await call('withdeps')).status).toBe('DONE');
    const [a] = await imagesOf(plain.version);
    const [b] = await imagesOf(withDeps.version);
    expect({ plain: a?.Labels['io.faas.injectable'], withDeps: b?.Labels['io.faas.injectable'] }).toEqual({ plain: 'true', withDeps: 'false' });
  });

  test('deleting a function removes its image', async () => {
    const { version } = await deploy('pydeps', 'doomed', await hostile('', 'doomed'));
    await resultOf('doomed');
    expect(await imagesOf(version)).toHaveLength(1);
    expect((await platform.json('DELETE', '/v1/functions/doomed')).status).toBe(204);
    await until(() => imagesOf(version), (images) => images.length === 0, 30_000, 'the deleted function’s image removed');
  });

  test('registering a new version removes the previous version’s image once nothing uses it', async () => {
    const v1 = await deploy('pydeps', 'versioned', await hostile('', 'versioned-1'));
    expect((await resultOf('versioned')).module).toBe('installed');
    expect(await imagesOf(v1.version)).toHaveLength(1);
    const v2 = await deploy('pydeps', 'versioned', await hostile('', 'versioned-2'));
    expect(v2.version).not.toBe(v1.version);
    await resultOf('versioned');
    await until(() => imagesOf(v1.version), (images) => images.length === 0, 30_000, 'the previous version’s image removed');
    expect(await imagesOf(v2.version)).toHaveLength(1);
  });

  test('a runtime image rebuilt under the same tag gives a new function image without a worker restart, and the old one goes', async () => {
    const build = async (mark: string) => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-rt-'));
      writeFileSync(path.join(dir, 'Dockerfile'), 'FROM pythonruntime\nCOPY rtv /rtv\n');
      writeFileSync(path.join(dir, 'rtv'), mark);
      await buildImage(docker, tar.c({ cwd: dir, portable: true }, ['Dockerfile', 'rtv']) as unknown as NodeJS.ReadableStream, {
        t: rebuiltImage(),
        labels: { 'io.faas.platform': platform.label },
      });
    };
    await build('first');
    const runtime = { ...PROC, name: 'rebuilt', image: rebuiltImage() };
    expect((await platform.json('POST', '/registerRuntime', runtime)).status).toBe(201);
    const { version } = await deploy('rebuilt', 'onrebuilt', await hostile('', 'onrebuilt', `probe['rtv'] = open('/rtv').read()`));
    const workerPid = platform.procs.get('worker')!.pid;
    expect((await resultOf('onrebuilt')).rtv).toBe('first');
    const [before] = await imagesOf(version);
    expect(before).toBeDefined();
    await build('second');
    expect((await resultOf('onrebuilt')).rtv).toBe('second');
    expect(platform.procs.get('worker')!.pid).toBe(workerPid);
    const after = await until(() => imagesOf(version), (images) => images.length === 1 && images[0]!.Id !== before!.Id, 30_000, 'only the new function image left');
    expect(after[0]!.RepoTags).not.toEqual(before!.RepoTags);
  });
});
