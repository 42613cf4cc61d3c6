/** The api's payloads as the dashboard reads them: the types of api/schemas.ts and protocol/types.ts. */

import type { CallStatus, FunctionRecord as StoredFunction, Runtime } from '../../protocol/types';
import type { ApiCall, CallPage, Health, Worker } from '../../api/schemas';

export type { CallPage, CallStatus, Health, Runtime, Worker };
export type Call = ApiCall;
/** A function as listed, or one of its versions (which says whether it is the current one). */
export type FunctionRecord = StoredFunction & { current?: boolean };
export type FunctionLimits = NonNullable<StoredFunction['limits']>;

export const FINAL: ReadonlySet<string> = new Set(['DONE', 'ERROR', 'TIMEOUT']);
export const STATUSES: CallStatus[] = ['PENDING', 'RUNNING', 'DONE', 'ERROR', 'TIMEOUT'];

/** docs/EVENTS.md */
export interface CallEvent {
  callNum: number;
  funcName: string;
  status: CallStatus;
  at: string;
  node?: string;
  reason?: Call['reason'];
  error?: string;
  durationMs?: number;
  coldStart?: boolean;
  rerunOf?: number;
}

export interface PlatformEvent {
  id?: string;
  type: string;
  data: Record<string, unknown>;
}
