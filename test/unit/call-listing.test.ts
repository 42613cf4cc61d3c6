import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Level } from 'level';
import { INDEX_VERSION_KEY, PAGE_BYTES } from '../../db-service/call-index';
import { PlatformStore } from '../../db-service/store';
import type { CallPage, DbRequest } from '../../protocol/db-messages';
import { MAX_FRAME_BYTES } from '../../protocol/envelope';
import type { Call, CallStatus } from '../../protocol/types';

const FUNCTIONS = ['alpha', 'beta', 'gamma'];
const STATUSES: CallStatus[] = ['PENDING', 'RUNNING', 'DONE', 'ERROR', 'TIMEOUT'];
const T0 = Date.parse('2026-03-01T00:00:00.000Z');
const at = (i: number) => new Date(T0 + i * 1000).toISOString();

/** A store as written before the indexes: `call:` records and the sequence, nothing else. */
async function writeOldStore(dir: string, calls: Call[]): Promise<void> {
  const db = new Level<string, unknown>(dir, { valueEncoding: 'json' });
  await db.open();
  for (let i = 0; i < calls.length; i += 5000) {
    await db.batch(calls.slice(i, i + 5000).map((c) => ({ type: 'put' as const, key: `call:${String(c.callNum).padStart(12, '0')}`, value: c })));
  }
  await db.put('meta:callSeq', calls.length);
  await db.close();
}

function makeCall(n: number, over: Partial<Call> = {}): Call {
  return {
    callNum: n,
    funcName: FUNCTIONS[n % 3]!,
    params: { n },
    status: STATUSES[n % 5]!,
    result: `r${n}`,
    createdAt: at(n),
    stdout: `out ${n}`,
    stderr: `err ${n}`,
    ...over,
  };
}

/** Every page of a query, following `next` as the api does. */
async function allPages(store: PlatformStore, query: DbRequest<'listCalls'>): Promise<CallPage[]> {
  const pages: CallPage[] = [];
  let cursor: number | null = null;
  do {
    const page = await store.listCalls({ ...query, ...(cursor === null ? {} : query.newestFirst ? { beforeCallNum: cursor } : { afterCallNum: cursor }) });
    pages.push(page);
    cursor = page.next;
    if (pages.length > 10_000) throw new Error('paging does not end');
  } while (cursor !== null);
  return pages;
}

