/**
 * What keeps password guessing cheap for the api: failures counted per key (a client address, a user
 * name) in fixed windows, and the wrong pairs already seen. (The one-at-a-time queue of password
 * hashes is p-limit's, in auth.ts.)
 */

/** Failures per key in a window that opens at the key's first failure; past `max`, the key is locked until it closes. */
export class FailureWindows {
  private readonly windows = new Map<string, { count: number; endsAt: number }>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly maxKeys = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until the key may try again; 0 when it may now. */
  lockedFor(key: string): number {
    const entry = this.windows.get(key);
    if (!entry) return 0;
    const left = entry.endsAt - this.now();
    if (left <= 0) {
      this.windows.delete(key);
      return 0;
    }
    return entry.count >= this.max ? Math.ceil(left / 1000) : 0;
  }

  failed(key: string): void {
    const now = this.now();
    const entry = this.windows.get(key);
    if (entry && entry.endsAt > now) {
      entry.count += 1;
      return;
    }
    this.windows.delete(key);
    this.windows.set(key, { count: 1, endsAt: now + this.windowMs });
    // Oldest windows go first; one address keeps its own count however many names it tries.
    while (this.windows.size > this.maxKeys) this.windows.delete(this.windows.keys().next().value!);
  }

  get size(): number {
    return this.windows.size;
  }
}

/** A set of strings that forgets its oldest members past `max`. */
export class BoundedSet {
  private readonly members = new Set<string>();

  constructor(private readonly max: number) {}

  has(member: string): boolean {
    return this.members.has(member);
  }

  add(member: string): void {
    this.members.delete(member);
    this.members.add(member);
    if (this.members.size > this.max) this.members.delete(this.members.values().next().value!);
  }
}
