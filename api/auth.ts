import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { ConfigError } from '../protocol/config';
import { PlatformError } from '../protocol/errors';

/**
 * HTTP Basic authentication against scrypt password hashes, as users of a self-hosted platform
 * configure it (`faas hash-password` makes the hash). A hash is compared in constant time; a
 * verified user:password pair is remembered by its sha256, so that a warm call does not pay the
 * tens of milliseconds scrypt costs on purpose.
 */

const KEY_BYTES = 32;
const SCRYPT: ScryptOptions = { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const HASH_FORMAT = /^scrypt\$([A-Za-z0-9+/]{22,}={0,2})\$([A-Za-z0-9+/]{43}=)$/;
const USER_NAME = /^[A-Za-z0-9._@-]{1,64}$/;
const MAX_REMEMBERED = 1024;

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

export class BasicAuth {
  /** sha256 of verified `user\0password` pairs, oldest first. */
  private readonly remembered = new Map<string, string>();
  /** Checked when the user is unknown, so that a wrong name costs as long as a wrong password. */
  private readonly decoy: PasswordHash = { salt: randomBytes(16), key: randomBytes(KEY_BYTES) };

  constructor(private readonly users: Map<string, PasswordHash>) {}

  get enabled(): boolean {
    return this.users.size > 0;
  }

  /** Express middleware: the user's name goes to res.locals.user; anything else is 401. */
  middleware() {
    return (req: Request, res: Response, next: NextFunction): void => {
      this.verify(req.get('authorization')).then(
        (user) => {
          if (user) {
            res.locals.user = user;
            return next();
          }
          res.setHeader('WWW-Authenticate', 'Basic realm="faas", charset="UTF-8"');
          next(new PlatformError('UNAUTHORIZED', req.get('authorization') ? 'wrong user name or password' : 'this platform needs a user name and password (HTTP Basic)'));
        },
        (err: unknown) => next(err),
      );
    };
  }

  /** The user name when the header carries valid credentials. */
  async verify(header: string | undefined): Promise<string | undefined> {
    const match = header ? /^Basic ([A-Za-z0-9+/=]{1,1024})$/i.exec(header.trim()) : null;
    if (!match) return undefined;
    const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) return undefined;
    const name = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const digest = createHash('sha256').update(`${name}\0${password}`).digest();
    const known = this.remembered.get(name);
    if (known !== undefined && timingSafeEqual(Buffer.from(known, 'hex'), digest)) return name;
    const stored = this.users.get(name);
    const hash = stored ?? this.decoy;
    const key = await scrypt(password, hash.salt);
    if (!timingSafeEqual(key, hash.key) || !stored) return undefined;
    this.remembered.delete(name);
    this.remembered.set(name, digest.toString('hex'));
    if (this.remembered.size > MAX_REMEMBERED) this.remembered.delete(this.remembered.keys().next().value!);
    return name;
  }
}
