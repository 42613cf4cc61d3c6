import { useEffect, useState } from 'preact/hooks';
import { ApiError } from './api';
import { readStream } from './sse';
import type { PlatformEvent } from './types';

/**
 * The platform's live events (GET /v1/events, docs/EVENTS.md), one stream for the whole page. It
 * reconnects with Last-Event-ID after a cut; an event `reset` tells the pages to reload what they show.
 */

export type LiveState = 'connecting' | 'live' | 'offline';

type Listener = (event: PlatformEvent) => void;
const listeners = new Set<Listener>();
const stateListeners = new Set<(state: LiveState, why: string) => void>();
let state: LiveState = 'connecting';
let why = '';
let controller: AbortController | null = null;
let lastId: string | undefined;

function setState(next: LiveState, reason = ''): void {
  state = next;
  why = reason;
  for (const listener of stateListeners) listener(state, why);
}

function dispatch(event: PlatformEvent): void {
  for (const listener of listeners) {
    try {
      listener(event);
    } catch (err) {
      console.error('event listener failed', err);
    }
  }
}

export function startEvents(): void {
  if (controller) return;
  const current = new AbortController();
  controller = current;
  void (async () => {
    let delay = 1000;
    while (!current.signal.aborted) {
      setState('connecting');
      try {
        await readStream(
          '/v1/events',
          (message) => {
            if (message.id) lastId = message.id;
            if (state !== 'live') setState('live');
            let data: Record<string, unknown> = {};
            try {
              const parsed = JSON.parse(message.data) as unknown;
              if (parsed && typeof parsed === 'object') data = parsed as Record<string, unknown>;
            } catch {
              return;
            }
            dispatch({ id: message.id, type: message.event ?? 'message', data });
            delay = 1000;
          },
          current.signal,
          lastId,
          () => setState('live'),
        );
        // The server closed the stream: reconnect and resume.
        setState('connecting', 'the stream ended');
      } catch (err) {
        if (current.signal.aborted) return;
        const error = err as ApiError & { retryAfter?: number };
        setState('offline', error instanceof ApiError ? error.message : 'the event stream was cut');
        // Not served by this api (404): try now and then; refused for now: as the api asks.
        if (error instanceof ApiError && error.status === 401) return;
        delay = error.retryAfter ? error.retryAfter * 1000 : error instanceof ApiError && error.status === 404 ? 30_000 : Math.min(delay * 2, 15_000);
      }
      // Meanwhile the pages refresh from the ordinary routes (usePollWhileOffline).
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  })();
}

export function stopEvents(): void {
  controller?.abort();
  controller = null;
  lastId = undefined;
  setState('connecting');
}

/** Calls `listener` for each event (and each `reset`) while the component is mounted. */
export function useEvents(listener: Listener, deps: unknown[] = []): void {
  useEffect(() => {
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
}

export function useLiveState(): [LiveState, string] {
  const [value, setValue] = useState<[LiveState, string]>([state, why]);
  useEffect(() => {
    const listener = (s: LiveState, w: string) => setValue([s, w]);
    stateListeners.add(listener);
    listener(state, why);
    return () => {
      stateListeners.delete(listener);
    };
  }, []);
  return value;
}

/**
 * Runs `refresh` every `ms` while the live stream is not connected (a fallback, so that a page still
 * moves when the api refuses one more subscriber), and never while it is.
 */
export function usePollWhileOffline(refresh: () => void, ms = 3000): void {
  const [live] = useLiveState();
  useEffect(() => {
    if (live === 'live') return;
    const timer = setInterval(refresh, ms);
    return () => clearInterval(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [live]);
}
