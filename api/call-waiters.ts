import type { Call } from '../protocol/types';

/** HTTP requests waiting for a call to end (POST /invokeFunction?wait=true). */
export class CallWaiters {
  private readonly waiting = new Map<number, Set<(call: Call) => void>>();

  /** Resolves with the final call, or with null when `timeoutMs` passes first. */
  wait(callNum: number, timeoutMs: number): Promise<Call | null> {
    return new Promise((resolve) => {
      let set = this.waiting.get(callNum);
      if (!set) {
        set = new Set();
        this.waiting.set(callNum, set);
      }
      const listener = (call: Call) => {
        clearTimeout(timer);
        resolve(call);
      };
      const timer = setTimeout(() => {
        this.remove(callNum, listener);
        resolve(null);
      }, timeoutMs);
      set.add(listener);
    });
  }

  settle(call: Call): void {
    const set = this.waiting.get(call.callNum);
    if (!set) return;
    this.waiting.delete(call.callNum);
    for (const listener of set) listener(call);
  }

  private remove(callNum: number, listener: (call: Call) => void): void {
    const set = this.waiting.get(callNum);
    if (!set) return;
    set.delete(listener);
    if (set.size === 0) this.waiting.delete(callNum);
  }
}
