import { DbClient } from '../../protocol/db-client';
import { TestPlatform } from '../helpers/platform';

describe('db-service on a real LevelDB behind a real ZeroMQ socket', () => {
  let platform: TestPlatform;
  let db: DbClient;

  const connect = () => {
    db?.close();
    db = new DbClient(platform.env.FAAS_DB_ENDPOINT!, { timeoutMs: 5000 }).start();
  };
  const waitUp = async () => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        await db.ping(500);
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
    }
  };

  beforeAll(async () => {
    platform = await TestPlatform.start({ services: ['db'] });
    connect();
    await waitUp();
  });

  afterAll(async () => {
    db?.close();
    await platform?.stop();
  });

  test('callNum is 1, 2, 3… and continues after a restart', async () => {
    const first = await db.createCall({ funcName: 'f', params: { a: 1 } });
    const second = await db.createCall({ funcName: 'f', params: { a: 2 } });
    expect(second.callNum).toBe(first.callNum + 1);

    await platform.stopService('db');
    platform.spawn('db');
    connect();
    await waitUp();
    const third = await db.createCall({ funcName: 'f', params: {} });
    expect(third.callNum).toBe(second.callNum + 1);
    expect(await db.getCall(first.callNum)).toMatchObject({ callNum: first.callNum, params: { a: 1 }, status: 'PENDING' });
  });

  test('concurrent creates get distinct, increasing numbers', async () => {
    const calls = await Promise.all(Array.from({ length: 200 }, (_, i) => db.createCall({ funcName: 'f', params: { i } })));
    const nums = calls.map((c) => c.callNum);
    expect(new Set(nums).size).toBe(200);
    expect(Math.max(...nums) - Math.min(...nums)).toBe(199);
  });

  test('an acknowledged call and update survive kill -9, and numbers are never reused', async () => {
    const call = await db.createCall({ funcName: 'durable', params: { keep: true } });
    await db.startCall({ callNum: call.callNum, by: 'miniworker', node: 'n1', startedAt: new Date().toISOString() });
    // Killed right after the acknowledgement, with no chance to flush anything.
    await platform.stopService('db', 'SIGKILL');
    platform.spawn('db');
    connect();
    await waitUp();
    expect(await db.getCall(call.callNum)).toMatchObject({ callNum: call.callNum, funcName: 'durable', status: 'RUNNING', node: 'n1' });
    const next = await db.createCall({ funcName: 'after', params: {} });
    expect(next.callNum).toBe(call.callNum + 1);
  });

  test('the first final state wins; a later report is refused, not applied, and answered with the call as it is', async () => {
    const call = await db.createCall({ funcName: 'f', params: {} });
    expect(await db.finishCall({ callNum: call.callNum, by: 'miniworker', status: 'DONE', result: 'first' })).toMatchObject({ applied: true, call: { status: 'DONE' } });
    const late = await db.finishCall({ callNum: call.callNum, by: 'miniworker', status: 'ERROR', reason: 'exit_code', result: 'late' });
    expect(late).toMatchObject({ applied: false, refused: 'final', call: { status: 'DONE', result: 'first' } });
    expect((await db.getCall(call.callNum))?.result).toBe('first');
  });

  test('a command its sender may not give is refused with FORBIDDEN and changes nothing', async () => {
    const call = await db.createCall({ funcName: 'f', params: {} });
    await expect(db.requeueCall({ callNum: call.callNum, by: 'miniworker', why: 'x' })).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(db.failCall({ callNum: call.callNum, by: 'miniworker', reason: 'node_lost', error: 'x' })).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(db.failCall({ callNum: call.callNum, by: 'worker', reason: 'orchestrator_restart', error: 'x' })).rejects.toMatchObject({ code: 'FORBIDDEN' });
    expect((await db.getCall(call.callNum))?.status).toBe('PENDING');
  });

  test('a report of an earlier attempt is refused as stale once the call was queued again', async () => {
    const call = await db.createCall({ funcName: 'f', params: {} });
    await db.startCall({ callNum: call.callNum, by: 'miniworker', attempt: 1, node: 'n1', startedAt: new Date().toISOString() });
    expect(await db.requeueCall({ callNum: call.callNum, by: 'api', attempt: 1, why: 'node_lost' })).toMatchObject({ applied: true, call: { status: 'PENDING', attempts: 2 } });
    expect(await db.finishCall({ callNum: call.callNum, by: 'miniworker', attempt: 1, status: 'DONE', result: 'old' })).toMatchObject({ applied: false, refused: 'stale' });
    expect(await db.finishCall({ callNum: call.callNum, by: 'miniworker', attempt: 2, status: 'DONE', result: 'new' })).toMatchObject({ applied: true, call: { result: 'new', attempts: 2 } });
  });

  test('runtimes and functions are stored and listed; unknown ones are null', async () => {
    const runtime = { name: 'rt1', image: 'img', path: '/ws', dependencies: '', run: 'true', mode: 'process' as const, registeredAt: new Date().toISOString() };
    expect((await db.putRuntime(runtime)).created).toBe(true);
    expect((await db.putRuntime(runtime)).created).toBe(false);
    expect(await db.getRuntime('rt1')).toEqual(runtime);
    expect(await db.getRuntime('nope')).toBeNull();
    expect((await db.listRuntimes()).map((r) => r.name)).toEqual(['rt1']);
    const fn = { functionName: 'fn1', runtimeName: 'rt1', version: 'a'.repeat(64), size: 1, format: 'zip' as const, registeredAt: new Date().toISOString() };
    await db.putFunction(fn);
    expect(await db.getFunction('fn1')).toEqual(fn);
    expect(await db.listFunctions()).toEqual([fn]);
  });

  test('a malformed request gets a clear error and the service keeps answering', async () => {
    await expect(db.finishCall({ callNum: 1, by: 'miniworker', status: 'NOPE' as never })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(db.finishCall({ callNum: 1, by: 'miniworker', status: 'DONE', durationMs: Number.POSITIVE_INFINITY })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(db.finishCall({ callNum: 987654, by: 'miniworker', status: 'DONE' })).rejects.toMatchObject({ code: 'CALL_NOT_FOUND' });
    expect((await db.ping()).ok).toBe(true);
  });
});

describe('late results', () => {
  test('a write to a call that already ended is refused and counted', async () => {
    const platform = await TestPlatform.start({ services: ['db'] });
    const db = new DbClient(platform.env.FAAS_DB_ENDPOINT!, { timeoutMs: 5000 }).start();
    try {
      await db.ping(10_000);
      const call = await db.createCall({ funcName: 'f', params: {} });
      await db.failCall({ callNum: call.callNum, by: 'api', reason: 'node_lost', error: 'lost' });
      expect(await db.finishCall({ callNum: call.callNum, by: 'miniworker', status: 'DONE', result: 'late' })).toMatchObject({ applied: false, refused: 'final' });
      expect((await db.ping()).lateResults).toBe(1);
    } finally {
      db.close();
      await platform.stop();
    }
  });
});
