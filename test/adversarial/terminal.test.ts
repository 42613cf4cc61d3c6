import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';

/**
 * A function's output and the platform's answers reach the operator's terminal through the `faas`
 * CLI. Escape sequences in them (a window title, a hyperlink, a cursor move, a screen clear) must not
 * reach the terminal unless the operator asks with --raw; --json keeps the exact text, escaped.
 */

const BIN = path.resolve(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const PROC = { name: 'pyterm', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py', mode: 'process' };

/** Sequences a hostile function prints: OSC title (BEL and ST ends), OSC 8 hyperlink, CSI clear and cursor, C1 CSI, bidi override, lone CR, BEL. */
const HOSTILE = '\x1b]0;owned title\x07\x1b]8;;http://127.0.0.1:1/\x1b\\link\x1b]8;;\x1b\\\x1b[2J\x1b[1;1H\u009b31m\u202egnp.exe\u202c\rover\x07';
/** Nothing a terminal acts on: escape, BEL, C1 controls, bidi overrides, carriage returns not before a new line. */
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]|\r(?!\n)/;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('adversarial: control sequences from functions do not reach the terminal', () => {
  let platform: TestPlatform;
  let work: string;
  let okCall: number;
  let failedCall: number;

  const faas = (args: string[]): Promise<Run> =>
    new Promise((resolve) => {
      const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: work, FAAS_CONFIG: path.join(work, 'faas.json'), NO_COLOR: '1' };
      const child = execFile(process.execPath, [BIN, '--url', platform.url, ...args], { env, timeout: 60_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
      child.stdin?.end();
    });

  const deploy = async (name: string, main: string) => {
    const dir = mkdtempSync(path.join(work, 'fn-'));
    writeFileSync(path.join(dir, 'main.py'), main);
    const answer = await platform.upload('pyterm', name, await tarGzOf(dir), 'package.tar.gz');
    expect([200, 201]).toContain(answer.status);
  };
  const call = async (funcName: string) => {
    const answer = await platform.json('POST', '/invokeFunction', { funcName, params: {} });
    expect(answer.status).toBe(202);
    return platform.waitFinal(answer.body.callNum, 120_000);
  };

  beforeAll(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'faas-terminal-'));
    platform = await TestPlatform.start();
    expect((await platform.json('POST', '/registerRuntime', PROC)).status).toBe(201);
    const text = JSON.stringify(HOSTILE);
    await deploy('loud', `import sys\nsys.stderr.write(${text} + "\\n")\nprint(${text})\n`);
    await deploy('loudfail', `import sys\nsys.stderr.write(${text} + "\\n")\nsys.exit(3)\n`);
    const ok = await call('loud');
    expect(ok.status).toBe('DONE');
    okCall = ok.callNum;
    const failed = await call('loudfail');
    expect(failed.status).toBe('ERROR');
    failedCall = failed.callNum;
  });
  afterAll(async () => {
    await platform?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('the platform keeps the output exactly as written', async () => {
    const call = await platform.json('GET', `/v1/calls/${okCall}`);
    expect(call.body.result).toContain(HOSTILE);
    const logs = await platform.json('GET', `/v1/calls/${okCall}/logs`);
    expect(logs.body.stderr).toContain(HOSTILE);
  });

  test('faas logs prints stdout and stderr without control sequences, the visible text kept', async () => {
    const run = await faas(['logs', String(okCall)]);
    expect(run.code).toBe(0);
    expect(run.stdout).not.toMatch(CONTROL);
    expect(run.stderr).not.toMatch(CONTROL);
    expect(run.stderr).toContain('link');
    expect(run.stderr).toContain('gnp.exe');
    expect(run.stderr).toContain('over');
  });

  test('faas call get prints the result and the error without control sequences', async () => {
    const ok = await faas(['call', 'get', String(okCall)]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('DONE');
    expect(ok.stdout).not.toMatch(CONTROL);
    const failed = await faas(['call', 'get', String(failedCall)]);
    expect(failed.code).toBe(0);
    expect(failed.stdout).toContain('ERROR');
    expect(failed.stdout).not.toMatch(CONTROL);
  });

  test('faas invoke prints the result without control sequences, and a failed call\'s error too', async () => {
    const ok = await faas(['invoke', 'loud']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('gnp.exe');
    expect(ok.stdout).not.toMatch(CONTROL);
    const failed = await faas(['invoke', 'loudfail']);
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toContain('ERROR');
    expect(failed.stderr + failed.stdout).not.toMatch(CONTROL);
  });

  test('--raw prints the output byte for byte', async () => {
    const run = await faas(['--raw', 'logs', String(okCall)]);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain(HOSTILE);
    const result = await faas(['--raw', 'invoke', 'loud']);
    expect(result.stdout).toContain(HOSTILE);
  });

  test('--json keeps the exact text, with control characters escaped by JSON', async () => {
    const run = await faas(['--json', 'call', 'get', String(okCall)]);
    expect(run.code).toBe(0);
    expect(run.stdout).not.toMatch(/\x1b|\x07/);
    expect((JSON.parse(run.stdout) as { result: string }).result).toContain(HOSTILE);
  });

  test('an error message echoing hostile input is printed without control sequences', async () => {
    const run = await faas(['invoke', `x\x1b]0;title\x07y`]);
    expect(run.code).not.toBe(0);
    expect(run.stderr.length).toBeGreaterThan(0);
    expect(run.stderr).not.toMatch(CONTROL);
  });
});
