import { createHash } from 'node:crypto';
import { z } from 'zod';
import { limitsTag } from './limits';
import type { FunctionRecord } from './types';

/**
 * A warm container is known by its key: a function version with the settings that shape its
 * container (`name@sha256`, then `+out`, `~limits`, `#env-hash` when set), or a runtime's stem cell
 * (`stem:runtime`). Keys are made only here and compared as opaque values; a key received from
 * another process is checked with `warmKeySchema` before it is used.
 */
export type WarmKey = string & { readonly __brand: 'WarmKey' };

const NAME = '[a-z0-9][a-z0-9_-]{0,62}';
const FUNCTION_KEY = new RegExp(`^(${NAME})@([a-f0-9]{64})(\\+out)?(~[A-Za-z0-9_=,.+-]{1,256})?(#[a-f0-9]{12})?$`);
const STEM_KEY = new RegExp(`^stem:(${NAME})$`);

export type WarmKeyParts = { kind: 'function'; function: string; version: string } | { kind: 'stem'; runtime: string };

/**
 * Re-registering a function with other settings gives another key, so a container made with the
 * old limits or environment is never reused.
 */
export function warmKey(fn: Pick<FunctionRecord, 'functionName' | 'version' | 'limits' | 'env' | 'outputs'>): WarmKey {
  let key = `${fn.functionName}@${fn.version}`;
  if (fn.outputs) key += '+out';
  if (fn.limits && Object.keys(fn.limits).length > 0) key += `~${limitsTag(fn.limits)}`;
  if (fn.env && Object.keys(fn.env).length > 0) key += `#${envTag(fn.env)}`;
  return key as WarmKey;
}

export function stemKey(runtimeName: string): WarmKey {
  return `stem:${runtimeName}` as WarmKey;
}

/** What a key stands for, for display and for matching a removed function; undefined for a key that is not well formed. */
export function describeWarmKey(key: string): WarmKeyParts | undefined {
  const fn = FUNCTION_KEY.exec(key);
  if (fn) return { kind: 'function', function: fn[1]!, version: fn[2]! };
  const stem = STEM_KEY.exec(key);
  if (stem) return { kind: 'stem', runtime: stem[1]! };
  return undefined;
}

export function isWarmKey(value: unknown): value is WarmKey {
  return typeof value === 'string' && value.length <= 512 && describeWarmKey(value) !== undefined;
}

export function isStemKey(key: WarmKey): boolean {
  return describeWarmKey(key)?.kind === 'stem';
}

/** The key belongs to a version of this function (any version, any settings). */
export function isKeyOfFunction(key: WarmKey, functionName: string): boolean {
  const parts = describeWarmKey(key);
  return parts?.kind === 'function' && parts.function === functionName;
}

/** A warm key as it arrives on a channel. */
export const warmKeySchema = z.string().max(512).refine(isWarmKey, 'not a warm key').transform((key) => key as WarmKey);

/** Warm containers on a node, by key. */
export type WarmCounts = Record<WarmKey, number>;

export const warmCountsSchema = z
  .record(z.string().max(512), z.number().int().nonnegative().max(1024))
  .refine((warm) => Object.keys(warm).length <= 4096, 'at most 4096 warm keys')
  .refine((warm) => Object.keys(warm).every(isWarmKey), 'not a warm key')
  .transform((warm) => warm as WarmCounts);

export interface WarmContainers {
  warm: Array<{ function: string; version: string; containers: number }>;
  stems: Array<{ runtime: string; containers: number }>;
}

/** A node's warm containers for display: function versions and stem cells. */
export function describeWarmCounts(counts: WarmCounts): WarmContainers {
  const shown: WarmContainers = { warm: [], stems: [] };
  for (const [key, containers] of Object.entries(counts) as Array<[string, number]>) {
    const parts = describeWarmKey(key);
    if (parts?.kind === 'function') shown.warm.push({ function: parts.function, version: parts.version, containers });
    else if (parts?.kind === 'stem') shown.stems.push({ runtime: parts.runtime, containers });
  }
  return shown;
}

function envTag(env: Record<string, string>): string {
  const sorted = Object.keys(env)
    .sort()
    .map((k) => [k, env[k]]);
  return createHash('sha1').update(JSON.stringify(sorted)).digest('hex').slice(0, 12);
}
