import { isIP } from 'node:net';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { PlatformError } from '../protocol/errors';

/**
 * What a browser could be made to send on the operator's behalf is refused before any route runs:
 * requests to a host name the api does not serve (DNS rebinding: a page of evil.example whose name
 * now points at 127.0.0.1 sends `Host: evil.example`), state-changing requests from a page of another
 * site (CSRF), and JSON routes fed a form or text/plain (the only bodies a cross-site form can send
 * without a CORS preflight).
 */

/** Names every api serves: loopback ones (RFC 6761 reserves `localhost` and its subdomains for it). */
export const LOOPBACK_NAMES: ReadonlySet<string> = new Set(['localhost', 'localhost.localdomain']);

export interface HostPolicy {
  /** `*` in FAAS_ALLOWED_HOSTS: no check. */
  any: boolean;
  /** Exact names, lower case. */
  names: Set<string>;
  /** `*.example.com` entries, kept as `.example.com`. */
  suffixes: string[];
}

/** FAAS_ALLOWED_HOSTS (names, `*.suffix` wildcards, or `*`, comma separated) plus the api's own bind name. */
export function hostPolicy(list: string, bindHost: string): HostPolicy {
  const policy: HostPolicy = { any: false, names: new Set(), suffixes: [] };
  const entries = list.split(',').map((e) => e.trim().toLowerCase().replace(/\.$/, '')).filter(Boolean);
  if (!isIP(bindHost) && bindHost) entries.push(bindHost.toLowerCase());
  for (const entry of entries) {
    if (entry === '*') policy.any = true;
    else if (entry.startsWith('*.')) policy.suffixes.push(entry.slice(1));
    else policy.names.add(entry.replace(/^\[(.*)\]$/, '$1'));
  }
  return policy;
}

/** The host name of a Host header, lower case, without port, brackets or a final dot; undefined when unreadable. */
export function hostName(header: string): string | undefined {
  const value = header.trim().toLowerCase();
  const bracketed = /^\[([0-9a-f:.]+)\](?::\d{1,5})?$/.exec(value);
  if (bracketed) return bracketed[1];
  const plain = /^([a-z0-9._-]{1,253})(?::\d{1,5})?$/.exec(value);
  return plain ? plain[1]!.replace(/\.$/, '') : undefined;
}

/**
 * Whether a request to this host name is served. An IP literal always is: DNS rebinding needs a name
 * of the attacker's (a page's origin and its requests' Host carry the same name), and a browser that
 * sends an address as Host got the page from that address, which is this api.
 */
export function hostAllowed(policy: HostPolicy, name: string): boolean {
  if (policy.any || isIP(name) !== 0) return true;
  if (LOOPBACK_NAMES.has(name) || name.endsWith('.localhost') || policy.names.has(name)) return true;
  return policy.suffixes.some((suffix) => name.endsWith(suffix) && name.length > suffix.length);
}

export function hostGuard(policy: HostPolicy): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    const header = req.headers.host;
    // HTTP/1.0 without Host: no browser sends that.
    if (header === undefined || policy.any) return next();
    const name = hostName(header);
    if (name !== undefined && hostAllowed(policy, name)) return next();
    next(new PlatformError('HOST_NOT_ALLOWED', `this api does not serve the host "${header.slice(0, 100)}": an operator adds it to FAAS_ALLOWED_HOSTS`));
  };
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * State-changing requests from another site are refused: a browser says so in Sec-Fetch-Site, and in
 * an Origin that is not the api's own (the scheme may differ, for a TLS proxy in front). Clients that
 * are not browsers (curl, the CLI, workers) send neither and pass.
 */
export function crossSiteGuard(): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    if (SAFE_METHODS.has(req.method)) return next();
    const site = req.get('sec-fetch-site');
    if (site === 'cross-site' || site === 'same-site') {
      return next(new PlatformError('CROSS_SITE_REQUEST', `a ${req.method} from a page of another site (Sec-Fetch-Site: ${site}) is refused`));
    }
    const origin = req.get('origin');
    if (origin !== undefined && !sameOrigin(origin, req.headers.host)) {
      return next(new PlatformError('CROSS_SITE_REQUEST', `a ${req.method} from a page of ${JSON.stringify(origin.slice(0, 100))} is refused: only the api's own origin may change state`));
    }
    next();
  };
}

/**
 * A function's endpoint runs the function on any method, GET included: a request from a page of another
 * site (an image, a link, a form, a script) is refused whatever its method, so that the visitor's cached
 * credentials cannot run a function that is not public.
 */
export function endpointCrossSiteGuard(): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    const site = req.get('sec-fetch-site');
    if (site === 'cross-site' || site === 'same-site') {
      return next(new PlatformError('CROSS_SITE_REQUEST', `a request from a page of another site (Sec-Fetch-Site: ${site}) may not run a function that is not public`));
    }
    const origin = req.get('origin');
    if (origin !== undefined && !sameOrigin(origin, req.headers.host)) {
      return next(new PlatformError('CROSS_SITE_REQUEST', `a request from a page of ${JSON.stringify(origin.slice(0, 100))} may not run a function that is not public`));
    }
    next();
  };
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    const from = new URL(origin);
    if (from.protocol !== 'http:' && from.protocol !== 'https:') return false;
    return from.host === new URL(`${from.protocol}//${host}`).host && from.origin === origin.toLowerCase().replace(/\/$/, '');
  } catch {
    // "null" (a sandboxed frame, a redirect across sites) and anything unreadable.
    return false;
  }
}

/**
 * The body of a JSON route: `application/json` or a `+json` type only (415 for anything else), and a
 * request without a body and without a Content-Type stands for an empty object, as `curl -X POST` sends.
 */
export function jsonBody(limitBytes: number): RequestHandler {
  const parse = express.json({ limit: limitBytes, type: (req) => isJsonType(req.headers['content-type']) });
  return (req: Request, res: Response, next: NextFunction) => {
    const type = req.get('content-type');
    if (type === undefined && !hasBody(req)) return next();
    if (!isJsonType(type)) {
      return next(new PlatformError('UNSUPPORTED_MEDIA_TYPE', `this route takes a JSON body with Content-Type: application/json, not ${type === undefined ? 'a body without a Content-Type' : JSON.stringify(type.slice(0, 100))}`));
    }
    parse(req, res, next);
  };
}

function isJsonType(header: string | undefined): boolean {
  const type = header?.split(';', 1)[0]!.trim().toLowerCase();
  return type === 'application/json' || (type !== undefined && /^application\/[a-z0-9!#$&^_.-]+\+json$/.test(type));
}

function hasBody(req: Request): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}
