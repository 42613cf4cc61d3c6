import type { Level } from 'level';

export type BatchOp = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };

interface Waiter {
  ops: BatchOp[];
  sync: boolean;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Synced writes, grouped: writes that arrive while a batch is being flushed wait for the next one,
 * so one fsync acknowledges many writes. A write may skip the fsync; a synced batch after it covers
 * it too, since LevelDB's log is written in order. Batches are flushed one after the other, so a later write
 * to a key never lands before an earlier one.
 */
export class GroupCommit {
  private waiting: Waiter[] = [];
  private flushing = false;

  constructor(private readonly db: Level<string, unknown>) {}

  /** `sync: false` skips the fsync for this write (it still survives a crash of the process). */
  write(ops: BatchOp[], sync = true): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ ops, sync, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.waiting.length > 0) {
      const group = this.waiting;
      this.waiting = [];
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
