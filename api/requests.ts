import type { Request, Response } from 'express';
import { PlatformError } from '../protocol/errors';
import { isValidName } from '../protocol/names';
import type { Call } from '../protocol/types';
import { checkCallbackUrl, type CallbackPolicy } from './callbacks';
import type { Platform } from './platform';

/** What every route reads from a request and how invocations are answered, the seed's and /v1's alike. */

export function zodMessage(error: { issues: { path: (string | number)[]; message: string }[] }): string {
  return error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
}

/** How deeply a JSON value nests (a scalar 0, `[]` and `{}` 1), counted without recursion and only up to `limit + 1`. */
export function jsonDepth(value: unknown, limit = Number.MAX_SAFE_INTEGER): number {
  let deepest = 0;
  const pending: Array<[unknown, number]> = [[value, 0]];
  while (pending.length > 0) {
    const [item, depth] = pending.pop()!;
    if (typeof item !== 'object' || item === null) continue;
    if (depth + 1 > deepest) deepest = depth + 1;
    if (deepest > limit) return deepest;
    for (const member of Array.isArray(item) ? item : Object.values(item)) if (typeof member === 'object' && member !== null) pending.push([member, depth + 1]);
  }
  return deepest;
}

/** Params nested past the bound are refused before any call is made (a runtime's parser may not take them). */
export function checkParamsDepth(params: unknown, maxDepth: number): void {
  if (jsonDepth(params, maxDepth) > maxDepth) throw new PlatformError('BAD_REQUEST', `params nest deeper than ${maxDepth} levels (FAAS_MAX_PARAMS_DEPTH)`);
}

/** What each kind of named record answers when the name is not one of them. */
const NOT_FOUND = { runtime: 'RUNTIME_NOT_FOUND', function: 'FUNCTION_NOT_FOUND', trigger: 'TRIGGER_NOT_FOUND', secret: 'SECRET_NOT_FOUND' } as const;

/** The `:name` of a route; a name no record can have is that kind's 404. */
export function nameParam(req: Request, what: keyof typeof NOT_FOUND): string {
  const name = req.params.name as string;
  if (!isValidName(name)) throw new PlatformError(NOT_FOUND[what], `no ${what} named "${String(req.params.name).slice(0, 64)}"`);
  return name;
}

export function parseCallNum(raw: string): number {
  if (!/^\d{1,15}$/.test(raw) || Number(raw) < 1) throw new PlatformError('BAD_REQUEST', `"${raw.slice(0, 32)}" is not a call number`);
  return Number(raw);
}

/** ?wait=true (or 1), or "wait": true in the body. */
export function wantsWait(req: Request, bodyWait?: boolean): boolean {
  return req.query.wait === 'true' || req.query.wait === '1' || bodyWait === true;
}

/** The call's callback URL (the X-Callback-Url header, else the body's callbackUrl), checked against the operator's allow list. */
export function callbackUrl(req: Request, fromBody: string | undefined, policy: CallbackPolicy, selfPort?: number): string | undefined {
  const raw = req.get('x-callback-url') ?? fromBody;
  return raw === undefined || raw === '' ? undefined : checkCallbackUrl(raw, policy, selfPort);
}

export function idempotencyKey(req: Request): string | undefined {
  const key = req.get('idempotency-key');
  if (key !== undefined && !/^[\x21-\x7e]{1,256}$/.test(key)) {
    throw new PlatformError('BAD_REQUEST', 'Idempotency-Key must be 1 to 256 printable characters without spaces');
  }
  return key;
}

/**
 * 202 with the call as made; when waited for, 200 with its end, or 202 with it as it stands after the
 * wait bound. A call given back for a repeated Idempotency-Key says so in Idempotent-Replayed.
 */
export async function answer(platform: Platform, res: Response, started: { call: Call; done?: Promise<Call | null>; replayed: boolean }): Promise<void> {
  if (started.replayed) res.setHeader('Idempotent-Replayed', 'true');
  if (!started.done) {
    res.status(202).json(started.call);
    return;
  }
  const final = await started.done;
  if (final) res.status(200).json(final);
  else res.status(202).json(await platform.currentCall(started.call.callNum));
}
