import type { Context } from '../context';

/** Wraps an action so that it gets the context built from the global flags, then commander's arguments. */
export type Act = <A extends unknown[]>(handler: (ctx: Context, ...args: A) => Promise<void>) => (...args: A) => Promise<void>;

/** Collects a repeatable option. */
export const repeatable = (value: string, previous: string[]): string[] => [...previous, value];
