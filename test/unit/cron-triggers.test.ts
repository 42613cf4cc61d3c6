import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CronScheduler, cronOf } from '../../api/cron-triggers';
import { PlatformStore } from '../../db-service/store';
import { PlatformError } from '../../protocol/errors';
import type { Logger } from '../../protocol/log';
import { cronTriggerInputSchema, type CronTrigger } from '../../protocol/schemas';
import { until } from '../helpers/until';

/** Cron triggers: the api's clock (real timers) and db-service's once-per-tick write (a real LevelDB). */

const log = { info: jest.fn(), warn: jest.fn() } as unknown as Logger;
const trigger = (over: Partial<CronTrigger>): CronTrigger => ({
  name: 'every',
  schedule: '* * * * * *',
  function: 'fn',
  createdAt: new Date().toISOString(),
  lastTick: new Date().toISOString(),
  ...over,
});

describe('schedules', () => {
  test('5 fields, or 6 with seconds; time zones by IANA name; anything else is a 400 saying why', () => {
    expect(cronOf('*/5 * * * *').nextRun()).toBeInstanceOf(Date);
    expect(cronOf('*/2 * * * * *').nextRun()!.getUTCSeconds() % 2).toBe(0);
    // 09:00 on a weekday in New York is 13:00 or 14:00 UTC, by daylight saving time.
    expect([13, 14]).toContain(cronOf('0 9 * * 1-5', 'America/New_York').nextRun()!.getUTCHours());
    for (const bad of ['every day', '61 * * * *', '* * * * * * *']) {
      const parsed = cronTriggerInputSchema.safeParse({ name: 'x', schedule: bad, function: 'f' });
      if (parsed.success) expect(() => cronOf(bad)).toThrow(PlatformError);
    }
    expect(() => cronOf('61 * * * *')).toThrow(/not a cron schedule/);
    expect(() => cronOf('* * * * *', 'Nowhere/Town')).toThrow(/time zone "Nowhere\/Town" is not an IANA time zone/);
    expect(cronTriggerInputSchema.safeParse({ name: 'x', schedule: '* * * * * * *', function: 'f' }).success).toBe(false);
    expect(cronTriggerInputSchema.safeParse({ name: 'x', schedule: '* * * * *', function: 'f', extra: 1 }).success).toBe(false);
  });
});

describe('the scheduler', () => {
  let scheduler: CronScheduler;
  afterEach(() => scheduler?.close());

  test('fires each tick of a seconds schedule on its second, once', async () => {
    const ticks: Date[] = [];
    scheduler = new CronScheduler({ log, fire: async (_t, tick) => void ticks.push(tick) });
    scheduler.set(trigger({}));
    expect(scheduler.nextTick('every')!.getTime() % 1000).toBe(0);
    await until(async () => ticks.length, (n) => n >= 3, 10_000, 'three ticks');
    const ms = ticks.map((t) => t.getTime());
    for (let i = 1; i < ms.length; i++) expect(ms[i]! - ms[i - 1]!).toBe(1000);
    scheduler.remove('every');
    const seen = ticks.length;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(ticks.length).toBe(seen);
  });

  test('at start, a tick missed while down fires once with catchUp, and not at all without', async () => {
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    const fired: Array<{ name: string; tick: Date }> = [];
    scheduler = new CronScheduler({ log, fire: async (t, tick) => void fired.push({ name: t.name, tick }) });
    scheduler.load([
      trigger({ name: 'caught', schedule: '0 * * * * *', lastTick: hourAgo, catchUp: true }),
      trigger({ name: 'skipped', schedule: '0 * * * * *', lastTick: hourAgo, catchUp: false }),
      trigger({ name: 'current', schedule: '0 0 1 1 *', lastTick: new Date().toISOString(), catchUp: true }),
    ]);
    await until(async () => fired.length, (n) => n >= 1, 5000, 'the caught-up tick');
    expect(fired).toHaveLength(1);
    expect(fired[0]!.name).toBe('caught');
    // The latest minute passed, not the sixty missed.
    expect(Date.now() - fired[0]!.tick.getTime()).toBeLessThan(61_000);
    expect(fired[0]!.tick.getUTCSeconds()).toBe(0);
  });
});

describe("db-service's tick write", () => {
  test('a tick makes one call, its tick recorded with it; the same or an older tick makes none', async () => {
    const store = await PlatformStore.open(mkdtempSync(path.join(os.tmpdir(), 'faas-trg-')));
    try {
      const created = new Date('2026-01-01T00:00:00Z').toISOString();
      await store.putTrigger(trigger({ name: 'nightly', createdAt: created, lastTick: created }));
      const input = { funcName: 'fn', params: { a: 1 }, trigger: 'cron:nightly' };
      const tick = '2026-01-02T00:00:00.000Z';
      const [first, again] = await Promise.all([store.fireTrigger('nightly', tick, input), store.fireTrigger('nightly', tick, input)]);
      expect([first.fired, again.fired].sort()).toEqual([false, true]);
      const call = (first.call ?? again.call)!;
      expect(call).toMatchObject({ funcName: 'fn', params: { a: 1 }, trigger: 'cron:nightly', status: 'PENDING' });
      expect((await store.getTrigger('nightly'))!.lastTick).toBe(tick);
      expect((await store.fireTrigger('nightly', '2026-01-01T12:00:00.000Z', input)).fired).toBe(false);
      expect(store.callCount).toBe(1);
      expect((await store.fireTrigger('gone', tick, input)).fired).toBe(false);
      expect((await store.fireTrigger('nightly', '2026-01-03T00:00:00.000Z', input)).fired).toBe(true);
      expect(store.callCount).toBe(2);
      expect((await store.deleteTrigger('nightly')).deleted).toBe(true);
      expect(await store.listTriggers()).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
