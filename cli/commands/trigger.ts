import type { Command } from 'commander';
import { createTrigger, listTriggers, removeTrigger, type TriggerOptions } from '../actions/trigger';
import type { Act } from './types';

export function triggerCommands(program: Command, act: Act): void {
  const trigger = program.command('trigger').description('cron triggers: calls of a function on a schedule');

  trigger
    .command('create <name>')
    .alias('add')
    .description('create (or replace) a trigger: FUNCTION is called with PARAMS at each tick of SCHEDULE')
    .requiredOption('--schedule <cron>', 'minute hour day month weekday, or seconds first: "*/5 * * * *", "*/10 * * * * *"')
    .requiredOption('--fn <function>', 'the function to call')
    .option('--params <json>', 'the params of each call (JSON)')
    .option('--tz <zone>', 'the time zone of the schedule, an IANA name such as Europe/Madrid (default UTC)')
    .option('--catch-up', 'a tick missed while the platform was down fires once when it is back')
    .action(act((ctx, name: string, o: TriggerOptions) => createTrigger(ctx, name, o)));

  trigger.command('ls').alias('list').description('list triggers, with their last and next ticks').action(act((ctx) => listTriggers(ctx)));

  trigger
    .command('rm <name>')
    .alias('remove')
    .description('remove a trigger (its calls stay)')
    .action(act((ctx, name: string) => removeTrigger(ctx, name)));
}
