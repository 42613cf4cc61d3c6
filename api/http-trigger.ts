import { validateHeaderName, validateHeaderValue } from 'node:http';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { PlatformError } from '../protocol/errors';
import type { Call, FunctionRecord } from '../protocol/types';
import type { Platform } from './platform';

/**
 * Functions as HTTP endpoints: any method on /function/:name and /function/:name/<path> runs the
 * function with the request as its params, and the answer is the function's, not a CALL object.
 * The call is recorded like any other, with `trigger: "http"`, and its number is in X-Call-Number.
 */

/** The request as the function receives it (its params). */
export interface HttpRequestParams {
  method: string;
  /** The path below /function/<name>: `/` or `/orders/7`. */
  path: string;
  /** The query string's fields; a repeated one is a list. */
  query: Record<string, string | string[]>;
  /** Header names in lower case; Authorization is left out unless the function is public. */
  headers: Record<string, string>;
  /** The body as text, or base64 when it is not text (isBase64Encoded). Empty without a body. */
  body: string;
  isBase64Encoded: boolean;
}

/** The response a function may answer; any other value is sent as JSON with 200. */
export interface HttpResponseValue {
  statusCode: number;
  headers?: Record<string, string | number | string[]>;
  body?: unknown;
  isBase64Encoded?: boolean;
}

/** Where functions answer: /function/<name> and anything below it. */
export const HTTP_TRIGGER_PATHS = ['/function/:name', '/function/:name/*path'];

export interface HttpTriggerOptions {
  maxBodyBytes: number;
  /** Run, in order, for an endpoint that is not public: the cross-site guard, authentication, the rate limit. */
  guards: RequestHandler[];
  /** Run for a public endpoint: the rate limit. */
  publicGuards?: RequestHandler[];
  /** Whether a Basic user name is one of the platform's: such credentials never reach a function. */
  isPlatformUser?: (name: string) => boolean;
}

/** Headers the platform owns on the way out: the connection's own, and the length it computes. */
const RESERVED_RESPONSE_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade', 'trailer', 'te', 'proxy-connection', 'x-call-number']);
/** Headers never passed to a function: the platform's credentials, and the connection's own. */
const HIDDEN_REQUEST_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'te', 'trailer']);
/** A function's page is an opaque origin: its scripts cannot use the api with the visitor's credentials. */
const SANDBOX_POLICY = 'sandbox allow-scripts allow-forms allow-popups allow-downloads allow-modals';

export function httpTriggerHandler(platform: Platform, options: HttpTriggerOptions): RequestHandler {
  const readBody = express.raw({ type: () => true, limit: options.maxBodyBytes });
  const guarded = (guards: RequestHandler[], req: Request, res: Response, then: () => void, next: NextFunction) => {
    let at = 0;
    const step = (err?: unknown) => {
      if (err) return next(err);
      const guard = guards[at++];
      if (!guard) return then();
      guard(req, res, step);
    };
    step();
  };
  const credentials = (header: string | undefined) => isPlatformCredential(header, options.isPlatformUser);

  return (req: Request, res: Response, next: NextFunction) => {
    const name = String(req.params.name ?? '');
    const serve = (fn: FunctionRecord | null) => {
      if (!fn) return next(new PlatformError('FUNCTION_NOT_FOUND', `no function named "${name.slice(0, 64)}"`));
      readBody(req, res, (err?: unknown) => {
        if (err) return next(bodyError(err, options.maxBodyBytes));
        run(platform, fn, req, res, credentials).catch(next);
      });
    };
    // A name no function has is looked up only past the guards: callers without credentials cost no
    // database request, and are not told which functions exist.
    if (!platform.hasFunction(name)) {
      return guarded(options.guards, req, res, () => void platform.findFunction(name).then(serve).catch(next), next);
    }
    platform
      .findFunction(name)
      .then((fn) => {
        if (fn?.public) guarded(options.publicGuards ?? [], req, res, () => serve(fn), next);
        else guarded(options.guards, req, res, () => serve(fn), next);
      })
      .catch(next);
  };
}

