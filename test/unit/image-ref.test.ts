import { registryPolicy, registryRefusal } from '../../protocol/registries';
import { dockerClient } from '../../protocol/docker-client';
import { runtimeInputSchema } from '../../protocol/schemas';
import type { Runtime } from '../../protocol/types';
import { apiToWorkerSchemas, workerRuntimeSchema } from '../../protocol/worker-messages';
import { assertImageRef, imageRefSchema, InvalidImageRefError, isValidImageRef, MAX_IMAGE_REF_LENGTH, parseImageRef } from '../../protocol/image-ref';

const hex64 = 'a'.repeat(64);

describe('image references that Docker accepts', () => {
  test.each([
    ['pythonruntime', { path: 'pythonruntime' }],
    ['pythonruntime:latest', { path: 'pythonruntime', tag: 'latest' }],
    ['library/python', { path: 'library/python' }],
    ['faas-base/debian:bookworm', { path: 'faas-base/debian', tag: 'bookworm' }],
    ['registry.local:5000/pythonruntime', { domain: 'registry.local:5000', path: 'pythonruntime' }],
    ['127.0.0.1:5000/team/pythonruntime:v1.2', { domain: '127.0.0.1:5000', path: 'team/pythonruntime', tag: 'v1.2' }],
    ['localhost/img', { domain: 'localhost', path: 'img' }],
    ['localhost:5000/a/b/c', { domain: 'localhost:5000', path: 'a/b/c' }],
    ['[::1]:5000/img', { domain: '[::1]:5000', path: 'img' }],
    ['[2001:db8::1]/img:tag', { domain: '[2001:db8::1]', path: 'img', tag: 'tag' }],
    ['Registry.Example.COM/img', { domain: 'Registry.Example.COM', path: 'img' }],
    ['my-registry/img', { path: 'my-registry/img' }],
    ['a.b_c__d---e/f', { path: 'a.b_c__d---e/f' }],
    ['a.b-c--d/f', { domain: 'a.b-c--d', path: 'f' }],
    ['a_b__c.d-e--f', { path: 'a_b__c.d-e--f' }],
    ['img:_under', { path: 'img', tag: '_under' }],
    ['img:V1.0-rc_2', { path: 'img', tag: 'V1.0-rc_2' }],
    [`img:${'t'.repeat(128)}`, { path: 'img', tag: 't'.repeat(128) }],
    [`img@sha256:${hex64}`, { path: 'img', digest: `sha256:${hex64}` }],
    [`img:tag@sha256:${hex64}`, { path: 'img', tag: 'tag', digest: `sha256:${hex64}` }],
    [`reg:1/img@sha512:${'0'.repeat(128)}`, { domain: 'reg:1', path: 'img', digest: `sha512:${'0'.repeat(128)}` }],
    [`sha256:${hex64}`, { path: 'sha256', tag: hex64 }],
    ['b7a7007fc80f', { path: 'b7a7007fc80f' }],
    ['0', { path: '0' }],
  ])('%s', (image, expected) => {
    const parsed = parseImageRef(image);
    expect(parsed).toEqual({ ok: true, ref: expected });
    expect(isValidImageRef(image)).toBe(true);
    expect(imageRefSchema.safeParse(image).success).toBe(true);
  });

  test('a reference of exactly the maximum length is accepted', () => {
    const image = `a/${'b'.repeat(MAX_IMAGE_REF_LENGTH - 2)}`;
    expect(image).toHaveLength(MAX_IMAGE_REF_LENGTH);
    expect(isValidImageRef(image)).toBe(true);
  });
});

