import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deployFields, parseDuration, parseEnv, parseMemory } from '../../cli/actions/fn';
import { ClientError } from '../../cli/client';
import { EXIT, UsageError, explain } from '../../cli/context';
import { errorExcerpt } from '../../cli/actions/calls';
import { describeEvent } from '../../cli/actions/watch';
import { formatTable, formatTime, Output, terminalSafe, wantsColor } from '../../cli/output';
import { configPath, readConfig, resolveTarget, writeConfig } from '../../cli/settings';
import { isValidName, nameFromImage } from '../../protocol/names';
import { functionOptionsSchema } from '../../protocol/schemas';
import { warmKey } from '../../protocol/worker-messages';

describe('cli: where the platform is', () => {
  const saved = { url: 'http://saved:3000', platforms: { 'http://saved:3000': { user: 'alice', password: 'pw-a' } } };

  test('--url beats FAAS_URL, which beats the config file (a saved login), which beats the default', () => {
    const env = { FAAS_URL: 'http://env:3000' };
    expect(resolveTarget({ url: 'http://flag:3000' }, saved, env)).toMatchObject({ url: 'http://flag:3000', source: 'flag' });
    expect(resolveTarget({}, saved, env)).toMatchObject({ url: 'http://env:3000', source: 'env' });
    expect(resolveTarget({}, saved, {})).toMatchObject({ url: 'http://saved:3000', source: 'config' });
    expect(resolveTarget({}, {}, env)).toMatchObject({ url: 'http://env:3000', source: 'env' });
    expect(resolveTarget({}, {}, {})).toMatchObject({ url: 'http://127.0.0.1:3000', source: 'default' });
    // An empty FAAS_URL is unset.
    expect(resolveTarget({}, saved, { FAAS_URL: '' })).toMatchObject({ url: 'http://saved:3000', source: 'config' });
  });

  test('credentials: flags, then FAAS_USER/FAAS_PASSWORD, then those saved for that very address', () => {
    const env = { FAAS_USER: 'erin', FAAS_PASSWORD: 'pw-e' };
    expect(resolveTarget({ user: 'bob', password: 'pw-b' }, saved, env)).toMatchObject({ user: 'bob', password: 'pw-b' });
    // The environment beats the saved login, as it does for the address.
    expect(resolveTarget({}, saved, env)).toMatchObject({ url: 'http://saved:3000', user: 'erin', password: 'pw-e' });
    expect(resolveTarget({}, saved, {})).toMatchObject({ user: 'alice', password: 'pw-a' });
    // FAAS_USER naming the saved user without FAAS_PASSWORD takes the saved password.
    expect(resolveTarget({}, saved, { FAAS_USER: 'alice' })).toMatchObject({ user: 'alice', password: 'pw-a' });
    // Saved credentials never go to another address.
    expect(resolveTarget({ url: 'http://other:3000' }, saved, env)).toMatchObject({ url: 'http://other:3000', user: 'erin', password: 'pw-e' });
    expect(resolveTarget({ url: 'http://other:3000' }, saved, {})).not.toHaveProperty('user');
    expect(resolveTarget({}, saved, { FAAS_URL: 'http://other:3000' })).not.toHaveProperty('user');
    // --password alone goes with the saved user.
    expect(resolveTarget({ password: 'typed' }, saved, {})).toMatchObject({ user: 'alice', password: 'typed' });
  });

  test('addresses are normalized: a scheme is added, trailing slashes go', () => {
    expect(resolveTarget({ url: 'localhost:3000/' }, {}, {}).url).toBe('http://localhost:3000');
    expect(resolveTarget({ url: 'https://faas.example.org//' }, {}, {}).url).toBe('https://faas.example.org');
  });

  test('the config file lives in the user config folder and is written readable by its owner only', async () => {
    expect(configPath({ XDG_CONFIG_HOME: '/x/cfg' })).toBe(path.join('/x/cfg', 'faas', 'config.json'));
    expect(configPath({ FAAS_CONFIG: '/y/own.json' })).toBe('/y/own.json');
    expect(configPath({})).toBe(path.join(os.homedir(), '.config', 'faas', 'config.json'));
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-cfg-'));
    try {
      const file = path.join(dir, 'deep', 'config.json');
      expect(await readConfig(file)).toEqual({});
      await writeConfig(saved, file);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(saved);
      expect(await readConfig(file)).toEqual(saved);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('cli: flag values', () => {
  test.each([
    ['1500ms', 1500],
    ['30s', 30_000],
    ['2m', 120_000],
    ['0.5s', 500],
  ])('duration %s is %d ms', (text, ms) => expect(parseDuration(text, '--timeout')).toBe(ms));

  test.each(['30', '30 seconds', '-1s', 's', ''])('duration "%s" is a usage error', (text) => {
    expect(() => parseDuration(text, '--timeout')).toThrow(UsageError);
  });

  test.each([
    ['128', 128],
    ['128m', 128],
    ['128Mi', 128],
    ['256MB', 256],
    ['1g', 1024],
    ['2Gi', 2048],
  ])('memory %s is %d MB', (text, mb) => expect(parseMemory(text, '--memory')).toBe(mb));

  test.each(['lots', '1t', '-5m'])('memory "%s" is a usage error', (text) => {
    expect(() => parseMemory(text, '--memory')).toThrow(UsageError);
  });

  test('--env KEY=value pairs; the value may hold "="; no key is a usage error', () => {
    expect(parseEnv(['A=1', 'B=x=y', 'C='])).toEqual({ A: '1', B: 'x=y', C: '' });
    expect(() => parseEnv(['=1'])).toThrow(UsageError);
    expect(() => parseEnv(['JUSTNAME'])).toThrow(UsageError);
  });

  test('deploy flags become the registerFunction fields the api validates', () => {
    const fields = deployFields({ runtime: 'py', env: ['GREETING=hi'], timeout: '30s', memory: '1g', cpus: '0.5', concurrency: '3', idempotent: true });
    expect(fields).toEqual({ timeout: '30000', memory: '1024', cpus: '0.5', concurrency: '3', idempotent: 'true', env: '{"GREETING":"hi"}' });
    const parsed = functionOptionsSchema.parse(fields);
    expect(parsed).toMatchObject({ timeout: 30_000, memory: 1024, cpus: 0.5, concurrency: 3, env: { GREETING: 'hi' } });
  });

  test.each([
    ['{"FAAS_PARAMS":"x"}', /FAAS_/],
    ['{"1ABC":"x"}', /names are letters/],
    ['{"A":1}', /string/],
    ['["A"]', /object/],
    ['{nope', /JSON object/],
    [JSON.stringify(Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`V${i}`, 'x']))), /at most 64/],
  ])('the api refuses env %s', (env, message) => {
    const parsed = functionOptionsSchema.safeParse({ env });
    expect(parsed.success).toBe(false);
    if (!parsed.success) expect(parsed.error.issues.map((i) => i.message).join('; ')).toMatch(message);
  });

  test("a function's environment is part of its warm-container key", () => {
    const fn = { functionName: 'f', version: 'a'.repeat(64) };
    expect(warmKey(fn)).toBe(`f@${'a'.repeat(64)}`);
    const withEnv = warmKey({ ...fn, env: { A: '1', B: '2' } });
    expect(withEnv).not.toBe(warmKey(fn));
    expect(warmKey({ ...fn, env: { B: '2', A: '1' } })).toBe(withEnv);
    expect(warmKey({ ...fn, env: { A: '1', B: '3' } })).not.toBe(withEnv);
  });
});

describe('cli: output', () => {
  test('tables: aligned columns, a header, no trailing spaces, colours only when asked', () => {
    const rows = [
      { n: 'dice', s: 'DONE' },
      { n: 'a-longer-name', s: 'ERROR' },
    ];
    const cols = [
      { header: 'NAME', value: (r: (typeof rows)[0]) => r.n },
      { header: 'STATUS', value: (r: (typeof rows)[0]) => r.s, paint: (t: string) => `<${t}>` },
    ];
    expect(formatTable(rows, cols, false)).toBe(['NAME           STATUS', 'dice           DONE', 'a-longer-name  ERROR'].join('\n'));
    expect(formatTable(rows, cols, true).split('\n')[1]).toBe('dice           <DONE  >');
  });

  test('colours: a terminal, unless NO_COLOR or --no-color; FORCE_COLOR forces them', () => {
    expect(wantsColor(undefined, { isTTY: true }, {})).toBe(true);
    expect(wantsColor(undefined, { isTTY: false }, {})).toBe(false);
    expect(wantsColor(undefined, { isTTY: true }, { NO_COLOR: '' })).toBe(false);
    expect(wantsColor(false, { isTTY: true }, {})).toBe(false);
    expect(wantsColor(undefined, { isTTY: false }, { FORCE_COLOR: '1' })).toBe(true);
    expect(wantsColor(undefined, { isTTY: true }, { TERM: 'dumb' })).toBe(false);
  });

  test('errors become actionable sentences with their exit codes', () => {
    const target = { url: 'http://127.0.0.1:3000' };
    expect(explain(new ClientError('cannot reach the platform at http://127.0.0.1:3000 (ECONNREFUSED)', null, 'UNREACHABLE'), target)).toEqual({
      message: expect.stringContaining('`faas up` starts one'),
      exit: EXIT.unreachable,
    });
    expect(explain(new ClientError('credentials are missing', 401, 'UNAUTHORIZED'), target)).toEqual({
      message: 'the platform at http://127.0.0.1:3000 asks for a user: run `faas login` (or give --user and --password)',
      exit: EXIT.unreachable,
    });
    expect(explain(new ClientError('no function named "x"', 404, 'FUNCTION_NOT_FOUND'), target)).toEqual({ message: 'no function named "x"; `faas fn ls` lists them', exit: EXIT.failed });
    expect(explain(new ClientError('too many calls wait', 429, 'QUEUE_FULL'), target).exit).toBe(EXIT.failed);
    // Refused credentials of the environment: a new login would not be used while they are set.
    const env = resolveTarget({}, {}, { FAAS_URL: 'http://127.0.0.1:3000', FAAS_USER: 'erin', FAAS_PASSWORD: 'old' });
    expect(env.userSource).toBe('env');
    expect(explain(new ClientError('wrong credentials', 401, 'UNAUTHORIZED'), env)).toEqual({
      message: 'the platform at http://127.0.0.1:3000 refused user "erin" of FAAS_USER/FAAS_PASSWORD: correct them, or unset them to use `faas login`',
      exit: EXIT.unreachable,
    });
    expect(explain(new ClientError('wrong credentials', 401, 'UNAUTHORIZED'), { ...env, userSource: 'config' }).message).toContain('run `faas login`');
  });
});

describe('text for a terminal', () => {
  test('escape sequences and control characters are removed, the visible text kept', () => {
    expect(terminalSafe('a\x1b[2Jb\x1b[1;31mc\x1b[0m')).toBe('abc');
    expect(terminalSafe('\x1b]8;;http://x/\x1b\\link\x1b]8;;\x1b\\')).toBe('link');
    expect(terminalSafe('x\u009b31my\x00\x07\x08\x7fz')).toBe('xyz');
    expect(terminalSafe('\u202egnp.exe\u202c \u2066a\u2069')).toBe('gnp.exe a');
  });

  test('new lines, tabs and CR LF stay; a lone carriage return goes', () => {
    expect(terminalSafe('one\r\ntwo\tthree\n')).toBe('one\r\ntwo\tthree\n');
    expect(terminalSafe('secret\rshown')).toBe('secretshown');
  });

  test('no escape character survives a title sequence with spaces', () => {
    const cleaned = terminalSafe('\x1b]0;owned title\x07after');
    expect(cleaned).not.toMatch(/[\x00-\x1f\x7f-\x9f]/);
    expect(cleaned.endsWith('after')).toBe(true);
  });

  test('Output.error strips them unless raw', () => {
    const written: string[] = [];
    const sink = { write: (text: string) => written.push(text) } as unknown as NodeJS.WritableStream;
    new Output({ json: false, quiet: false, color: false }, sink, sink).error('bad \x1b[2J name');
    new Output({ json: false, quiet: false, color: false, raw: true }, sink, sink).error('bad \x1b[2J name');
    expect(written).toEqual(['error: bad  name\n', 'error: bad \x1b[2J name\n']);
  });
});

describe('runtime names from image references', () => {
  test.each([
    ['pythonruntime', 'pythonruntime'],
    ['127.0.0.1:5000/pythonruntime', 'pythonruntime'],
    ['localhost:5000/team/pythonruntime:v1.2', 'pythonruntime'],
    ['python:3.12-slim', 'python'],
    [`ghcr.io/org/node.runtime@sha256:${'a'.repeat(64)}`, 'node-runtime'],
    ['Registry.Example.COM/img_2:latest', 'img_2'],
    ['faas-base/debian:bookworm', 'debian'],
    [`registry/${'x'.repeat(80)}`, 'x'.repeat(63)],
  ])('%s is named %s', (image, name) => {
    expect(nameFromImage(image)).toBe(name);
    expect(isValidName(name)).toBe(true);
  });

  test.each(['', '/', ':tag', '___'])('"%s" gives no name', (image) => expect(nameFromImage(image)).toBeUndefined());
});

describe('times and errors for people', () => {
  test('every time is UTC with the zone said; milliseconds where one call is shown', () => {
    expect(formatTime('2026-12-02T02:57:02.351Z')).toBe('2026-12-02 02:57:02 UTC');
    expect(formatTime('2026-12-02T02:57:02.351Z', true)).toBe('2026-12-02 02:57:02.351 UTC');
    // Whatever zone the machine is in, and whatever offset the text carries.
    expect(formatTime('2026-12-02T03:57:02.000+01:00')).toBe('2026-12-02 02:57:02 UTC');
    expect(formatTime(undefined)).toBe('-');
    expect(formatTime('not a time')).toBe('not a time');
  });

  test('event lines carry their time in the same convention', () => {
    const line = describeEvent({ event: 'call.ended', data: JSON.stringify({ at: '2026-12-02T02:57:02.351Z', callNum: 7, funcName: 'dice', status: 'DONE', durationMs: 12 }) }, false);
    expect(line).toMatch(/^2026-12-02 02:57:02\.351 UTC {2}call\.ended {10}#7 dice DONE 12 ms$/);
  });

  test("an error's first line is always shown; past the limit the lines after it are cut from their start", () => {
    expect(errorExcerpt('ValueError: bad\nTraceback (most recent call last):\n  File "x", line 1\n')).toBe('ValueError: bad\nTraceback (most recent call last):\n  File "x", line 1');
    const long = ['ValueError: bad', 'Traceback (most recent call last):', ...Array.from({ length: 30 }, (_, i) => `  frame ${i}`)].join('\n');
    const lines = errorExcerpt(long, 6).split('\n');
    expect(lines).toEqual(['ValueError: bad', '  … 26 lines cut (`faas call get` shows the whole error)', '  frame 25', '  frame 26', '  frame 27', '  frame 28', '  frame 29']);
  });
});
