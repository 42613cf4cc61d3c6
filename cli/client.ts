import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Call, FunctionRecord, Runtime } from '../protocol/types';

/** An error answered by the platform ({error: {code, message}}) or the platform not answering at all. */
export class ClientError extends Error {
  constructor(
    message: string,
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

/** The typed HTTP client of the platform that every command uses. */
export class FaasClient {
  constructor(
    readonly baseUrl: string,
    /** `user:password` for a platform that asks for them. */
    private readonly credentials?: string,
  ) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.credentials ? { ...extra, authorization: `Basic ${Buffer.from(this.credentials).toString('base64')}` } : extra;
  }

  private async request<T>(method: string, route: string, body?: unknown, init: RequestInit = {}): Promise<{ status: number; data: T }> {
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${route}`, {
        method,
        ...init,
        headers: this.headers(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (err) {
      throw new ClientError(`cannot reach the platform at ${this.baseUrl}: is it running? \`faas up\` starts one`, null, 'UNREACHABLE');
    }
    const text = await response.text();
    let data: unknown;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      data = text;
    }
    if (!response.ok && response.status !== 503) {
      const error = (data as { error?: { code?: string; message?: string } })?.error;
      throw new ClientError(error?.message ?? `HTTP ${response.status}`, response.status, error?.code ?? 'HTTP_ERROR');
    }
    return { status: response.status, data: data as T };
  }

  async health(): Promise<{ status: number; data: unknown }> {
    return this.request('GET', '/health');
  }

  async registerRuntime(runtime: Partial<Runtime>): Promise<Runtime> {
    return (await this.request<Runtime>('POST', '/registerRuntime', runtime)).data;
  }

  async registerFunction(runtime: string, name: string, archive: string): Promise<FunctionRecord> {
    const form = new FormData();
    form.append('module', new Blob([await readFile(archive)]), path.basename(archive));
    return (await this.request<FunctionRecord>('POST', `/registerFunction/${encodeURIComponent(runtime)}/${encodeURIComponent(name)}`, undefined, { body: form })).data;
  }

  async invoke(funcName: string, params: unknown, wait: boolean): Promise<{ status: number; call: Call }> {
    const { status, data } = await this.request<Call>('POST', `/invokeFunction${wait ? '?wait=true' : ''}`, { funcName, params });
    return { status, call: data };
  }

  async getCall(callNum: number): Promise<Call> {
    return (await this.request<Call>('GET', `/call/${callNum}`)).data;
  }

  async listCalls(): Promise<Record<string, Call>> {
    return (await this.request<Record<string, Call>>('GET', '/calls')).data;
  }

  async listRuntimes(): Promise<string[]> {
    return (await this.request<string[]>('GET', '/runtimes')).data;
  }

  async listFunctions(): Promise<string[]> {
    return (await this.request<string[]>('GET', '/functions')).data;
  }
}
