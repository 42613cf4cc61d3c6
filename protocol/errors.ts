/**
 * The one registry of error codes. Every error that leaves a process carries one of these codes;
 * the HTTP status and whether a retry can help are decided here, not at the throw site.
 */
export const ERROR_CODES = {
  BAD_REQUEST: { status: 400, retryable: false, description: 'The request is malformed or a field is invalid.' },
  INVALID_JSON: { status: 400, retryable: false, description: 'The body is not valid JSON.' },
  INVALID_NAME: { status: 400, retryable: false, description: 'A runtime or function name does not match ^[a-z0-9][a-z0-9_-]{0,62}$.' },
  INVALID_ARCHIVE: { status: 400, retryable: false, description: 'The uploaded package is not a safe .tar.gz or .zip archive.' },
  INVALID_LIMITS: { status: 400, retryable: false, description: 'A function limit (timeout, memory, cpus, concurrency, network) is outside what the platform allows.' },
  UNAUTHORIZED: { status: 401, retryable: false, description: 'Credentials are missing or wrong.' },
  FORBIDDEN: { status: 403, retryable: false, description: 'The sender may not do this: its role does not allow the operation.' },
  RATE_LIMITED: { status: 429, retryable: true, description: 'This user sent too many requests; retry after the Retry-After seconds.' },
  AUTH_LOCKED: { status: 429, retryable: true, description: 'Too many wrong credentials from this address or for this user name; retry after the Retry-After seconds.' },
  AUTH_BUSY: { status: 503, retryable: true, description: 'Too many credentials wait to be checked; retry after the Retry-After seconds.' },
  CROSS_SITE_REQUEST: { status: 403, retryable: false, description: 'A request that changes state came from a page of another site (its Origin or Sec-Fetch-Site says so).' },
  HOST_NOT_ALLOWED: { status: 421, retryable: false, description: 'The Host header names a host the api does not serve (FAAS_ALLOWED_HOSTS).' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, retryable: false, description: 'The body is not of the type the route takes (application/json for JSON routes).' },
  PAYLOAD_TOO_LARGE: { status: 413, retryable: false, description: 'The body or the upload exceeds a size limit.' },
  NOT_FOUND: { status: 404, retryable: false, description: 'No such route.' },
  RUNTIME_NOT_FOUND: { status: 404, retryable: false, description: 'No runtime with that name is registered.' },
  FUNCTION_NOT_FOUND: { status: 404, retryable: false, description: 'No function with that name is registered.' },
  CALL_NOT_FOUND: { status: 404, retryable: false, description: 'No call with that number exists.' },
  SECRET_NOT_FOUND: { status: 404, retryable: false, description: 'No secret with that name exists.' },
  SECRET_IN_USE: { status: 409, retryable: false, description: 'Registered functions use the secret; register them without it first.' },
  TRIGGER_NOT_FOUND: { status: 404, retryable: false, description: 'No trigger with that name exists.' },
  OUTPUTS_NOT_FOUND: { status: 404, retryable: false, description: 'The call kept no outputs (none written, not asked for, or past the size limit).' },
  PACKAGE_NOT_FOUND: { status: 404, retryable: false, description: 'No package with that hash is stored.' },
  RUNTIME_IN_USE: { status: 409, retryable: false, description: 'The runtime is used by registered functions; remove them first.' },
  IDEMPOTENCY_CONFLICT: { status: 409, retryable: false, description: 'The Idempotency-Key was used for a call of another function or with other params.' },
  CALLBACK_NOT_ALLOWED: { status: 400, retryable: false, description: 'The callback URL is not http(s), or its host is not one the operator allows (FAAS_CALLBACK_ALLOW).' },
  FUNCTION_FAILED: { status: 502, retryable: false, description: "The function's call behind an HTTP endpoint ended ERROR; its number is in X-Call-Number." },
  BAD_FUNCTION_RESPONSE: { status: 502, retryable: false, description: 'The function behind an HTTP endpoint answered a response the platform cannot send (a bad status, header or body).' },
  FUNCTION_TIMEOUT: { status: 504, retryable: true, description: 'The call behind an HTTP endpoint ran past its timeout, or past the wait bound (it may still end: X-Call-Number).' },
  QUEUE_FULL: { status: 429, retryable: true, description: 'Too many calls wait; retry after the Retry-After seconds.' },
  TOO_MANY_SUBSCRIBERS: { status: 503, retryable: true, description: 'As many event streams are open as the api allows (FAAS_EVENTS_MAX_SUBSCRIBERS); retry after the Retry-After seconds.' },
  DB_UNAVAILABLE: { status: 503, retryable: true, description: 'The database service does not answer.' },
  STORE_UNAVAILABLE: { status: 503, retryable: true, description: 'The database service refuses writes (its disk is full or failing); nothing was written.' },
  REQUEST_EXPIRED: { status: 503, retryable: true, description: 'A request reached the database service after its sender had stopped waiting; it was not applied.' },
  DOCKER_UNAVAILABLE: { status: 503, retryable: true, description: 'The Docker engine does not answer.' },
  REQUEST_TIMEOUT: { status: 504, retryable: true, description: 'A peer did not answer in time.' },
  PROTOCOL_ERROR: { status: 400, retryable: false, description: 'A message does not follow the platform protocol.' },
  VERSION_MISMATCH: { status: 400, retryable: false, description: 'A message carries another protocol version.' },
  REPLY_TOO_LARGE: { status: 500, retryable: false, description: 'An answer of the platform would exceed the 16 MiB frame between its processes; ask for less (a smaller page).' },
  INTERNAL: { status: 500, retryable: false, description: 'An unexpected error inside the platform.' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The plain form in which errors cross process boundaries. */
export interface ErrorShape {
  code: ErrorCode;
  message: string;
  retryable?: boolean;
  data?: unknown;
}

export class PlatformError extends Error {
  readonly code: ErrorCode;
  readonly data?: unknown;

  constructor(code: ErrorCode, message: string, data?: unknown) {
    super(message);
    this.name = 'PlatformError';
    this.code = code;
    this.data = data;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  get retryable(): boolean {
    return ERROR_CODES[this.code].retryable;
  }

  toJSON(): ErrorShape {
    const shape: ErrorShape = { code: this.code, message: this.message, retryable: this.retryable };
    if (this.data !== undefined) shape.data = this.data;
    return shape;
  }

  /** Rebuilds an error that arrived from another process; unknown codes become INTERNAL. */
  static fromJSON(shape: Partial<ErrorShape> | undefined): PlatformError {
    const code = shape?.code && shape.code in ERROR_CODES ? shape.code : 'INTERNAL';
    return new PlatformError(code, typeof shape?.message === 'string' ? shape.message : 'unknown error', shape?.data);
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && value in ERROR_CODES;
}

/** Any thrown value as a PlatformError, never leaking a stack or a file path. */
export function asPlatformError(err: unknown): PlatformError {
  if (err instanceof PlatformError) return err;
  return new PlatformError('INTERNAL', 'internal error');
}
