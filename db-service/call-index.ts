import type { Level } from 'level';
import type { CallPage, DbRequest, ListedCall } from '../protocol/db-messages';
import type { Call } from '../protocol/types';
import type { BatchOp } from './group-commit';

/**
 * Secondary indexes of the calls, written in the same batch as the call itself:
 *
 *   ix:f:<function>:<callNum>           → createdAt   (calls of one function)
 *   ix:s:<status>:<callNum>             → createdAt   (calls in one state)
 *   ix:fs:<function>:<status>:<callNum> → createdAt   (both)
 *   ix:t:<createdAt>:<callNum>          → callNum     (calls by creation time)
 *
 * The first three run in callNum order like the calls themselves, and carry createdAt so that a time
 * range over them needs no call record; the time index serves a time range without other filters.
 */
export const INDEX_VERSION = 1;
export const INDEX_VERSION_KEY = 'meta:callIndexVersion';
export const INDEX_PREFIX = 'ix:';
const BY_FUNCTION = 'ix:f:';
const BY_STATUS = 'ix:s:';
const BY_FUNCTION_STATUS = 'ix:fs:';
const BY_TIME = 'ix:t:';
const CALL = 'call:';
/** Dead letters: calls whose retries ran out, `dl:<padded callNum>` (kept apart from the rebuildable indexes). */
export const DEAD_LETTER = 'dl:';

/** What a listing may return at most, encoded, per page: well under the 16 MiB frame cap, since one call may be ~7 MiB. */
export const PAGE_BYTES = 4 * 1024 * 1024;
/** Calls per page when the request names no limit. */
export const DEFAULT_PAGE = 1000;

export function padCallNum(callNum: number): string {
  return String(callNum).padStart(12, '0');
}

/** Names are checked at registration; encoding keeps any older name from reaching into another's keys. */
function part(value: string): string {
  return encodeURIComponent(value);
}

function entries(call: Call): Array<{ key: string; value: unknown }> {
  const n = padCallNum(call.callNum);
  const fn = part(call.funcName);
  return [
    { key: `${BY_FUNCTION}${fn}:${n}`, value: call.createdAt },
    { key: `${BY_STATUS}${call.status}:${n}`, value: call.createdAt },
    { key: `${BY_FUNCTION_STATUS}${fn}:${call.status}:${n}`, value: call.createdAt },
    { key: `${BY_TIME}${call.createdAt}:${n}`, value: call.callNum },
  ];
}

/** The index writes for a call written as `after`, that was `before` (undefined for a new call). */
export function indexOps(before: Call | undefined, after: Call): BatchOp[] {
  const next = entries(after);
  if (!before) return next.map(({ key, value }) => ({ type: 'put', key, value }));
  const previous = entries(before);
  const ops: BatchOp[] = [];
  const kept = new Set(next.map((e) => e.key));
  for (const { key } of previous) if (!kept.has(key)) ops.push({ type: 'del', key });
  for (const e of next) {
    const old = previous.find((p) => p.key === e.key);
    if (!old || old.value !== e.value) ops.push({ type: 'put', key: e.key, value: e.value });
  }
  return ops;
}

/** The index deletes for a call that is removed. */
export function unindexOps(call: Call): Array<{ type: 'del'; key: string }> {
  return entries(call).map(({ key }) => ({ type: 'del' as const, key }));
}

/** A call as lists show it: without its logs (they stay at GET /v1/calls/:n and /logs). */
export function listed(call: Call): ListedCall {
  const { stdout: _stdout, stderr: _stderr, ...rest } = call;
  return rest;
}

/**
 * Builds the indexes of a store written before them (or by another index version): every index key
 * is dropped and written again from the calls, in batches. Runs once, on open.
 */
export async function rebuildIndexes(db: Level<string, unknown>, write: (ops: BatchOp[], sync: boolean) => Promise<void>): Promise<{ indexed: number; rebuilt: boolean }> {
  if ((await db.get(INDEX_VERSION_KEY)) === INDEX_VERSION) return { indexed: 0, rebuilt: false };
  let batch: BatchOp[] = [];
  // Only the last batch, which records the version, is synced: LevelDB's log is written in order.
  const flush = async (sync = false) => {
    if (batch.length > 0) await write(batch, sync);
    batch = [];
  };
  for await (const key of db.keys({ gte: INDEX_PREFIX, lt: INDEX_PREFIX + '\xff' })) {
    batch.push({ type: 'del', key });
    if (batch.length >= 5000) await flush();
  }
  let indexed = 0;
  for await (const value of db.values({ gte: CALL, lt: CALL + '\xff' })) {
    batch.push(...indexOps(undefined, value as Call));
    indexed += 1;
    if (batch.length >= 5000) await flush();
  }
  batch.push({ type: 'put', key: INDEX_VERSION_KEY, value: INDEX_VERSION });
  await flush(true);
  return { indexed, rebuilt: true };
}

type ListQuery = DbRequest<'listCalls'>;