function bodyError(err: unknown, limit: number): PlatformError {
  const type = (err as { type?: string }).type;
  if (type === 'entity.too.large') return new PlatformError('PAYLOAD_TOO_LARGE', `the body is larger than ${limit} bytes (FAAS_MAX_BODY_BYTES)`);
  return new PlatformError('BAD_REQUEST', `the body could not be read: ${err instanceof Error ? err.message.slice(0, 200) : 'unreadable'}`);
}

/** Basic credentials of one of the platform's users (the password is not checked: the name is enough to withhold them). */
function isPlatformCredential(header: string | undefined, isPlatformUser?: (name: string) => boolean): boolean {
  const match = /^\s*basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!match) return false;
  if (!isPlatformUser) return true;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return isPlatformUser(colon < 0 ? decoded : decoded.slice(0, colon));
}

async function run(platform: Platform, fn: FunctionRecord, req: Request, res: Response, isCredential: (header: string | undefined) => boolean): Promise<void> {
  const params = requestParams(req, Boolean(fn.public) && !isCredential(req.get('authorization')));
  const started = await platform.invoke(fn.functionName, params, true, undefined, { trigger: 'http' });
  res.setHeader('X-Call-Number', String(started.call.callNum));
  const final = await started.done;
  if (!final) {
    throw new PlatformError('FUNCTION_TIMEOUT', `call ${started.call.callNum} is still running after the wait bound (FAAS_WAIT_TIMEOUT_MS); GET /v1/calls/${started.call.callNum} tells its end`);
  }
  sendOutcome(res, final, Boolean(fn.public));
}

/**
 * The request as params: method, path below the function, query, headers and body. `passAuthorization`:
 * the Authorization header is the function's own (a public function, and not the platform's credentials).
 */
export function requestParams(req: Request, passAuthorization: boolean): HttpRequestParams {
  const rest = (req.params as Record<string, unknown>).path;
  const path = `/${Array.isArray(rest) ? rest.join('/') : ''}`;
  const url = new URL(req.originalUrl, 'http://function.invalid');
  const query: Record<string, string | string[]> = {};
  for (const [key, value] of url.searchParams) {
    const had = query[key];
    query[key] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
  }
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(req.headers)) {
    if (value === undefined || HIDDEN_REQUEST_HEADERS.has(key)) continue;
    // The platform's credentials are not the function's to see; a public function's own scheme is.
    if (key === 'authorization' && !passAuthorization) continue;
    headers[key] = Array.isArray(value) ? value.join(', ') : value;
  }
  const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  const text = textOf(raw, req.get('content-type'));
  return { method: req.method, path, query, headers, body: text ?? raw.toString('base64'), isBase64Encoded: text === undefined };
}

/** The body as text when it is declared (or left) textual and is UTF-8; undefined: send it as base64. */
function textOf(raw: Buffer, contentType: string | undefined): string | undefined {
  if (raw.length === 0) return '';
  const type = contentType?.split(';', 1)[0]!.trim().toLowerCase();
  const textual =
    type === undefined ||
    type.startsWith('text/') ||
    /^application\/(?:json|xml|javascript|x-www-form-urlencoded|graphql|yaml|x-yaml|x-ndjson)$/.test(type) ||
    /\+(?:json|xml)$/.test(type);
  if (!textual) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    return undefined;
  }
}

