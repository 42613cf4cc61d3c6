import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../protocol/config';

/** A secret's value as stored: AES-256-GCM, its nonce and tag, all base64. */
export interface SealedValue {
  iv: string;
  tag: string;
  data: string;
}

/** The key given, as 64 hexadecimal characters or the base64 of 32 bytes; undefined when it is neither. */
export function parseKey(text: string): Buffer | undefined {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex');
  if (/^[A-Za-z0-9+/]{43}=$/.test(trimmed)) {
    const key = Buffer.from(trimmed, 'base64');
    return key.length === 32 ? key : undefined;
  }
  return undefined;
}

/**
 * Seals and opens secrets' values with one key: FAAS_SECRETS_KEY when set, else a key file beside the
 * data (made with 32 random bytes and mode 0600 on first start, refused when others may read it). The
 * secret's name is the additional data of its seal, so a sealed value moved to another name does not open.
 */
export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  static fromKey(key: Buffer): SecretBox {
    if (key.length !== 32) throw new ConfigError('a secrets key is 32 bytes');
    return new SecretBox(key);
  }

  /** From FAAS_SECRETS_KEY, or from `file`, made when missing. */
  static load(envKey: string | undefined, file: string): SecretBox {
    if (envKey !== undefined && envKey !== '') {
      const key = parseKey(envKey);
      if (!key) throw new ConfigError('FAAS_SECRETS_KEY must be 32 bytes as 64 hexadecimal characters or as base64 (openssl rand -hex 32)');
      return new SecretBox(key);
    }
    let text: string;
    try {
      const mode = statSync(file).mode & 0o777;
      if ((mode & 0o077) !== 0) throw new ConfigError(`${file} may be read by others (mode ${mode.toString(8)}): chmod 600 it`);
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      mkdirSync(path.dirname(file), { recursive: true });
      text = randomBytes(32).toString('hex');
      writeFileSync(file, `${text}\n`, { mode: 0o600, flag: 'wx' });
      chmodSync(file, 0o600);
    }
    const key = parseKey(text);
    if (!key) throw new ConfigError(`${file} does not hold a secrets key (64 hexadecimal characters)`);
    return new SecretBox(key);
  }

  seal(name: string, value: string): SealedValue {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(`faas-secret:${name}`));
    const data = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return { iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
  }

  /** The value, or an error when the seal was made with another key, for another name, or changed. */
  open(name: string, sealed: SealedValue): string {
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(sealed.iv, 'base64'));
    decipher.setAAD(Buffer.from(`faas-secret:${name}`));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()]).toString('utf8');
  }
}
