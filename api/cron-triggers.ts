import { Cron } from 'croner';
import { PlatformError } from '../protocol/errors';
import type { Logger } from '../protocol/log';
import type { CronTrigger } from '../protocol/schemas';

/**
 * The api's clock for cron triggers (POST /v1/triggers). Each trigger has one timer to its next tick;
 * at a tick the platform asks db-service to record the tick and create its call in one write, which
 * db-service does only for a tick later than the last recorded one. So a tick makes one call even when
 * the api restarts around it, and a tick is never recorded without its call.
 *
 * When the api starts, a trigger whose latest tick passed while it was down fires that tick once if it
 * has `catchUp`, and skips it otherwise. croner computes the ticks (schedules, seconds, time zones).
 */

/** A timer is never set further ahead than this: a long wait is re-armed, so a changed clock is caught up with. */
const MAX_TIMER_MS = 60_000;

export interface CronSchedulerOptions {
  /** Makes the tick's call; resolves when db-service has answered (fired or not). */
  fire: (trigger: CronTrigger, tick: Date) => Promise<void>;
  log: Logger;
  now?: () => number;
}

/** The schedule's ticks; a bad schedule or time zone is a 400 that says which. */
export function cronOf(schedule: string, timezone?: string): Cron {
  let cron: Cron;
  try {
    cron = new Cron(schedule.trim(), { paused: true, ...(timezone ? { timezone } : {}) });
  } catch (err) {
    throw new PlatformError('BAD_REQUEST', `schedule ${JSON.stringify(schedule.slice(0, 100))} is not a cron schedule: ${err instanceof Error ? err.message.slice(0, 200) : 'unreadable'}`);
  }
  try {
    if (!cron.nextRun()) throw new Error('it has no tick to come');
  } catch (err) {
    const why = err instanceof Error && /timezone/i.test(err.message) ? `time zone ${JSON.stringify((timezone ?? '').slice(0, 64))} is not an IANA time zone` : `schedule: ${err instanceof Error ? err.message.slice(0, 200) : 'no tick'}`;
    throw new PlatformError('BAD_REQUEST', why);
  }
  return cron;
}

interface Scheduled {
  trigger: CronTrigger;
  cron: Cron;
  timer?: NodeJS.Timeout;
  /** The tick the timer waits for. */
  next?: Date;
}

export class CronScheduler {
  private readonly scheduled = new Map<string, Scheduled>();
  private readonly now: () => number;
  private closed = false;

  constructor(private readonly options: CronSchedulerOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The triggers stored before this start: a tick missed while the api was down fires once, if asked. */
  load(triggers: CronTrigger[]): void {
    for (const trigger of triggers) {
      // Created or replaced through this api since the list was read: that one is newer.
      if (this.scheduled.has(trigger.name)) continue;
      const entry = this.entryOf(trigger);
      if (!entry) continue;
      if (trigger.catchUp) {
        const [latest] = entry.cron.previousRuns(1, new Date(this.now()));
        if (latest && latest.getTime() > Date.parse(trigger.lastTick)) {
          this.options.log.info({ trigger: trigger.name, tick: latest.toISOString() }, 'a tick missed while the api was down fires now (catchUp)');
          void this.fire(entry, latest);
        }
      }
      this.arm(entry);
    }
  }

  /** A trigger created or replaced: its next tick from now. */
  set(trigger: CronTrigger): void {
    this.remove(trigger.name);
    const entry = this.entryOf(trigger);
    if (entry) this.arm(entry);
  }

  remove(name: string): void {
    const entry = this.scheduled.get(name);
    if (entry?.timer) clearTimeout(entry.timer);
    this.scheduled.delete(name);
  }

  /** The next tick of each trigger, for GET /v1/triggers. */
  nextTick(name: string): Date | undefined {
    return this.scheduled.get(name)?.next;
  }

  close(): void {
    this.closed = true;
    for (const name of [...this.scheduled.keys()]) this.remove(name);
  }

  private entryOf(trigger: CronTrigger): Scheduled | undefined {
    try {
      const entry: Scheduled = { trigger, cron: cronOf(trigger.schedule, trigger.timezone) };
      this.scheduled.set(trigger.name, entry);
      return entry;
    } catch (err) {
      // Stored by an api whose croner read it differently: reported, not fatal to the others.
      this.options.log.warn({ trigger: trigger.name, err: err instanceof Error ? err.message : String(err) }, 'a stored trigger cannot be scheduled');
      return undefined;
    }
  }

  private arm(entry: Scheduled): void {
    if (this.closed || this.scheduled.get(entry.trigger.name) !== entry) return;
    const from = Math.max(this.now(), entry.next?.getTime() ?? 0);
    const next = entry.cron.nextRun(new Date(from));
    entry.next = next ?? undefined;
    if (!next) return;
    const wait = Math.min(Math.max(0, next.getTime() - this.now()), MAX_TIMER_MS);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (this.now() + 5 < next.getTime()) {
        // Re-armed before its tick (a long wait, or a clock moved back): look again.
        entry.next = undefined;
        this.arm(entry);
        return;
      }
      void this.fire(entry, next);
      this.arm(entry);
    }, wait);
    entry.timer.unref();
  }

  private async fire(entry: Scheduled, tick: Date): Promise<void> {
    try {
      await this.options.fire(entry.trigger, tick);
    } catch (err) {
      this.options.log.warn({ trigger: entry.trigger.name, tick: tick.toISOString(), err: err instanceof Error ? err.message : String(err) }, 'a tick made no call');
    }
  }
}