/** The function's answer as the HTTP response; an error, a timeout or a bad answer as the platform's. */
export function sendOutcome(res: Response, call: Call, isPublic: boolean): void {
  if (call.status === 'TIMEOUT') throw new PlatformError('FUNCTION_TIMEOUT', `call ${call.callNum} ran past its timeout`);
  if (call.status !== 'DONE') {
    // A public endpoint's caller is not told the function's traceback; the call keeps it.
    const detail = isPublic ? '' : `: ${(call.error ?? call.reason ?? 'failed').split('\n', 1)[0]!.slice(0, 500)}`;
    throw new PlatformError('FUNCTION_FAILED', `call ${call.callNum} failed${detail}`);
  }
  const response = responseOf(call.result);
  const answer = response.kind === 'value' ? undefined : checkedResponse(response.value, call.callNum);
  res.removeHeader('Content-Security-Policy');
  res.removeHeader('Cross-Origin-Resource-Policy');
  res.removeHeader('Cross-Origin-Opener-Policy');
  res.removeHeader('Origin-Agent-Cluster');
  res.setHeader('Content-Security-Policy', SANDBOX_POLICY);
  if (!answer) {
    const { text, json } = response as Extract<Answer, { kind: 'value' }>;
    res.status(200).type(json ? 'application/json' : 'text/plain; charset=utf-8').send(text);
    return;
  }
  res.status(answer.status);
  for (const [name, values] of answer.headers) {
    // The sandbox stays: a policy of the function's own is enforced beside it.
    if (name.toLowerCase() === 'content-security-policy') res.appendHeader('Content-Security-Policy', values);
    else res.setHeader(name, values.length === 1 ? values[0]! : values);
  }
  if (!res.getHeader('content-type') && answer.defaultType) res.setHeader('Content-Type', answer.defaultType);
  res.end(answer.bytes);
}

/** A function's {statusCode, headers, body} checked whole before anything of it is sent. */
function checkedResponse(value: HttpResponseValue, callNum: number): { status: number; headers: Array<[string, string[]]>; bytes: Buffer; defaultType?: string } {
  const bad = (why: string) => new PlatformError('BAD_FUNCTION_RESPONSE', `call ${callNum} answered ${why}`);
  if (!Number.isInteger(value.statusCode) || value.statusCode < 200 || value.statusCode > 599) throw bad(`statusCode ${JSON.stringify(value.statusCode)}: an integer from 200 to 599 is sent`);
  if (value.headers !== undefined && (typeof value.headers !== 'object' || value.headers === null || Array.isArray(value.headers))) throw bad('headers that are not an object');
  const headers: Array<[string, string[]]> = [];
  for (const [name, raw] of Object.entries(value.headers ?? {})) {
    const values = (Array.isArray(raw) ? raw : [raw]).map(String);
    try {
      validateHeaderName(name);
      for (const v of values) validateHeaderValue(name, v);
    } catch {
      throw bad(`a header that cannot be sent: ${JSON.stringify(name.slice(0, 64))}`);
    }
    if (RESERVED_RESPONSE_HEADERS.has(name.toLowerCase())) throw bad(`the header ${JSON.stringify(name.slice(0, 64))}, which the platform sets`);
    headers.push([name, values]);
  }
  return { status: value.statusCode, headers, ...bodyOf(value, bad) };
}

type Answer = { kind: 'value'; text: string; json: boolean } | { kind: 'response'; value: HttpResponseValue };

/** A result of {statusCode, ...} is a response; any other JSON value is sent as it is; text (process mode) as text. */
function responseOf(result: string): Answer {
  let parsed: unknown;
  try {
    parsed = JSON.parse(result);
  } catch {
    return { kind: 'value', text: result, json: false };
  }
  if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) && 'statusCode' in parsed) {
    return { kind: 'response', value: parsed as HttpResponseValue };
  }
  return { kind: 'value', text: result, json: true };
}

function bodyOf(value: HttpResponseValue, bad: (why: string) => PlatformError): { bytes: Buffer; defaultType?: string } {
  if (value.body === undefined || value.body === null) return { bytes: Buffer.alloc(0) };
  if (value.isBase64Encoded) {
    if (typeof value.body !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value.body.replace(/\s/g, ''))) throw bad('a base64 body that is not base64');
    return { bytes: Buffer.from(value.body, 'base64'), defaultType: 'application/octet-stream' };
  }
  if (typeof value.body === 'string') return { bytes: Buffer.from(value.body, 'utf8'), defaultType: 'text/plain; charset=utf-8' };
  return { bytes: Buffer.from(JSON.stringify(value.body), 'utf8'), defaultType: 'application/json' };
}
