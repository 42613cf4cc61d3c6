import os from 'node:os';

/**
 * How idle the node's processors were lately: the share of idle time across all of them between two
 * readings of the kernel's counters, at least `periodMs` apart (a reading costs a read of /proc/stat).
 */
export class CpuGauge {
  private last: { idle: number; total: number };
  private lastAt = Date.now();
  private idle = 1;

  constructor(
    private readonly periodMs = 250,
    private readonly read: () => { idle: number; total: number } = CpuGauge.read,
  ) {
    this.last = read();
  }

  /** The idle share (0 to 1) over the last period. */
  idleFraction(): number {
    const now = Date.now();
    if (now - this.lastAt >= this.periodMs) {
      const sample = this.read();
      const total = sample.total - this.last.total;
      if (total > 0) this.idle = Math.min(1, Math.max(0, (sample.idle - this.last.idle) / total));
      this.last = sample;
      this.lastAt = now;
    }
    return this.idle;
  }

  static read(): { idle: number; total: number } {
    let idle = 0;
    let total = 0;
    for (const { times } of os.cpus()) {
      idle += times.idle;
      total += times.user + times.nice + times.sys + times.idle + times.irq;
    }
    return { idle, total };
  }
}