describe('listing calls through the indexes', () => {
  let dir: string;
  let store: PlatformStore | undefined;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'faas-listing-'));
  });
  afterEach(async () => {
    await store?.close();
    store = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  test('an old store is indexed on open, and every filter combination pages like a scan would', async () => {
    const calls = Array.from({ length: 120 }, (_, i) => makeCall(i + 1));
    await writeOldStore(dir, calls);
    store = await PlatformStore.open(dir);

    const since = at(40);
    const until = at(100);
    for (const funcName of [undefined, 'beta']) {
      for (const status of [undefined, 'DONE'] as const) {
        for (const range of [{}, { since }, { until }, { since, until }]) {
          for (const newestFirst of [false, true]) {
            for (const limit of [1, 7, 1000]) {
              const query = { ...(funcName ? { funcName } : {}), ...(status ? { status } : {}), ...range, newestFirst, limit };
              const expected = calls
                .filter((c) => (!funcName || c.funcName === funcName) && (!status || c.status === status))
                .filter((c) => (!('since' in range) || c.createdAt >= since) && (!('until' in range) || c.createdAt < until))
                .map((c) => c.callNum);
              if (newestFirst) expected.reverse();
              const pages = await allPages(store, query);
              const got = pages.flatMap((p) => p.calls.map((c) => c.callNum));
              expect({ query, got }).toEqual({ query, got: expected });
              expect(pages.slice(0, -1).every((p) => p.calls.length === limit)).toBe(true);
              for (const c of pages.flatMap((p) => p.calls)) {
                expect(c).not.toHaveProperty('stdout');
                expect(c).not.toHaveProperty('stderr');
                expect(c.result).toBe(`r${c.callNum}`);
              }
            }
          }
        }
      }
    }
    // The index version is recorded: the next open does not index again.
    await store.close();
    const db = new Level<string, unknown>(dir, { valueEncoding: 'json' });
    await db.open();
    expect(await db.get(INDEX_VERSION_KEY)).toBe(1);
    await db.close();
    store = await PlatformStore.open(dir);
    expect((await store.listCalls({ funcName: 'gamma', status: 'RUNNING', limit: 1000 })).calls.map((c) => c.callNum)).toEqual(
      calls.filter((c) => c.funcName === 'gamma' && c.status === 'RUNNING').map((c) => c.callNum),
    );
  });

  test('stale index keys of an older version are dropped when the store is indexed again', async () => {
    await writeOldStore(dir, [makeCall(1), makeCall(2)]);
    const db = new Level<string, unknown>(dir, { valueEncoding: 'json' });
    await db.open();
    await db.put('ix:s:DONE:000000000099', 'stale');
    await db.put(INDEX_VERSION_KEY, 0);
    await db.close();
    store = await PlatformStore.open(dir);
    // Call 1 is RUNNING, call 2 DONE: the stale key of a call 99 that never was is gone.
    expect((await store.listCalls({ status: 'DONE' })).calls.map((c) => c.callNum)).toEqual([2]);
    expect((await store.listCalls({ status: 'RUNNING' })).calls.map((c) => c.callNum)).toEqual([1]);
  });

  test('creates, updates and retention keep the indexes in step with the calls', async () => {
    store = await PlatformStore.open(dir);
    const made: Call[] = [];
    for (let i = 0; i < 12; i += 1) made.push(await store.createCall({ funcName: FUNCTIONS[i % 3]!, params: { i } }));
    const byStatus = async (status: CallStatus, funcName?: string) =>
      (await store!.listCalls({ status, ...(funcName ? { funcName } : {}) })).calls.map((c) => c.callNum);
    expect(await byStatus('PENDING')).toEqual(made.map((c) => c.callNum));

    for (const c of made.slice(0, 8)) await store.applyCall({ command: 'start', callNum: c.callNum, by: 'miniworker', node: 'n1', startedAt: new Date().toISOString() });
    for (const c of made.slice(0, 5)) await store.applyCall({ command: 'finish', callNum: c.callNum, by: 'miniworker', status: 'DONE', result: 'ok', stdout: 'x'.repeat(1000) });
    expect(await byStatus('PENDING')).toEqual(made.slice(8).map((c) => c.callNum));
    expect(await byStatus('RUNNING')).toEqual(made.slice(5, 8).map((c) => c.callNum));
    expect(await byStatus('DONE')).toEqual(made.slice(0, 5).map((c) => c.callNum));
    expect(await byStatus('DONE', 'alpha')).toEqual(made.slice(0, 5).filter((c) => c.funcName === 'alpha').map((c) => c.callNum));
    // A refused write (the call already ended) changes no index.
    expect(await store.applyCall({ command: 'fail', callNum: made[0]!.callNum, by: 'api', reason: 'node_lost', error: 'late' })).toMatchObject({ applied: false, refused: 'final' });
    expect(await byStatus('ERROR')).toEqual([]);

    const { deleted } = await store.prune({ maxCalls: 10 });
    expect(deleted).toBe(2);
    expect(await byStatus('DONE')).toEqual(made.slice(2, 5).map((c) => c.callNum));
    expect((await store.listCalls({ funcName: made[0]!.funcName })).calls.map((c) => c.callNum)).not.toContain(made[0]!.callNum);
    expect((await store.listCalls({ since: '2000-01-01T00:00:00.000Z' })).calls.map((c) => c.callNum)).toEqual(made.slice(2).map((c) => c.callNum));
    // No index key is left for a pruned call: a fresh index of the same store is the same index.
    const indexKeys = async () => {
      const db = new Level<string, unknown>(dir, { valueEncoding: 'json' });
      await db.open();
      const out: string[] = [];
      for await (const [key, value] of db.iterator({ gte: 'ix:', lt: 'ix:\xff' })) out.push(`${key}=${JSON.stringify(value)}`);
      await db.put(INDEX_VERSION_KEY, 0);
      await db.close();
      return out;
    };
    await store.close();
    const written = await indexKeys();
    store = await PlatformStore.open(dir);
    await store.close();
    store = undefined;
    expect(await indexKeys()).toEqual(written);
  });

  test('a time range follows creation time, and a cursor whose call is gone still pages each call once', async () => {
    // The clock went back between call 5 and call 6.
    const calls = Array.from({ length: 10 }, (_, i) => makeCall(i + 1, { createdAt: at(i < 5 ? 100 + i : 50 + i) }));
    await writeOldStore(dir, calls);
    store = await PlatformStore.open(dir);
    const newest = (await allPages(store, { since: at(0), newestFirst: true, limit: 3 })).flatMap((p) => p.calls.map((c) => c.callNum));
    expect(newest).toEqual([5, 4, 3, 2, 1, 10, 9, 8, 7, 6]);
    const oldest = (await allPages(store, { since: at(0), limit: 4 })).flatMap((p) => p.calls.map((c) => c.callNum));
    expect(oldest).toEqual([6, 7, 8, 9, 10, 1, 2, 3, 4, 5]);
    // Call 3 is pruned after it was handed out as a cursor.
    const first = await store.listCalls({ since: at(0), limit: 3, newestFirst: true });
    expect(first.next).toBe(3);
    await store.applyCall({ command: 'finish', callNum: 3, by: 'miniworker', status: 'DONE' });
    const db = (store as unknown as { db: Level<string, unknown> }).db;
    await db.del('call:000000000003');
    const rest = await store.listCalls({ since: at(0), limit: 100, newestFirst: true, beforeCallNum: 3 });
    expect(rest.calls.map((c) => c.callNum)).toEqual([2, 1]);
  });

  test('a page of large calls is bounded by bytes as well as by count', async () => {
    // Results of 1 MiB of \x01 are 6 MiB once JSON-escaped.
    const big = '\x01'.repeat(1024 * 1024);
    const log = 'x'.repeat(1024 * 1024);
    const calls = Array.from({ length: 4 }, (_, i) => makeCall(i + 1, { status: 'DONE', result: i === 2 ? 'small' : big, stdout: log, stderr: log }));
    await writeOldStore(dir, calls);
    store = await PlatformStore.open(dir);
    for (const query of [{}, { status: 'DONE' as const, newestFirst: true, limit: 2 }]) {
      const pages = await allPages(store, query);
      expect(pages.flatMap((p) => p.calls.map((c) => c.callNum)).sort()).toEqual([1, 2, 3, 4]);
      expect(pages.length).toBeGreaterThanOrEqual(3);
      for (const page of pages) {
        const bytes = Buffer.byteLength(JSON.stringify(page));
        expect(bytes).toBeLessThan(MAX_FRAME_BYTES / 2);
        expect(page.calls.length === 1 || bytes <= PAGE_BYTES + 1024).toBe(true);
        expect(page.calls.every((c) => c.result === (c.callNum === 3 ? 'small' : big))).toBe(true);
      }
    }
  });

  test('100k small calls: a rare filter and the whole store, in pages', async () => {
    const calls = Array.from({ length: 100_000 }, (_, i) => ({
      callNum: i + 1,
      funcName: i % 10_000 === 0 ? 'rare' : 'common',
      params: {},
      status: (i % 2 === 0 ? 'DONE' : 'ERROR') as CallStatus,
      result: '',
      createdAt: at(i),
    }));
    await writeOldStore(dir, calls);
    store = await PlatformStore.open(dir);
    // Through the index, a rare filter reads the records it returns and no others.
    const db = (store as unknown as { db: Level<string, unknown> }).db;
    const reads = jest.spyOn(db, 'getMany');
    const rare = await store.listCalls({ funcName: 'rare', newestFirst: true, limit: 50 });
    expect(rare).toEqual({ calls: calls.filter((c) => c.funcName === 'rare').reverse(), next: null });
    expect(reads.mock.calls.flatMap(([keys]) => keys)).toHaveLength(10);
    reads.mockRestore();
    expect((await store.listCalls({ funcName: 'rare', status: 'ERROR' })).calls).toEqual([]);
    let seen = 0;
    let last = 0;
    for (const page of await allPages(store, { limit: 1000 })) {
      for (const c of page.calls) {
        expect(c.callNum).toBe(last + 1);
        last = c.callNum;
        seen += 1;
      }
    }
    expect(seen).toBe(100_000);
    const errors = await allPages(store, { status: 'ERROR', funcName: 'common', since: at(99_000), newestFirst: true, limit: 1000 });
    expect(errors.flatMap((p) => p.calls)).toHaveLength(500);
  });
});
