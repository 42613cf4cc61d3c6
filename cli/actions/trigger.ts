import { UsageError, type Context } from '../context';
import { formatTime } from '../output';

export interface TriggerOptions {
  schedule: string;
  fn: string;
  params?: string;
  tz?: string;
  catchUp?: boolean;
}

/** Creates or replaces a cron trigger. */
export async function createTrigger(ctx: Context, name: string, o: TriggerOptions): Promise<void> {
  let params: unknown = {};
  if (o.params !== undefined) {
    try {
      params = JSON.parse(o.params);
    } catch (err) {
      throw new UsageError(`--params takes JSON, such as '{"day": "monday"}': ${(err as Error).message}`);
    }
  }
  const trigger = await ctx.client.putTrigger({ name, schedule: o.schedule, function: o.fn, params, ...(o.tz ? { timezone: o.tz } : {}), ...(o.catchUp ? { catchUp: true } : {}) });
  ctx.out.result(trigger, () => `trigger ${trigger.name}: ${trigger.function} at "${trigger.schedule}"${trigger.timezone ? ` (${trigger.timezone})` : ' (UTC)'}${trigger.nextTick ? `, next ${formatTime(trigger.nextTick, true)}` : ''}`);
}

export async function listTriggers(ctx: Context): Promise<void> {
  const triggers = (await ctx.client.listTriggers()).sort((a, b) => a.name.localeCompare(b.name));
  ctx.out.table(
    triggers,
    [
      { header: 'NAME', value: (t) => t.name },
      { header: 'SCHEDULE', value: (t) => t.schedule },
      { header: 'ZONE', value: (t) => t.timezone ?? 'UTC' },
      { header: 'FUNCTION', value: (t) => t.function },
      { header: 'CATCH-UP', value: (t) => (t.catchUp ? 'yes' : 'no') },
      { header: 'LAST TICK', value: (t) => (t.lastTick === t.createdAt ? '–' : formatTime(t.lastTick)) },
      { header: 'NEXT', value: (t) => (t.nextTick ? formatTime(t.nextTick) : '–') },
    ],
    'no triggers yet: `faas trigger create NAME --schedule "*/5 * * * *" --fn FUNCTION` adds one',
  );
}

export async function removeTrigger(ctx: Context, name: string): Promise<void> {
  await ctx.client.removeTrigger(name);
  ctx.out.result({ removed: name }, () => `trigger ${name} removed (its calls stay)`);
}
