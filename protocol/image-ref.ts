import { z } from 'zod';

/**
 * Docker image references, checked against the grammar of distribution/reference (regexp.go), the
 * one dockerd itself parses with:
 *
 *   reference        := name [ ":" tag ] [ "@" digest ]
 *   name             := [ domain "/" ] path-component [ "/" path-component ]*
 *   domain           := host [ ":" port ]
 *   host             := domain-component [ "." domain-component ]* | "[" IPv6 "]"
 *   domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
 *   path-component   := [a-z0-9]+ ( separator [a-z0-9]+ )*
 *   separator        := [._] | "__" | "-"+
 *   tag              := [\w][\w.-]{0,127}
 *
 * An image name goes into the paths of Docker API requests (/images/NAME/json): a name outside the
 * grammar (`..`, `?`, `#`, `%`, spaces) would change which request is made. The digest is narrower
 * than the grammar's: the algorithms dockerd accepts, in lower-case hex of their length.
 */

const alphanumeric = '[a-z0-9]+';
const separator = '(?:[._]|__|-+)';
const pathComponent = `${alphanumeric}(?:${separator}${alphanumeric})*`;
const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const ipv6 = '\\[[a-fA-F0-9:]+\\]';
const host = `(?:${domainComponent}(?:\\.${domainComponent})*|${ipv6})`;
const domain = `${host}(?::[0-9]+)?`;
const tag = '[\\w][\\w.-]{0,127}';
const digest = 'sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128}';

const REFERENCE = new RegExp(`^(?:(${domain})/)?(${pathComponent}(?:/${pathComponent})*)(?::(${tag}))?(?:@(${digest}))?$`);

/** Docker caps a name at 255 characters; the platform caps the whole reference there. */
export const MAX_IMAGE_REF_LENGTH = 255;

export interface ImageRef {
  /** Registry host and port, when the name has one. */
  domain?: string;
  /** The repository path, e.g. "library/python". */
  path: string;
  tag?: string;
  digest?: string;
}

export type ImageRefResult = { ok: true; ref: ImageRef } | { ok: false; error: string };

/** Characters that may appear anywhere in a reference; the first other one is named in the error. */
const ALLOWED = /^[A-Za-z0-9._:/@[\]-]*$/;

function describe(char: string): string {
  const code = char.codePointAt(0) ?? 0;
  if (code < 0x20 || code === 0x7f) return `control character U+${code.toString(16).padStart(4, '0').toUpperCase()}`;
  if (char === ' ') return 'a space';
  if (/\s/.test(char)) return 'white space';
  return `"${char}"`;
}

/** The reason a string that fails the grammar fails it, as precisely as can be said. */
function whyInvalid(image: string): string {
  const bad = [...image].find((c) => !ALLOWED.test(c));
  if (bad !== undefined) return `it contains ${describe(bad)}`;
  if (image.includes('..')) return 'it contains ".."';
  if (image.includes('//') || image.startsWith('/') || image.endsWith('/')) return 'a path component is empty';
  const at = image.indexOf('@');
  if (at >= 0 && !new RegExp(`^(?:${digest})$`).test(image.slice(at + 1))) return 'the digest must be sha256:<64 lower-case hex digits> (or sha384, sha512)';
  const name = at >= 0 ? image.slice(0, at) : image;
  const lastSlash = name.lastIndexOf('/');
  const colon = name.indexOf(':', lastSlash + 1);
  if (colon >= 0 && !new RegExp(`^${tag}$`).test(name.slice(colon + 1))) return 'the tag must be letters, digits, _ . - (at most 128, not starting with . or -)';
  const repo = colon >= 0 ? name.slice(0, colon) : name;
  const parts = repo.split('/');
  if (parts.includes('')) return 'a path component is empty';
  const hostLike = parts.length > 1 && /[.:A-Z[]/.test(parts[0]!);
  const path = hostLike || parts[0] === 'localhost' ? parts.slice(1) : parts;
  if (path.some((p) => /[A-Z]/.test(p))) return 'the repository path must be lower case (upper case is allowed only in the registry host)';
  if (hostLike && !new RegExp(`^(?:${domain}|${pathComponent})$`).test(parts[0]!)) return 'the registry host must be a host name, an IPv4 address or an IPv6 address in brackets, with an optional numeric port';
  return 'path components are lower-case letters and digits separated by one ".", one or two "_" or dashes';
}

/** Parses an image reference, or says why it is not one. */
export function parseImageRef(image: unknown): ImageRefResult {
  if (typeof image !== 'string' || image.length === 0) return { ok: false, error: 'an image reference is required' };
  if (image.length > MAX_IMAGE_REF_LENGTH) return { ok: false, error: `it is ${image.length} characters long, past the ${MAX_IMAGE_REF_LENGTH} allowed` };
  const match = REFERENCE.exec(image);
  if (!match) return { ok: false, error: whyInvalid(image) };
  const [, first, rest, tagPart, digestPart] = match;
  // As dockerd reads it: a first component is a registry only when it looks like a host ("." or
  // ":" in it, upper case, brackets, or localhost); otherwise it is part of the path (library/python).
  const isDomain = first !== undefined && (/[.:A-Z[]/.test(first) || first === 'localhost');
  const path = first !== undefined && !isDomain ? `${first}/${rest!}` : rest!;
  return {
    ok: true,
    ref: { path, ...(isDomain ? { domain: first } : {}), ...(tagPart ? { tag: tagPart } : {}), ...(digestPart ? { digest: digestPart } : {}) },
  };
}

export function isValidImageRef(image: unknown): image is string {
  return parseImageRef(image).ok;
}

/** The message of a refused image, the same wherever it is refused. */
export function imageRefError(image: unknown, error: string): string {
  const shown = typeof image === 'string' ? JSON.stringify(image.length > 80 ? `${image.slice(0, 80)}…` : image) : String(image);
  return `${shown} is not a valid Docker image reference ([registry[:port]/]path[:tag][@sha256:digest]): ${error}`;
}

/** Thrown where an invalid image name would otherwise reach the Docker engine. */
export class InvalidImageRefError extends Error {
  constructor(image: unknown, reason: string) {
    super(imageRefError(image, reason));
    this.name = 'InvalidImageRefError';
  }
}

/** Throws InvalidImageRefError unless `image` is a reference. */
export function assertImageRef(image: unknown): asserts image is string {
  const parsed = parseImageRef(image);
  if (!parsed.ok) throw new InvalidImageRefError(image, parsed.error);
}

/** A zod refinement: the string is an image reference, or the issue says why not. */
export function checkImageRef(image: string, ctx: z.RefinementCtx): void {
  // An empty string is the schema's own `min(1)` issue, said once.
  if (image.length === 0) return;
  const parsed = parseImageRef(image);
  if (!parsed.ok) ctx.addIssue({ code: z.ZodIssueCode.custom, message: imageRefError(image, parsed.error) });
}

/** A zod string that is an image reference. */
export const imageRefSchema = z.string().min(1, 'an image reference is required').superRefine(checkImageRef);
