/**
 * The api, as the page calls it: same origin, HTTP Basic credentials when the platform has users
 * (kept for the tab's life in sessionStorage), errors as the api's own message.
 */

const STORE_KEY = 'faas.credentials';

let credentials: string | null = readStored();
const unauthorizedListeners = new Set<() => void>();

function readStored(): string | null {
  try {
    return sessionStorage.getItem(STORE_KEY);
  } catch {
    return null;
  }
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** base64 of the UTF-8 bytes of user:password, as RFC 7617 asks. */
export function encodeBasic(user: string, password: string): string {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

export function authHeaders(): Record<string, string> {
  return credentials ? { authorization: `Basic ${credentials}` } : {};
}

export function currentCredentials(): string | null {
  return credentials;
}

export function hasCredentials(): boolean {
  return credentials !== null;
}

export function setCredentials(value: string | null): void {
  credentials = value;
  try {
    if (value === null) sessionStorage.removeItem(STORE_KEY);
    else sessionStorage.setItem(STORE_KEY, value);
  } catch {
    /* private mode: kept in memory only */
  }
}

export function onUnauthorized(listener: () => void): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

/** The api's `{error: {code, message}}`, or a line that says what came instead. */
export async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (body.error && typeof body.error.message === 'string') {
      return new ApiError(response.status, String(body.error.code ?? 'ERROR'), body.error.message);
    }
  } catch {
    /* not JSON */
  }
  return new ApiError(response.status, 'HTTP', `the api answered ${response.status} ${response.statusText}`.trim());
}

/**
 * With the credentials the page holds; or, without telling the listeners of a 401, with
 * `credentialsToTry` (the login form's; null for none).
 * `credentials: 'omit'`: the Authorization header is the page's own, and a browser never opens its
 * own password prompt for an answer 401 to such a request.
 */
export async function rawFetch(path: string, init: RequestInit = {}, credentialsToTry?: string | null): Promise<Response> {
  const headers = credentialsToTry === undefined ? authHeaders() : credentialsToTry === null ? {} : { authorization: `Basic ${credentialsToTry}` };
  let response: Response;
  try {
    response = await fetch(path, { ...init, credentials: 'omit', headers: { ...headers, ...(init.headers as Record<string, string> | undefined) } });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'UNREACHABLE', 'the api cannot be reached: is the platform running?');
  }
  // The credentials the page holds no longer open the api (or it now has users): back to the login form.
  if (response.status === 401 && credentialsToTry === undefined) for (const listener of unauthorizedListeners) listener();
  return response;
}

export async function api<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const init: RequestInit = { method, ...(signal ? { signal } : {}) };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'content-type': 'application/json' };
  }
  const response = await rawFetch(path, init);
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

export function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  return err instanceof Error ? err.message : String(err);
}

/** Saves a response body as a file, through a link the page clicks (the download needs the credentials). */
export async function download(path: string, fallbackName: string): Promise<void> {
  const response = await rawFetch(path);
  if (!response.ok) throw await errorOf(response);
  const disposition = response.headers.get('content-disposition') ?? '';
  const name = /filename="([^"]+)"/.exec(disposition)?.[1] ?? fallbackName;
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
