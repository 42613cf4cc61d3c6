import { imageVolumes, MAX_IMAGE_VOLUMES, sandboxHostConfig } from '../../miniworker/container-driver';
import type { Sandbox } from '../../protocol/limits';

const sandbox: Sandbox = {
  memoryBytes: 256 * 1024 * 1024,
  nanoCpus: 1e9,
  pidsLimit: 64,
  nofile: 1024,
  tmpfsBytes: 64 * 1024 * 1024,
  user: '65534:65534',
  network: 'none',
  maxResultBytes: 10_000,
  maxLogBytes: 10_000,
  outputs: true,
  maxOutputBytes: 1000,
};

describe('the VOLUMEs of a runtime image', () => {
  test('are cleaned as the engine cleans them', () => {
    expect(imageVolumes({ '/data': {}, '/var/lib/x/': {}, '/a//b/../c': {}, '/data/': {} })).toEqual(['/a/c', '/data', '/var/lib/x']);
    expect(imageVolumes(null)).toEqual([]);
    expect(imageVolumes(undefined)).toEqual([]);
  });

  test.each(['relative', '/', '/../', '/a:b', '/a,size=1g', '/a\nb'])('%j cannot be covered and is refused', (volume) => {
    expect(() => imageVolumes({ [volume]: {} })).toThrow(/VOLUME the platform cannot cover/);
  });

  test('more than the cap are refused', () => {
    const many = Object.fromEntries(Array.from({ length: MAX_IMAGE_VOLUMES + 1 }, (_, i) => [`/v${i}`, {}]));
    expect(() => imageVolumes(many)).toThrow(`the image declares ${MAX_IMAGE_VOLUMES + 1} VOLUMEs; at most ${MAX_IMAGE_VOLUMES} are allowed`);
  });

  test('each gets a tmpfs of the /tmp size owned by the sandbox user; the platform own mounts keep their options', () => {
    const config = sandboxHostConfig(sandbox, '/ws', ['/data', '/tmp', '/ws', '/out', '/var/cache']);
    const owned = `rw,nosuid,nodev,size=${sandbox.tmpfsBytes},mode=0755,uid=65534,gid=65534`;
    expect(config.Tmpfs).toEqual({
      '/data': owned,
      '/var/cache': owned,
      '/tmp': `rw,nosuid,nodev,size=${sandbox.tmpfsBytes},mode=1777`,
      '/ws': owned,
      '/out': `rw,nosuid,nodev,size=${sandbox.tmpfsBytes},mode=0700,uid=65534,gid=65534`,
    });
    expect(config.ReadonlyRootfs).toBe(true);
    expect(sandboxHostConfig(sandbox).Tmpfs).not.toHaveProperty('/data');
  });
});