describe('image names that must never reach a Docker API path', () => {
  test.each([
    ['../../127.0.0.1:1/x?', /contains "\?"/],
    ['../../127.0.0.1:1/x', /contains "\.\."/],
    ['..', /contains "\.\."/],
    ['img/../other', /contains "\.\."/],
    ['img/..', /contains "\.\."/],
    ['%2e%2e/%2e%2e/x', /contains "%"/],
    ['img%2fx', /contains "%"/],
    ['img#frag', /contains "#"/],
    ['img?x=1', /contains "\?"/],
    ['http://127.0.0.1:2375/x', /empty/],
    ['//127.0.0.1:1/x', /empty/],
    ['/abs/path', /empty/],
    ['img/', /empty/],
    ['a//b', /empty/],
    ['127.0.0.1:1/..', /contains "\.\."/],
    ['127.0.0.1:1/./x', /path components/],
    ['Python', /lower case/],
    ['library/Python', /lower case/],
    ['reg.io/Team/img', /lower case/],
    ['img name', /a space/],
    [' img', /a space/],
    ['img\tx', /control character U\+0009/],
    ['img\nx', /control character U\+000A/],
    ['img\u0000', /control character U\+0000/],
    ['img\u007f', /control character U\+007F/],
    ['imáge', /"á"/],
    ['img\\x', /"\\"/],
    ['::1/img', /path components|registry host/],
    ['fe80::1:5000/img', /registry host/],
    ['2001:db8::1/img', /registry host/],
    ['[fe80::1%25eth0]/x', /contains "%"/],
    ['[::1/img', /registry host|path components/],
    ['[zz::1]/img', /registry host|path components/],
    ['img:', /tag/],
    ['img:.tag', /tag/],
    ['img:-tag', /tag/],
    [`img:${'t'.repeat(129)}`, /tag/],
    ['img:tag:again', /tag/],
    ['img@sha256:abc', /digest/],
    [`img@sha256:${'A'.repeat(64)}`, /digest/],
    [`img@md5:${hex64}`, /digest/],
    [`img@sha256:${hex64}x`, /digest/],
    ['img@', /digest/],
    ['-img', /path components/],
    ['img-', /path components/],
    ['_img', /path components/],
    ['img___x', /path components/],
    ['img._x', /path components/],
    ['reg-.io/img', /path components|registry host/],
    ['reg.io:port/img', /registry host/],
    [`a/${'b'.repeat(MAX_IMAGE_REF_LENGTH - 1)}`, /past the 255 allowed/],
    ['', /required/],
  ])('%j is refused', (image, reason) => {
    const parsed = parseImageRef(image);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toMatch(reason);
    expect(isValidImageRef(image)).toBe(false);
    expect(() => assertImageRef(image)).toThrow(InvalidImageRefError);
  });

  test('values that are not strings are refused', () => {
    for (const value of [undefined, null, 42, {}, ['img']]) expect(parseImageRef(value)).toEqual({ ok: false, error: 'an image reference is required' });
  });

  test('the schema names the image and the reason, and shortens a long one', () => {
    const result = imageRefSchema.safeParse('../../127.0.0.1:1/x?');
    expect(result.success).toBe(false);
    if (!result.success) {
      expect(result.error.issues[0]!.message).toBe(
        '"../../127.0.0.1:1/x?" is not a valid Docker image reference ([registry[:port]/]path[:tag][@sha256:digest]): it contains "?"',
      );
    }
    const long = imageRefSchema.safeParse(`${'a'.repeat(300)}?`);
    expect(long.success).toBe(false);
    if (!long.success) expect(long.error.issues[0]!.message).toMatch(/^"a{80}…" is not a valid/);
  });

  test('names that fail only at their very end are judged (a backtracking blow-up would hang past the test timeout)', () => {
    for (const image of ['a-'.repeat(120) + 'a!', 'a.'.repeat(120) + 'A', `${'a'.repeat(60)}.`.repeat(4), `${'a-a.'.repeat(60)}/`, `${'a.'.repeat(100)}a:x/y`]) {
      expect(isValidImageRef(image)).toBe(false);
    }
  });
});