/** Candidate call numbers, in listing order, from the key range that fits the filters. */
async function* candidates(db: Level<string, unknown>, q: ListQuery): AsyncGenerator<number> {
  const reverse = q.newestFirst === true;
  if (q.deadLetter) {
    // Few: every other filter is checked on the records.
    const range = { gt: DEAD_LETTER + (q.afterCallNum ? padCallNum(q.afterCallNum) : ''), lt: DEAD_LETTER + (q.beforeCallNum ? padCallNum(q.beforeCallNum) : '\xff'), reverse };
    for await (const key of db.keys(range)) yield Number(key.slice(DEAD_LETTER.length));
    return;
  }
  const inTime = (createdAt: unknown) =>
    typeof createdAt === 'string' && (q.since === undefined || createdAt >= q.since) && (q.until === undefined || createdAt < q.until);
  if (q.funcName !== undefined || q.status !== undefined) {
    const prefix =
      q.funcName !== undefined && q.status !== undefined
        ? `${BY_FUNCTION_STATUS}${part(q.funcName)}:${q.status}:`
        : q.funcName !== undefined
          ? `${BY_FUNCTION}${part(q.funcName)}:`
          : `${BY_STATUS}${q.status}:`;
    const range = {
      gt: prefix + (q.afterCallNum ? padCallNum(q.afterCallNum) : ''),
      lt: q.beforeCallNum ? prefix + padCallNum(q.beforeCallNum) : prefix + '\xff',
      reverse,
    };
    const timed = q.since !== undefined || q.until !== undefined;
    for await (const [key, createdAt] of db.iterator(range)) {
      if (timed && !inTime(createdAt)) continue;
      yield Number(key.slice(-12));
    }
    return;
  }
  if (q.since !== undefined || q.until !== undefined) {
    // Creation-time order, which is callNum order as long as the clock never went back. A cursor is
    // placed after its own call's time; a cursor whose call is gone is applied by number instead.
    const cursor = reverse ? q.beforeCallNum : q.afterCallNum;
    const cursorCall = cursor ? ((await db.get(CALL + padCallNum(cursor))) as Call | undefined) : undefined;
    const range: { gte?: string; gt?: string; lt: string; reverse: boolean } = {
      gte: BY_TIME + (q.since ?? ''),
      lt: BY_TIME + (q.until ?? '\xff'),
      reverse,
    };
    if (cursorCall) {
      const at = `${BY_TIME}${cursorCall.createdAt}:${padCallNum(cursorCall.callNum)}`;
      if (reverse && at < range.lt) range.lt = at;
      if (!reverse && at >= range.gte!) {
        delete range.gte;
        range.gt = at;
      }
    }
    for await (const key of db.keys(range)) {
      const callNum = Number(key.slice(-12));
      if (!cursorCall && q.beforeCallNum && callNum >= q.beforeCallNum) continue;
      if (!cursorCall && q.afterCallNum && callNum <= q.afterCallNum) continue;
      yield callNum;
    }
    return;
  }
  const range = {
    gt: q.afterCallNum ? CALL + padCallNum(q.afterCallNum) : CALL,
    lt: q.beforeCallNum ? CALL + padCallNum(q.beforeCallNum) : CALL + '\xff',
    reverse,
  };
  for await (const key of db.keys(range)) yield Number(key.slice(CALL.length));
}

function matches(call: Call, q: ListQuery): boolean {
  if (q.status !== undefined && call.status !== q.status) return false;
  if (q.funcName !== undefined && call.funcName !== q.funcName) return false;
  if (q.since !== undefined && call.createdAt < q.since) return false;
  if (q.until !== undefined && call.createdAt >= q.until) return false;
  return true;
}

/**
 * One page of calls matching every filter, newest first with `newestFirst`, after or before a cursor
 * (a call number). A page holds at most `limit` calls and about PAGE_BYTES of them (always at least
 * one); `next` is the cursor of the following page, null when there is none.
 */
export async function listCallPage(db: Level<string, unknown>, q: ListQuery, pageBytes = PAGE_BYTES): Promise<CallPage> {
  const limit = q.limit ?? DEFAULT_PAGE;
  const calls: ListedCall[] = [];
  let bytes = 0;
  const source = candidates(db, q);
  let pending: number[] = [];
  let exhausted = false;
  const refill = async (want: number) => {
    while (pending.length < want && !exhausted) {
      const step = await source.next();
      if (step.done) exhausted = true;
      else pending.push(step.value);
    }
  };
  try {
    for (;;) {
      // Records are read in small groups, sized by what the page still has room for, so that a page
      // of large calls reads few records it does not return.
      const room = calls.length === 0 ? 8 : Math.ceil((pageBytes - bytes) / (bytes / calls.length)) + 1;
      // A full page still looks one candidate ahead, to know whether there is a next page.
      await refill(Math.max(1, Math.min(64, limit - calls.length, room)));
      if (pending.length === 0) return { calls, next: null };
      if (calls.length >= limit) return { calls, next: calls[calls.length - 1]!.callNum };
      const group = pending.splice(0, Math.max(1, Math.min(pending.length, limit - calls.length, room)));
      const records = await db.getMany(group.map((n) => CALL + padCallNum(n)));
      for (let i = 0; i < group.length; i += 1) {
        const call = records[i] as Call | undefined;
        // The indexes were read from a snapshot: a call may have moved on or been pruned since.
        if (!call || !matches(call, q)) continue;
        const item = listed(call);
        const size = Buffer.byteLength(JSON.stringify(item)) + 1;
        if (calls.length > 0 && bytes + size > pageBytes) return { calls, next: calls[calls.length - 1]!.callNum };
        calls.push(item);
        bytes += size;
      }
    }
  } finally {
    await source.return(undefined);
  }
}
