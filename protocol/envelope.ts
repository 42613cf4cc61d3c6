import { z } from 'zod';
import { PlatformError, type ErrorShape } from './errors';

/**
 * The envelope of every ZeroMQ message, as in the seed: the operation in `msgType`, its input in
 * `content`. Replies carry `ok` with `data` or an `error`. A version travels in every envelope.
 */
export const PROTOCOL_VERSION = 1;
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;

export interface Request<T = unknown> {
  v: number;
  id: string;
  msgType: string;
  content: T;
  /**
   * When the sender stops waiting for the answer (ms since the epoch). A request that arrives or
   * waits past it is not applied: an answered error never becomes a write later.
   */
  deadline?: number;
}

export type Reply<T = unknown> =
  | { v: number; id: string; ok: true; data: T }
  | { v: number; id: string; ok: false; error: ErrorShape };

export type Message = Request | Reply;

const requestSchema = z.object({
  v: z.number().int(),
  id: z.string().min(1).max(128),
  msgType: z.string().min(1).max(64),
  content: z.unknown(),
  deadline: z.number().finite().optional(),
});

const errorSchema = z.object({
  code: z.string(),
  message: z.string(),
  retryable: z.boolean().optional(),
  data: z.unknown().optional(),
});

const replySchema = z.union([
  z.object({ v: z.number().int(), id: z.string().min(1).max(128), ok: z.literal(true), data: z.unknown() }),
  z.object({ v: z.number().int(), id: z.string().min(1).max(128), ok: z.literal(false), error: errorSchema }),
]);

export function isReply(message: Message): message is Reply {
  return 'ok' in message;
}

/** Why decodeMessage refused a frame: `data.reason` of the PlatformError it throws. */
export type DecodeFailure = 'empty' | 'too_large' | 'not_json' | 'bad_envelope' | 'version';

/** The one entry point for inbound frames: anything that is not a valid envelope throws a PlatformError. */
export function decodeMessage(frame: Buffer | undefined, maxBytes = MAX_FRAME_BYTES): Message {
  if (!frame) throw new PlatformError('PROTOCOL_ERROR', 'empty message', { reason: 'empty' });
  if (frame.length > maxBytes) throw new PlatformError('PROTOCOL_ERROR', `frame of ${frame.length} bytes exceeds ${maxBytes}`, { reason: 'too_large' });
  let parsed: unknown;
  try {
    parsed = JSON.parse(frame.toString('utf8'));
  } catch {
    throw new PlatformError('PROTOCOL_ERROR', 'frame is not JSON', { reason: 'not_json' });
  }
  if (typeof parsed !== 'object' || parsed === null) throw new PlatformError('PROTOCOL_ERROR', 'frame is not an object', { reason: 'bad_envelope' });
  const v = (parsed as { v?: unknown }).v;
  if (v !== PROTOCOL_VERSION) {
    throw new PlatformError('VERSION_MISMATCH', `protocol version ${String(v).slice(0, 32)} is not ${PROTOCOL_VERSION}`, { reason: 'version' });
  }
  // The common shapes are checked by hand (this runs for every frame on the invocation path); the
  // schemas decide the rest and give the error.
  const m = parsed as Record<string, unknown>;
  const idOk = typeof m.id === 'string' && m.id.length > 0 && m.id.length <= 128;
  const deadlineOk = m.deadline === undefined || (typeof m.deadline === 'number' && Number.isFinite(m.deadline));
  if (idOk && deadlineOk && typeof m.msgType === 'string' && m.msgType.length > 0 && m.msgType.length <= 64 && !('ok' in m)) return m as unknown as Request;
  if (idOk && m.ok === true && 'data' in m) return m as unknown as Reply;
  const request = requestSchema.safeParse(parsed);
  if (request.success) return request.data as Request;
  const reply = replySchema.safeParse(parsed);
  if (reply.success) return reply.data as Reply;
  throw new PlatformError('PROTOCOL_ERROR', 'frame is neither a request nor a reply', { reason: 'bad_envelope' });
}

export function encodeRequest<T>(id: string, msgType: string, content: T, deadline?: number): Buffer {
  const request: Request<T> = { v: PROTOCOL_VERSION, id, msgType, content, ...(deadline !== undefined ? { deadline } : {}) };
  return Buffer.from(JSON.stringify(request));
}

export function encodeReply<T>(id: string, result: { ok: true; data: T } | { ok: false; error: ErrorShape }): Buffer {
  return Buffer.from(JSON.stringify({ v: PROTOCOL_VERSION, id, ...result }));
}
