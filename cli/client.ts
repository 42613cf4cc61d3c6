import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Call, CallStatus, FunctionRecord, Runtime } from '../protocol/types';
import type { SecretInfo } from '../protocol/schemas';
import { readEvents, StreamRefused, type StreamEvent } from './sse';
import type { CallLogs, FunctionVersion, Health, Trigger, TriggerInput, Worker } from '../api/schemas';

/** The api's answers, typed by the schemas the api validates and documents them with. */
export type { CallLogs, FunctionVersion };
export type WorkerInfo = Worker;
export type HealthInfo = Health;

/** An error answered by the platform ({error: {code, message}}), or the platform not answering at all. */
export class ClientError extends Error {
  constructor(
    message: string,
    /** The HTTP status; null when no answer came. */
    readonly status: number | null,
    readonly code: string,
  ) {
    super(message);
    this.name = 'ClientError';
  }

  get unreachable(): boolean {
    return this.status === null;
  }
}

export interface CallFilter {
  function?: string;
  status?: CallStatus;
  since?: string;
  until?: string;
  limit?: number;
  cursor?: string;
  /** Only calls whose retries ran out. */
  deadLetter?: boolean;
}

/** The typed HTTP client of the platform: every command talks to the platform through this. */
export class FaasClient {
  constructor(
    readonly baseUrl: string,
    private readonly credentials?: { user: string; password: string },
    /** Applied to every string of every answer: the CLI strips terminal control sequences here unless --raw. */
    private readonly text: (value: string) => string = (value) => value,
  ) {}

  private authorization(): Record<string, string> {
    if (!this.credentials) return {};
    return { authorization: `Basic ${Buffer.from(`${this.credentials.user}:${this.credentials.password}`).toString('base64')}` };
  }

