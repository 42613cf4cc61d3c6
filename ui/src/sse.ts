import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { errorOf, rawFetch } from './api';

/**
 * Reads a Server-Sent Events stream through fetch (an EventSource cannot send an Authorization
 * header). Resolves when the server ends the stream; rejects with the api's error when it refuses.
 */
export async function readStream(path: string, onMessage: (message: EventSourceMessage) => void, signal: AbortSignal, lastEventId?: string, onOpen?: () => void): Promise<void> {
  const response = await rawFetch(path, { signal, headers: { accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) } });
  if (!response.ok) throw Object.assign(await errorOf(response), { retryAfter: Number(response.headers.get('retry-after')) || undefined });
  if (!(response.headers.get('content-type') ?? '').startsWith('text/event-stream') || !response.body) {
    throw new Error(`${path} did not answer an event stream`);
  }
  onOpen?.();
  const parser = createParser({ onEvent: onMessage });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      parser.feed(value);
    }
  } finally {
    reader.releaseLock();
  }
}