describe('where image references are checked', () => {
  const runtime: Runtime = { name: 'py', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py', mode: 'handler', registeredAt: '2026-12-01T10:00:00.000Z' };

  test('registration refuses an image outside the grammar with the reason, and still takes a good one', () => {
    const bad = runtimeInputSchema.safeParse({ image: '../../127.0.0.1:1/x?', path: '/ws', run: 'x' });
    expect(bad.success).toBe(false);
    if (!bad.success) {
      expect(bad.error.issues).toHaveLength(1);
      expect(bad.error.issues[0]!.path).toEqual(['image']);
      expect(bad.error.issues[0]!.message).toMatch(/not a valid Docker image reference .*contains "\?"/);
    }
    const empty = runtimeInputSchema.safeParse({ image: '', path: '/ws', run: 'x' });
    expect(empty.error?.issues.map((i) => i.message)).toEqual(['image is required']);
    expect(runtimeInputSchema.parse({ image: '127.0.0.1:5000/pythonruntime:v1', path: '/ws', run: 'x' }).image).toBe('127.0.0.1:5000/pythonruntime:v1');
  });

  test('a welcome keeps its good runtimes and names the ones it refuses, whatever their shape', () => {
    const welcome = apiToWorkerSchemas.welcome.parse({
      runtimes: [runtime, { ...runtime, name: 'evil', image: '../../127.0.0.1:1/x?' }, { ...runtime, name: 'Upper', image: 'Python' }, null, 'text'],
      functions: [],
      heartbeatMs: 500,
    });
    expect(welcome.runtimes).toEqual([runtime]);
    expect(welcome.refusedRuntimes?.map((r) => r.name)).toEqual(['evil', 'Upper', '?', '?']);
    expect(welcome.refusedRuntimes?.[0]!.error).toMatch(/^image: "\.\.\/\.\.\/127\.0\.0\.1:1\/x\?" is not a valid Docker image reference/);
    // A welcome with only good runtimes says nothing of refusals.
    expect(apiToWorkerSchemas.welcome.parse({ runtimes: [runtime], functions: [], heartbeatMs: 500 })).toEqual({ runtimes: [runtime], functions: [], heartbeatMs: 500 });
  });

  test('a runtime registered with a bad image is not taken by a worker', () => {
    expect(apiToWorkerSchemas.runtimeRegistered.safeParse({ runtime: { ...runtime, image: 'img#x' } }).success).toBe(false);
    expect(workerRuntimeSchema.safeParse({ ...runtime, image: 'registry.local:5000/team/py@sha256:' + hex64 }).success).toBe(true);
  });

  test('the Docker client refuses a bad name before any request', () => {
    const client = dockerClient({ socketPath: '/nonexistent/docker.sock' });
    expect(() => client.getImage('../../127.0.0.1:1/x?')).toThrow(/not a valid Docker image reference/);
    expect(client.getImage('pythonruntime').name).toBe('pythonruntime');
  });
});

describe('registries images may be pulled from', () => {
  const none = registryPolicy('');
  test('Docker Hub and loopback registries are allowed by default; any other host is refused with the setting named', () => {
    for (const image of ['python:3.12', 'library/python', 'docker.io/library/python', 'localhost:5000/py', '127.0.0.1:5000/team/py:v1', '[::1]:5000/py', 'localhost/py']) {
      expect({ image, refused: registryRefusal(image, none) }).toEqual({ image, refused: undefined });
    }
    for (const image of ['169.254.169.254/latest/meta-data', 'registry.example.com/py', '10.0.0.5:5000/py', '[fd00::1]:5000/py', 'LOCALHOST.evil.example/py']) {
      expect(registryRefusal(image, none)).toContain('FAAS_ALLOWED_REGISTRIES');
    }
  });

  test('listed hosts are allowed, with or without their port; * allows any', () => {
    const listed = registryPolicy(' registry.example.com , 10.0.0.5:5000');
    expect(registryRefusal('registry.example.com:443/py', listed)).toBeUndefined();
    expect(registryRefusal('10.0.0.5:5000/py', listed)).toBeUndefined();
    expect(registryRefusal('10.0.0.5:6000/py', listed)).toContain('"10.0.0.5:6000"');
    expect(registryRefusal('169.254.169.254/x', registryPolicy('*'))).toBeUndefined();
  });
});
