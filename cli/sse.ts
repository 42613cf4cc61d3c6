import { createParser, type EventSourceMessage } from 'eventsource-parser';

/** One event of a Server-Sent Events stream. */
export interface StreamEvent {
  id?: string;
  event: string;
  data: string;
}

/** An answer that is not an event stream: its status and body (the platform's error, as a rule). */
export class StreamRefused extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    readonly retryAfter?: string,
  ) {
    super(`HTTP ${status}: ${body.slice(0, 500)}`);
    this.name = 'StreamRefused';
  }
}

/**
 * Reads an event stream of the api (docs/EVENTS.md) over fetch, which unlike EventSource can send
 * credentials. Ends when the server closes the stream or `signal` aborts; an answer that is not a
 * stream is thrown as StreamRefused.
 */
export async function* readEvents(url: string, init: { headers?: Record<string, string>; signal?: AbortSignal; onOpen?: () => void } = {}): AsyncGenerator<StreamEvent> {
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...init.headers }, signal: init.signal });
  if (!response.ok || !response.body || !(response.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    throw new StreamRefused(response.status, await response.text().catch(() => ''), response.headers.get('retry-after') ?? undefined);
  }
  init.onOpen?.();
  const queue: StreamEvent[] = [];
  const parser = createParser({
    onEvent: (message: EventSourceMessage) => queue.push({ ...(message.id !== undefined ? { id: message.id } : {}), event: message.event ?? 'message', data: message.data }),
  });
  const decoder = new TextDecoder();
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
      while (queue.length > 0) yield queue.shift()!;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}
