import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

/** Cron triggers (POST /v1/triggers) against the real processes: ticks on time, across api restarts. */
const PYTHON = { name: 'python', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 /opt/faas/handler.py', mode: 'handler' };

interface Listed {
  callNum: number;
  createdAt: string;
  trigger?: string;
  params: unknown;
  status: string;
}

describe('cron triggers', () => {
  let platform: TestPlatform;

  /** The calls a trigger made, oldest first. */
  const callsOf = async (name: string): Promise<Listed[]> => {
    const page = await platform.json('GET', '/v1/calls?function=echo&limit=1000');
    return (page.body.calls as Listed[]).filter((c) => c.trigger === `cron:${name}`).sort((a, b) => a.callNum - b.callNum);
  };
  const slotsOf = (calls: Listed[], everyMs: number) => calls.map((c) => Math.floor(Date.parse(c.createdAt) / everyMs));

  beforeAll(async () => {
    platform = await TestPlatform.start();
    expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-cron-fn-'));
    writeFileSync(path.join(dir, 'handler.py'), 'def handle(params):\n    return params\n');
    expect((await platform.upload('python', 'echo', await tarGzOf(dir), 'p.tar.gz')).status).toBe(201);
  }, 120_000);

  afterAll(async () => {
    await platform?.stop();
  });

  test('bad triggers are a 400 or a 404 and store nothing', async () => {
    const cases: Array<[object, number, RegExp]> = [
      [{ name: 'bad', schedule: 'every day', function: 'echo' }, 400, /5 fields/],
      [{ name: 'bad', schedule: '99 * * * *', function: 'echo' }, 400, /not a cron schedule/],
      [{ name: 'bad', schedule: '* * * * *', function: 'echo', timezone: 'Mars/Olympus' }, 400, /time zone/],
      [{ name: 'bad', schedule: '* * * * *', function: 'nosuch' }, 404, /nosuch/],
      [{ name: 'Bad Name', schedule: '* * * * *', function: 'echo' }, 400, /name/],
    ];
    for (const [body, status, message] of cases) {
      const answer = await platform.json('POST', '/v1/triggers', body);
      expect([JSON.stringify(body), answer.status]).toEqual([JSON.stringify(body), status]);
      expect(answer.body.error.message).toMatch(message);
    }
    expect((await platform.json('GET', '/v1/triggers')).body).toEqual([]);
    expect((await platform.json('DELETE', '/v1/triggers/nosuch')).status).toBe(404);
  });

  test('a seconds schedule fires on its ticks, one call each, recording its trigger; removed, it stops', async () => {
    const created = await platform.json('POST', '/v1/triggers', { name: 'every2', schedule: '*/2 * * * * *', function: 'echo', params: { from: 'cron' } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'every2', function: 'echo', params: { from: 'cron' } });
    expect(Date.parse(created.body.nextTick) % 2000).toBe(0);
    const calls = await until(() => callsOf('every2'), (c) => c.length >= 3, 20_000, 'three ticks');
    // One call per two-second tick, each made just after its tick.
    const slots = slotsOf(calls, 2000);
    expect(new Set(slots).size).toBe(slots.length);
    expect(slots[2]! - slots[0]!).toBe(2);
    for (const call of calls) expect(call.params).toEqual({ from: 'cron' });
    const ended = await platform.waitFinal(calls[0]!.callNum);
    expect(ended).toMatchObject({ status: 'DONE', result: '{"from":"cron"}', trigger: 'cron:every2' });

    expect((await platform.json('DELETE', '/v1/triggers/every2')).status).toBe(204);
    const after = (await callsOf('every2')).length;
    // Two ticks' time with the trigger gone.
    await new Promise((resolve) => setTimeout(resolve, 4500));
    expect((await callsOf('every2')).length).toBe(after);
  }, 60_000);

  test('an api killed between ticks neither skips a tick nor makes one twice', async () => {
    expect((await platform.json('POST', '/v1/triggers', { name: 'every5', schedule: '*/5 * * * * *', function: 'echo', catchUp: true })).status).toBe(201);
    await until(() => callsOf('every5'), (c) => c.length >= 1, 15_000, 'the first tick');
    await platform.stopService('api', 'SIGKILL');
    platform.spawn('api');
    await platform.waitApi();
    const calls = await until(() => callsOf('every5'), (c) => c.length >= 4, 40_000, 'three ticks after the restart');
    const slots = slotsOf(calls, 5000);
    expect(slots).toEqual(slots.map((_, i) => slots[0]! + i));
    expect((await platform.json('DELETE', '/v1/triggers/every5')).status).toBe(204);
  }, 90_000);

  test('a tick missed while the api was down fires once when it is back with catchUp, and not at all without', async () => {
    for (const [name, catchUp] of [['caught', true], ['skipped', false]] as const) {
      expect((await platform.json('POST', '/v1/triggers', { name, schedule: '*/6 * * * * *', function: 'echo', catchUp })).status).toBe(201);
    }
    await until(() => callsOf('skipped'), (c) => c.length >= 1, 15_000, 'a first tick');
    const { nextTick } = (await platform.json('GET', '/v1/triggers/skipped')).body;
    await platform.stopService('api');
    const downSince = Date.now();
    // Down across a tick of both.
    await until(async () => Date.now(), (now) => now > Date.parse(nextTick) + 500, 10_000, 'a tick passing while the api is down');
    platform.spawn('api');
    await platform.waitApi();
    const back = (await platform.json('GET', '/v1/triggers/skipped')).body;
    const regular = Date.parse(back.nextTick);
    const sinceDown = (calls: Listed[]) => calls.filter((c) => Date.parse(c.createdAt) > downSince && Date.parse(c.createdAt) < regular);
    const caught = await until(() => callsOf('caught'), (c) => sinceDown(c).length > 0, 10_000, 'the caught-up tick');
    expect(sinceDown(caught)).toHaveLength(1);
    expect(sinceDown(await callsOf('skipped'))).toHaveLength(0);
    const listed = (await platform.json('GET', '/v1/triggers')).body as Array<{ name: string; lastTick: string }>;
    expect(listed.map((t) => t.name).sort()).toEqual(['caught', 'skipped']);
    for (const name of ['caught', 'skipped']) expect((await platform.json('DELETE', `/v1/triggers/${name}`)).status).toBe(204);
  }, 90_000);
});