  /** `binary`: a successful answer's body is returned as bytes, not parsed as JSON. */
  private async request<T>(
    method: string,
    route: string,
    init: { json?: unknown; body?: RequestInit['body'] | Readable; headers?: Record<string, string>; accept?: number[]; binary?: boolean } = {},
  ): Promise<{ status: number; data: T }> {
    let response: Response;
    const headers = { ...this.authorization(), ...(init.json !== undefined ? { 'content-type': 'application/json' } : {}), ...init.headers };
    try {
      response = await fetch(`${this.baseUrl}${route}`, {
        method,
        headers,
        ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}),
        ...(init.body !== undefined ? { body: init.body as RequestInit['body'], duplex: 'half' } : {}),
      } as RequestInit);
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new ClientError(`cannot reach the platform at ${this.baseUrl} (${why})`, null, 'UNREACHABLE');
    }
    if (init.binary && response.ok) return { status: response.status, data: Buffer.from(await response.arrayBuffer()) as T };
    const text = await response.text();
    let data: unknown;
    try {
      data = text ? JSON.parse(text, (_key, value: unknown) => (typeof value === 'string' ? this.text(value) : value)) : undefined;
    } catch {
      data = this.text(text);
    }
    if (!response.ok && !init.accept?.includes(response.status)) {
      const error = (data as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new ClientError(error?.message ?? `HTTP ${response.status}`, response.status, error?.code ?? `HTTP_${response.status}`);
    }
    return { status: response.status, data: data as T };
  }

  private async get<T>(route: string): Promise<T> {
    return (await this.request<T>('GET', route)).data;
  }

  /** 200 and 503 both carry the platform's health; only the body says which parts are up. */
  async health(): Promise<HealthInfo> {
    return (await this.request<HealthInfo>('GET', '/health', { accept: [503] })).data;
  }

  async registerRuntime(runtime: Partial<Runtime>): Promise<Runtime> {
    return (await this.request<Runtime>('POST', '/registerRuntime', { json: runtime })).data;
  }

  listRuntimes(): Promise<Runtime[]> {
    return this.get('/v1/runtimes');
  }

  getRuntime(name: string): Promise<Runtime> {
    return this.get(`/v1/runtimes/${encodeURIComponent(name)}`);
  }

  async removeRuntime(name: string): Promise<void> {
    await this.request('DELETE', `/v1/runtimes/${encodeURIComponent(name)}`);
  }

  /**
   * Uploads a package as the seed's multipart form (file field `module`) plus option fields, streamed
   * so that `onProgress` hears how many bytes have gone out.
   */
  async registerFunction(
    runtime: string,
    name: string,
    archive: string,
    fields: Record<string, string> = {},
    onProgress?: (sent: number, total: number) => void,
  ): Promise<FunctionRecord> {
    const boundary = `----faas${randomBytes(12).toString('hex')}`;
    const quote = (s: string) => s.replace(/["\r\n\\]/g, '_');
    const head = Buffer.from(
      Object.entries(fields)
        .map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${quote(k)}"\r\n\r\n${v}\r\n`)
        .join('') +
        `--${boundary}\r\nContent-Disposition: form-data; name="module"; filename="${quote(path.basename(archive))}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    );
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const size = (await stat(archive)).size;
    const total = head.length + size + tail.length;
    let sent = 0;
    async function* body(): AsyncGenerator<Buffer> {
      for (const part of [head, createReadStream(archive), tail]) {
        for await (const chunk of Buffer.isBuffer(part) ? [part] : (part as AsyncIterable<Buffer>)) {
          sent += chunk.length;
          onProgress?.(sent, total);
          yield chunk;
        }
      }
    }
    const { data } = await this.request<FunctionRecord>('POST', `/registerFunction/${encodeURIComponent(runtime)}/${encodeURIComponent(name)}`, {
      body: Readable.from(body()),
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(total) },
    });
    return data;
  }

  listFunctions(): Promise<FunctionRecord[]> {
    return this.get('/v1/functions');
  }

  async putTrigger(trigger: TriggerInput): Promise<Trigger> {
    return (await this.request<Trigger>('POST', '/v1/triggers', { json: trigger })).data;
  }

  async putSecret(name: string, value: string): Promise<SecretInfo> {
    return (await this.request<SecretInfo>('POST', '/v1/secrets', { json: { name, value } })).data;
  }

  listSecrets(): Promise<Array<SecretInfo & { usedBy?: string[] }>> {
    return this.get('/v1/secrets');
  }

  async removeSecret(name: string): Promise<void> {
    await this.request('DELETE', `/v1/secrets/${encodeURIComponent(name)}`);
  }

  listTriggers(): Promise<Trigger[]> {
    return this.get('/v1/triggers');
  }

  async removeTrigger(name: string): Promise<void> {
    await this.request('DELETE', `/v1/triggers/${encodeURIComponent(name)}`);
  }

  getFunction(name: string): Promise<FunctionRecord> {
    return this.get(`/v1/functions/${encodeURIComponent(name)}`);
  }

  async removeFunction(name: string): Promise<void> {
    await this.request('DELETE', `/v1/functions/${encodeURIComponent(name)}`);
  }

  functionVersions(name: string): Promise<FunctionVersion[]> {
    return this.get(`/v1/functions/${encodeURIComponent(name)}/versions`);
  }

  /** Invokes a function; with `wait`, 200 carries the final call and 202 a call still going. */
  async invoke(funcName: string, params: unknown, wait: boolean, extra: { args?: string[]; env?: Record<string, string>; callbackUrl?: string } = {}): Promise<{ status: number; call: Call }> {
    const body = {
      params,
      ...(extra.args?.length ? { args: extra.args } : {}),
      ...(extra.env && Object.keys(extra.env).length ? { env: extra.env } : {}),
      ...(extra.callbackUrl ? { callbackUrl: extra.callbackUrl } : {}),
    };
    const { status, data } = await this.request<Call>('POST', `/v1/functions/${encodeURIComponent(funcName)}/calls${wait ? '?wait=true' : ''}`, { json: body });
    return { status, call: data };
  }

  /** Runs a call again: same function version, params, args and env. */
  async rerun(callNum: number, wait: boolean): Promise<{ status: number; call: Call }> {
    const { status, data } = await this.request<Call>('POST', `/v1/calls/${callNum}/rerun${wait ? '?wait=true' : ''}`);
    return { status, call: data };
  }

  /** The zip of what the call wrote to /out. */
  async outputs(callNum: number): Promise<Buffer> {
    return (await this.request<Buffer>('GET', `/v1/calls/${callNum}/outputs`, { binary: true })).data;
  }

  getCall(callNum: number): Promise<Call> {
    return this.get(`/v1/calls/${callNum}`);
  }

  listCalls(filter: CallFilter = {}): Promise<{ calls: Call[]; next: string | null }> {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(filter)) if (v !== undefined && v !== '') query.set(k, String(v));
    const qs = query.toString();
    return this.get(`/v1/calls${qs ? `?${qs}` : ''}`);
  }

  callLogs(callNum: number): Promise<CallLogs> {
    return this.get(`/v1/calls/${callNum}/logs`);
  }

  workers(): Promise<WorkerInfo[]> {
    return this.get('/v1/workers');
  }

  /**
   * An event stream of the platform (docs/EVENTS.md): `/v1/events…` or a call's followed logs. Each
   * event's data is made safe like every other answer; a refusal is a ClientError.
   */
  async *stream(route: string, init: { signal?: AbortSignal; lastEventId?: string } = {}): AsyncGenerator<StreamEvent> {
    const headers = { ...this.authorization(), ...(init.lastEventId ? { 'last-event-id': init.lastEventId } : {}) };
    let events: AsyncGenerator<StreamEvent>;
    try {
      events = readEvents(`${this.baseUrl}${route}`, { headers, signal: init.signal });
      for await (const event of events) {
        yield { ...event, data: JSON.stringify(JSON.parse(event.data, (_key, value: unknown) => (typeof value === 'string' ? this.text(value) : value))) };
      }
    } catch (err) {
      if (err instanceof StreamRefused) {
        let error: { code?: string; message?: string } | undefined;
        try {
          error = (JSON.parse(err.body) as { error?: { code?: string; message?: string } }).error;
        } catch {
          /* not the platform's error */
        }
        throw new ClientError(error?.message ?? `HTTP ${err.status}`, err.status, error?.code ?? `HTTP_${err.status}`);
      }
      if (init.signal?.aborted) return;
      if ((err as Error).name === 'TypeError') {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        throw new ClientError(`cannot reach the platform at ${this.baseUrl} (${cause?.code ?? cause?.message ?? (err as Error).message})`, null, 'UNREACHABLE');
      }
      throw err;
    }
  }
}
