import { execFile } from 'node:child_process';
import path from 'node:path';
import { DICE } from '../helpers/archives';
import { freePort } from '../helpers/ports';
import { TestPlatform } from '../helpers/platform';

const BIN = path.resolve(__dirname, '..', '..', 'dist', 'cli', 'main.js');

function faas(args: string[], url: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, '--url', url, ...args], { env: { ...process.env, FAAS_URL: '' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('the faas command against a running platform', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    platform = await TestPlatform.start();
  });
  afterAll(async () => platform?.stop());

  test('register the runtime, deploy dice from its folder, invoke with --wait, read it back', async () => {
    const rt = await faas(['--json', 'runtime', 'register', '--image', 'pythonruntime', '--path', '/ws', '--deps', 'pip3 install -r requirements.txt', '--run', 'python3 test.py'], platform.url);
    expect(rt).toMatchObject({ code: 0 });
    expect(JSON.parse(rt.stdout).name).toBe('pythonruntime');

    const deploy = await faas(['fn', 'deploy', DICE, '--runtime', 'pythonruntime'], platform.url);
    expect(deploy.code).toBe(0);
    expect(deploy.stdout).toContain('function dice deployed on pythonruntime');

    const invoke = await faas(['--json', 'invoke', 'dice', '-p', 'roll=3d6', '--wait'], platform.url);
    expect(invoke.code).toBe(0);
    const call = JSON.parse(invoke.stdout);
    expect(call.status).toBe('DONE');
    expect(JSON.parse(call.result)).toHaveLength(3);

    const plain = await faas(['invoke', 'dice', '--data', '{"roll":"2d6"}', '--wait'], platform.url);
    expect(plain.code).toBe(0);
    expect(JSON.parse(plain.stdout)).toHaveLength(2); // piped: the result alone

    const got = await faas(['--json', 'call', 'get', String(call.callNum)], platform.url);
    expect(JSON.parse(got.stdout)).toMatchObject({ callNum: call.callNum, status: 'DONE' });

    const calls = await faas(['calls'], platform.url);
    expect(calls.stdout).toMatch(new RegExp(`${call.callNum}\\s+DONE\\s+dice`));
    expect((await faas(['fn', 'ls'], platform.url)).stdout.trim()).toBe('dice');
  });

  test('errors have their exit codes and messages', async () => {
    const unknown = await faas(['invoke', 'nosuch', '--wait'], platform.url);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no function named "nosuch"');

    const badFlag = await faas(['invoke', 'dice', '--no-such-flag'], platform.url);
    expect(badFlag.code).toBe(2);

    const badData = await faas(['invoke', 'dice', '--data', '{nope'], platform.url);
    expect(badData.code).toBe(2);

    const down = await faas(['calls'], `http://127.0.0.1:${await freePort()}`);
    expect(down.code).toBe(3);
    expect(down.stderr).toContain('faas up');
  });
});
