import type { Invocation } from '../protocol/worker-messages';

/** What a pump answers for one queued call: sent (leaves the queue), held back (look further), or no free slot (stop). */
export type Offer = 'taken' | 'held' | 'full';

/**
 * Calls waiting for a worker slot, oldest first, with counts by function and the set of call
 * numbers (a worker may not claim a call that waits here).
 */
export class CallQueue {
  private readonly items: Invocation[] = [];
  private readonly byFunction = new Map<string, number>();
  private readonly callNums = new Set<number>();

  get length(): number {
    return this.items.length;
  }

  callNumbers(): ReadonlySet<number> {
    return this.callNums;
  }

  has(callNum: number): boolean {
    return this.callNums.has(callNum);
  }

  /** Calls of this function waiting. */
  countFor(funcName: string): number {
    return this.byFunction.get(funcName) ?? 0;
  }

  /** `front`: a call that was handed back or failed to leave goes before the new ones. */
  add(invocation: Invocation, where: 'front' | 'back' = 'back'): void {
    if (where === 'front') this.items.unshift(invocation);
    else this.items.push(invocation);
    this.count(invocation, 1);
  }

  /**
   * Offers the queued calls to `offer`, oldest first. A call held back (its function at its
   * concurrency limit) waits without holding up the calls behind it; the scan past such calls is
   * bounded by `maxHeld`.
   */
  pump(offer: (invocation: Invocation) => Offer, maxHeld: number): void {
    let index = 0;
    while (index < this.items.length && index < maxHeld) {
      const invocation = this.items[index]!;
      const answer = offer(invocation);
      if (answer === 'full') return;
      if (answer === 'held') {
        index += 1;
        continue;
      }
      if (index === 0) this.items.shift();
      else this.items.splice(index, 1);
      this.count(invocation, -1);
    }
  }

  private count(invocation: Invocation, delta: number): void {
    const name = invocation.call.funcName;
    const next = (this.byFunction.get(name) ?? 0) + delta;
    if (next <= 0) this.byFunction.delete(name);
    else this.byFunction.set(name, next);
    if (delta > 0) this.callNums.add(invocation.call.callNum);
    else this.callNums.delete(invocation.call.callNum);
  }
}
