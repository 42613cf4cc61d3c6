import path from 'node:path';
import { FIXTURES, tarGzOf } from '../helpers/archives';
import { docker, TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

/**
 * A worker removes, every FAAS_REAP_INTERVAL_MS, the call containers of its node that no miniworker
 * holds (what a crash left): never one a miniworker still runs, never another node's.
 */
const PROCESS = { name: 'pyproc', image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 main.py' };

describe('the orphan reaper', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    platform = await TestPlatform.start({ env: { FAAS_REAP_INTERVAL_MS: '500' } });
    expect((await platform.json('POST', '/registerRuntime', PROCESS)).status).toBe(201);
    expect((await platform.upload('pyproc', 'nap', await tarGzOf(path.join(FIXTURES, 'nap')))).status).toBe(201);
  });
  afterAll(async () => platform?.stop());

  /** A running container labelled as the call container of `node`, held by nobody. */
  async function strayCallContainer(node: string, callNum: number): Promise<string> {
    const container = await docker.createContainer({
      Image: 'pythonruntime',
      Cmd: ['sleep', '300'],
      Labels: { 'io.faas.platform': platform.label, 'io.faas.node': node, 'io.faas.role': 'call', 'io.faas.call': String(callNum), 'io.faas.function': 'nap' },
      HostConfig: { NetworkMode: 'none' },
    });
    await container.start();
    return container.id;
  }

  test('removes a call container no miniworker holds, spares the running call and another node’s container', async () => {
    // A call that lasts past the reaper's age bound (5 s) while the reaper runs every half second.
    const running = (await platform.json('POST', '/invokeFunction', { funcName: 'nap', params: { s: 8 } })).body.callNum as number;
    const mine = await strayCallContainer(platform.env.FAAS_NODE_ID!, 999_001);
    const theirs = await strayCallContainer(`${platform.env.FAAS_NODE_ID}-elsewhere`, 999_002);

    await until(() => platform.containers(['io.faas.call=999001']), (c) => c.length === 0, 30_000, 'the stray container removed');
    await expect(docker.getContainer(mine).inspect()).rejects.toMatchObject({ statusCode: 404 });
    // The same pass saw the other node's container and left it.
    expect((await docker.getContainer(theirs).inspect()).State.Running).toBe(true);

    expect(await platform.waitFinal(running, 60_000)).toMatchObject({ status: 'DONE', result: 'rested' });
  });
});
