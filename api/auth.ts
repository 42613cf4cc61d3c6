import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { ConfigError } from '../protocol/config';
import { ipKeyGenerator } from 'express-rate-limit';
import { PlatformError } from '../protocol/errors';
import pLimit from 'p-limit';
import { BoundedSet, FailureWindows } from './login-guard';

/**
 * HTTP Basic authentication against scrypt password hashes, as users of a self-hosted platform
 * configure it (`faas hash-password` makes the hash). A hash is compared in constant time; a
 * verified user:password pair is remembered by its sha256, so that a warm call does not pay the
 * tens of milliseconds scrypt costs on purpose, and so is a recent wrong one, so that a guess
 * repeated costs nothing. Wrong credentials are counted per address and per user name, and past the
 * bound are refused before any hash runs; hashes run one at a time.
 */

const KEY_BYTES = 32;
const SCRYPT: ScryptOptions = { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const HASH_FORMAT = /^scrypt\$([A-Za-z0-9+/]{22,}={0,2})\$([A-Za-z0-9+/]{43}=)$/;
const USER_NAME = /^[A-Za-z0-9._@-]{1,64}$/;
const MAX_REMEMBERED = 1024;
const MAX_REMEMBERED_WRONG = 4096;

interface PasswordHash {
  salt: Buffer;
  key: Buffer;
}

function scrypt(password: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCb(password, salt, KEY_BYTES, SCRYPT, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** The stored form of a password: `scrypt$<salt>$<key>`, base64. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt);
  return `scrypt$${salt.toString('base64')}$${key.toString('base64')}`;
}

/**
 * Users from FAAS_AUTH_USERS: `name:hash` entries separated by commas or new lines (the same
 * format, one per line, in the file FAAS_AUTH_USERS_FILE names).
 */
export function parseUsers(text: string, source: string): Map<string, PasswordHash> {
  const users = new Map<string, PasswordHash>();
  for (const raw of text.split(/[,\n]/)) {
    const entry = raw.trim();
    if (!entry || entry.startsWith('#')) continue;
    const at = entry.indexOf(':');
    const name = entry.slice(0, at);
    const match = HASH_FORMAT.exec(entry.slice(at + 1));
    if (at <= 0 || !USER_NAME.test(name)) throw new ConfigError(`${source}: "${name.slice(0, 64)}" is not a user name (letters, digits, . _ @ -)`);
    if (!match) throw new ConfigError(`${source}: the password of "${name}" is not a scrypt hash; make one with \`faas hash-password\``);
    users.set(name, { salt: Buffer.from(match[1]!, 'base64'), key: Buffer.from(match[2]!, 'base64') });
  }
  return users;
}

export type AuthRefusal = 'locked' | 'busy' | 'known_wrong';

export interface AuthOptions {
  /** Wrong credentials per client address, and per user name, in `windowMs` before 429 AUTH_LOCKED. */
  maxFailures: number;
  windowMs: number;
  /** Password checks waiting for the one that runs; past this, 503 AUTH_BUSY. */
  maxWaiting?: number;
  /** Counted work, for the metrics: each scrypt run, and each answer given without one. */
  onScrypt?: () => void;
  onRefused?: (reason: AuthRefusal) => void;
  now?: () => number;
}

type Outcome = { user: string } | { error: PlatformError };

export class BasicAuth {
  /** sha256 of verified `user\0password` pairs by user name, oldest first. */
  private readonly remembered = new Map<string, string>();
  /** sha256 of recent wrong pairs: a guess repeated costs no scrypt. */
  private readonly wrong = new BoundedSet(MAX_REMEMBERED_WRONG);
  private readonly byAddress: FailureWindows;
  private readonly byName: FailureWindows;
  /**
   * One scrypt at a time, at most maxWaiting waiting: scrypt runs on libuv's thread pool, which file
   * reads share; unbounded, a burst of guesses would hold every thread and stall package downloads.
   */
  private readonly hashing = pLimit(1);
  private readonly maxWaiting: number;
  /** Checked when the user is unknown, so that a wrong name costs as long as a wrong password. */
  private readonly decoy: PasswordHash = { salt: randomBytes(16), key: randomBytes(KEY_BYTES) };

  constructor(
    private readonly users: Map<string, PasswordHash>,
    private readonly options: AuthOptions = { maxFailures: 10, windowMs: 60_000 },
  ) {
    this.byAddress = new FailureWindows(options.maxFailures, options.windowMs, 100_000, options.now);
    this.byName = new FailureWindows(options.maxFailures, options.windowMs, 100_000, options.now);
    this.maxWaiting = options.maxWaiting ?? 16;
  }

  get enabled(): boolean {
    return this.users.size > 0;
  }

  /**
   * Express middleware: the user's name goes to res.locals.user; anything else is 401, 429 while the
   * address or the name is locked out, 503 while too many checks wait. Runs before any rate limit.
   */
  middleware() {
    return (req: Request, res: Response, next: NextFunction): void => {
      this.check(req.get('authorization'), ipKeyGenerator(req.ip ?? '')).then((outcome) => {
        if ('user' in outcome) {
          res.locals.user = outcome.user;
          return next();
        }
        if (outcome.error.code === 'UNAUTHORIZED') res.setHeader('WWW-Authenticate', 'Basic realm="faas", charset="UTF-8"');
        next(outcome.error);
      }, next);
    };
  }

  /** The user name when the header carries valid credentials. */
  async verify(header: string | undefined, address = 'local'): Promise<string | undefined> {
    const outcome = await this.check(header, address);
    return 'user' in outcome ? outcome.user : undefined;
  }

  /**
   * In order: credentials verified before answer from memory, whatever the lockouts (a guessing burst
   * does not shut out the user it guesses at); a locked address or name is refused; a wrong pair seen
   * before is refused without scrypt; else one scrypt, after the one running.
   */
  async check(header: string | undefined, address: string): Promise<Outcome> {
    if (!header) return { error: new PlatformError('UNAUTHORIZED', 'this platform needs a user name and password (HTTP Basic)') };
    const credentials = parseBasic(header);
    // Not a guess at any password: it costs nothing and counts for nothing.
    if (!credentials) return { error: new PlatformError('UNAUTHORIZED', 'the Authorization header is not HTTP Basic user:password') };
    const { name, password } = credentials;
    const digest = createHash('sha256').update(`${name}\0${password}`).digest();
    const known = this.remembered.get(name);
    if (known !== undefined && timingSafeEqual(Buffer.from(known, 'hex'), digest)) return { user: name };
    const locked = this.lockedFor(address, name);
    if (locked) return locked;
    const hex = digest.toString('hex');
    if (this.wrong.has(hex)) {
      this.options.onRefused?.('known_wrong');
      return this.failure(address, name);
    }
    if (this.hashing.activeCount + this.hashing.pendingCount > this.maxWaiting) {
      this.options.onRefused?.('busy');
      return { error: new PlatformError('AUTH_BUSY', 'too many credentials wait to be checked; retry in a second', { retryAfterSeconds: 1 }) };
    }
    const outcome = await this.hashing(async (): Promise<Outcome | undefined> => {
      // The failures of those who waited ahead of this one may have locked it out meanwhile.
      const lockedNow = this.lockedFor(address, name);
      if (lockedNow) return lockedNow;
      const stored = this.users.get(name);
      const hash = stored ?? this.decoy;
      this.options.onScrypt?.();
      const key = await scrypt(password, hash.salt);
      if (timingSafeEqual(key, hash.key) && stored !== undefined) return undefined;
      // Counted before the next in line starts, so that it sees the lockout this failure may cause.
      this.wrong.add(hex);
      return this.failure(address, name);
    });
    if (outcome) return outcome;
    this.remembered.delete(name);
    this.remembered.set(name, hex);
    if (this.remembered.size > MAX_REMEMBERED) this.remembered.delete(this.remembered.keys().next().value!);
    return { user: name };
  }

  private lockedFor(address: string, name: string): Outcome | undefined {
    const seconds = Math.max(this.byAddress.lockedFor(address), this.byName.lockedFor(name));
    if (seconds === 0) return undefined;
    this.options.onRefused?.('locked');
    return {
      error: new PlatformError('AUTH_LOCKED', `too many wrong credentials from this address or for this user name; retry in ${seconds} s`, { retryAfterSeconds: seconds }),
    };
  }

  private failure(address: string, name: string): Outcome {
    this.byAddress.failed(address);
    this.byName.failed(name);
    return { error: new PlatformError('UNAUTHORIZED', 'wrong user name or password') };
  }
}

function parseBasic(header: string): { name: string; password: string } | undefined {
  const match = /^Basic ([A-Za-z0-9+/=]{1,1024})$/i.exec(header.trim());
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { name: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
