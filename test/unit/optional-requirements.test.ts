import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { optionalRequirements } from '../../worker/dependency-build';

/** Runs a dependencies command as the step does (`sh -c` in the function's folder), with a pip that says what it was asked. */
function step(command: string, dir: string, bin: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('sh', ['-c', optionalRequirements(command)], { cwd: dir, env: { PATH: `${bin}:/usr/bin:/bin` } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr });
    });
  });
}

describe('a requirements file is optional in a pip dependencies command', () => {
  let root: string;
  let bin: string;
  beforeAll(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'faas-deps-'));
    bin = path.join(root, 'bin');
    mkdirSync(bin);
    // pip as it behaves about the file: it cannot open a missing one.
    const pip = '#!/bin/sh\nfor a in "$@"; do case "$prev" in -r) [ -e "$a" ] || { echo "ERROR: Could not open requirements file: $a" >&2; exit 1; };; esac; prev=$a; done\necho "pip $*"\n';
    for (const name of ['pip3', 'pip']) {
      writeFileSync(path.join(bin, name), pip);
      chmodSync(path.join(bin, name), 0o755);
    }
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  test('without the file the step installs nothing and succeeds; with it pip runs as asked', async () => {
    const without = mkdtempSync(path.join(root, 'fn-'));
    expect(await step('pip3 install -r requirements.txt', without, bin)).toEqual({ code: 0, out: 'faas: no requirements.txt in the package: nothing to install\n' });
    const withFile = mkdtempSync(path.join(root, 'fn-'));
    writeFileSync(path.join(withFile, 'requirements.txt'), 'six\n');
    expect(await step('pip3 install -r requirements.txt', withFile, bin)).toEqual({ code: 0, out: 'pip install -r requirements.txt\n' });
    // The command as written, untouched, fails without the file: what the step did before.
    expect((await new Promise<number>((resolve) => execFile('sh', ['-c', 'pip3 install -r requirements.txt'], { cwd: without, env: { PATH: `${bin}:/usr/bin:/bin` } }, (err) => resolve(err ? 1 : 0))))).toBe(1);
  });

  test.each([
    'pip3 install -r requirements.txt',
    'pip install --no-cache-dir --requirement=reqs/base.txt',
    'python3 -m pip install -q -r requirements.txt -r extra.txt',
  ])('"%s" runs only when a file it names is there', (command) => {
    expect(optionalRequirements(command)).toMatch(/^if \[ -e '[\w./-]+' \]( \|\| \[ -e '[\w./-]+' \])*; then .+; else echo 'faas: no .+ in the package: nothing to install'; fi$/);
    expect(optionalRequirements(command)).toContain(`then ${command}; else`);
  });

  test.each([
    '',
    'true',
    'pip3 install -r requirements.txt numpy',
    'pip3 install -r requirements.txt -t .packages',
    'pip3 install -r requirements.txt && ./build.sh',
    "pip3 install -r 'odd name.txt'",
    'pip3 install -r $(cat list)',
    'npm install',
    'pip3 install -r',
  ])('"%s" is left as it is', (command) => expect(optionalRequirements(command)).toBe(command));
});
