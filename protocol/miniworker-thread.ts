import type { StartCommand } from './call-lifecycle';
import type { ErrorShape } from './errors';
import type { MiniworkerToWorker, WorkerToMiniworker } from './worker-messages';

/**
 * A miniworker as a thread of its worker (FAAS_MINIWORKER_KIND=thread): the messages on its port.
 * They are the worker–miniworker channel's own (worker-messages.ts), as `{msgType, content}`
 * objects instead of frames, plus what a process does on sockets of its own: its db-service
 * requests, which the worker makes for it, and the stop a process gets as SIGTERM.
 */

/** What a miniworker thread is started with (its workerData). */
export interface MiniworkerThreadData {
  routingId: string;
  nodeId: string;
  platformLabel: string;
  /** The node's folder of container channels, when it uses them (each miniworker has its own folder in it). */
  channelDir?: string;
  /** The node's secrets folder. */
  secretsDir?: string;
}

/** A db-service request of the thread's, answered by `dbAnswer` with the same id. */
export type ThreadDbAsk =
  | { id: number; op: 'startCall'; command: StartCommand }
  | { id: number; op: 'putOutputs'; callNum: number; zip: Uint8Array }
  | { id: number; op: 'getSecretValues'; names: string[] };

export type ThreadDbAnswer = { id: number; ok: true; data: unknown } | { id: number; ok: false; error: ErrorShape };

type Tagged<M> = { [K in keyof M & string]: { msgType: K; content: M[K] } }[keyof M & string];

export type ToMiniworkerThread = Tagged<WorkerToMiniworker> | { msgType: 'stop' } | { msgType: 'dbAnswer'; content: ThreadDbAnswer };

export type FromMiniworkerThread = Tagged<MiniworkerToWorker> | { msgType: 'db'; content: ThreadDbAsk };
