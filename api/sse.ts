import type { ServerResponse } from 'node:http';

/** A connection with more than this waiting to be read is cut: its events are not kept in memory. */
export const MAX_PENDING_BYTES = 1024 * 1024;

/** Starts a Server-Sent Events answer on `res`, headers sent at once so the client knows it is subscribed. */
export function openEventStream(res: ServerResponse): void {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    // Proxies such as nginx would otherwise hold the events back in their buffers.
    'X-Accel-Buffering': 'no',
  });
  res.socket?.setNoDelay(true);
  res.flushHeaders();
}

/**
 * Writes one event (or comment) unless the client does not read: past `maxPendingBytes` waiting,
 * the connection is cut instead. False when nothing was written.
 */
export function writeEvent(res: ServerResponse, text: string, maxPendingBytes = MAX_PENDING_BYTES): boolean {
  if (res.destroyed) return false;
  if (res.writableLength > maxPendingBytes) {
    res.destroy();
    return false;
  }
  res.write(text);
  return true;
}
