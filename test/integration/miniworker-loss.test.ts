import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { FIXTURES, tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

const RUNTIME = { name: 'pyfixture', image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 main.py' };

function childrenOf(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe('a miniworker killed mid-call', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    // Miniworkers as processes, so that one can be killed from outside (threads: test/unit/miniworker-threads.test.ts).
    platform = await TestPlatform.start({ env: { FAAS_WORKER_CAPACITY: '1', FAAS_MINIWORKER_KIND: 'process' } });
    await platform.json('POST', '/registerRuntime', RUNTIME);
    await platform.upload('pyfixture', 'slow', await tarGzOf(path.join(FIXTURES, 'slow')));
    await platform.upload('pyfixture', 'echo', await tarGzOf(path.join(FIXTURES, 'echo')));
  });
  afterAll(async () => platform?.stop());

  test('its call ends ERROR worker_lost, its container is removed, and the next call runs', async () => {
    const invoked = await platform.json('POST', '/invokeFunction', { funcName: 'slow', params: {} });
    const callNum = invoked.body.callNum;
    await until(() => platform.json('GET', `/call/${callNum}`), (c) => c.body.status === 'RUNNING', 60_000, 'the call running');
    const miniworkers = childrenOf(platform.procs.get('worker')!.pid!);
    expect(miniworkers).toHaveLength(1);
    process.kill(miniworkers[0]!, 'SIGKILL');

    const call = await platform.waitFinal(callNum, 15_000);
    expect(call).toMatchObject({ status: 'ERROR', reason: 'worker_lost' });
    await until(() => platform.containers([`io.faas.call=${callNum}`]), (c) => c.length === 0, 10_000, 'its container removed');

    const next = await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'echo', params: { after: 'crash' } });
    expect(next.status).toBe(200);
    expect(next.body.status).toBe('DONE');
    expect(JSON.parse(next.body.result).params).toEqual({ after: 'crash' });
  });
});
