import type { Level } from 'level';
import { PlatformError } from '../protocol/errors';

export type BatchOp = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };

interface Waiter {
  ops: BatchOp[];
  sync: boolean;
  deadline?: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Synced writes, grouped: writes that arrive while a batch is being flushed wait for the next one,
 * so one fsync acknowledges many writes. A write may skip the fsync; a synced batch after it covers
 * it too, since LevelDB's log is written in order. Batches are flushed one after the other, so a later write
 * to a key never lands before an earlier one. A write with a deadline that passes while it waits is
 * not written at all (REQUEST_EXPIRED): its sender has stopped waiting for it.
 */
export class GroupCommit {
  private waiting: Waiter[] = [];
  private flushing = false;

  constructor(private readonly db: Level<string, unknown>) {}

  /** `sync: false` skips the fsync for this write (it still survives a crash of the process). */
  write(ops: BatchOp[], sync = true, deadline?: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ ops, sync, deadline, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.waiting.length > 0) {
      const now = Date.now();
      const group: Waiter[] = [];
      for (const w of this.waiting) {
        if (w.deadline !== undefined && now > w.deadline) w.reject(new PlatformError('REQUEST_EXPIRED', 'the write waited past its deadline and was not applied'));
        else group.push(w);
      }
      this.waiting = [];
      if (group.length === 0) continue;
      try {
        await this.db.batch(
          group.flatMap((w) => w.ops),
          { sync: group.some((w) => w.sync) },
        );
        for (const w of group) w.resolve();
      } catch (err) {
        for (const w of group) w.reject(err);
      }
    }
    this.flushing = false;
  }
}
