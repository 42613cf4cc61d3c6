import type { Level } from 'level';

export type BatchOp = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };

interface Waiter {
  ops: BatchOp[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Synced writes, grouped: writes that arrive while a batch is being flushed wait for the next one,
 * so one fsync acknowledges many writes. Batches are flushed one after the other, so a later write
 * to a key never lands before an earlier one.
 */
export class GroupCommit {
  private waiting: Waiter[] = [];
  private flushing = false;

  constructor(private readonly db: Level<string, unknown>) {}

  write(ops: BatchOp[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ ops, resolve, reject });
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
          { sync: true },
        );
        for (const w of group) w.resolve();
      } catch (err) {
        for (const w of group) w.reject(err);
      }
    }
    this.flushing = false;
  }
}
