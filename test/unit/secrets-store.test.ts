import { chmodSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseKey, SecretBox } from '../../db-service/secret-box';
import { PlatformStore } from '../../db-service/store';
import { ConfigError } from '../../protocol/config';

/** Secrets at rest: sealed in db-service's LevelDB, opened only with the key, never listed with their value. */

const VALUE = 'hunter2-correct-horse-battery-staple';

describe('the secret box', () => {
  test('a key file is made once with mode 0600 and read again; one others may read is refused', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-key-'));
    const file = path.join(dir, 'db.secrets.key');
    const box = SecretBox.load(undefined, file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const sealed = box.seal('db', VALUE);
    expect(SecretBox.load(undefined, file).open('db', sealed)).toBe(VALUE);
    chmodSync(file, 0o644);
    expect(() => SecretBox.load(undefined, file)).toThrow(/chmod 600/);
    writeFileSync(path.join(dir, 'bad.key'), 'not a key\n', { mode: 0o600 });
    expect(() => SecretBox.load(undefined, path.join(dir, 'bad.key'))).toThrow(ConfigError);
  });

  test('FAAS_SECRETS_KEY takes hex or base64 of 32 bytes; a seal opens only with its key and for its name', () => {
    const hex = 'ab'.repeat(32);
    expect(parseKey(hex)).toHaveLength(32);
    expect(parseKey(Buffer.alloc(32, 7).toString('base64'))).toHaveLength(32);
    for (const bad of ['short', 'ab'.repeat(31), Buffer.alloc(16).toString('base64')]) expect(parseKey(bad)).toBeUndefined();
    expect(() => SecretBox.load('nope', '/nonexistent/key')).toThrow(/FAAS_SECRETS_KEY/);
    const box = SecretBox.load(hex, '/nonexistent/key');
    const sealed = box.seal('db', VALUE);
    expect(sealed.data).not.toContain(Buffer.from(VALUE).toString('base64').slice(0, 12));
    expect(box.open('db', sealed)).toBe(VALUE);
    expect(() => box.open('other', sealed)).toThrow();
    expect(() => SecretBox.load('cd'.repeat(32), '/nonexistent/key').open('db', sealed)).toThrow();
    // Two seals of one value differ (a fresh nonce each).
    expect(box.seal('db', VALUE).data).not.toBe(sealed.data);
  });
});

describe('secrets in the store', () => {
  test('stored sealed: listed and told without their value; the LevelDB files never hold it in clear', async () => {
    const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'faas-sec-')), 'db');
    const store = await PlatformStore.open(dir);
    try {
      expect((await store.putSecret('db-password', VALUE)).created).toBe(true);
      const replaced = await store.putSecret('db-password', `${VALUE}-2`);
      expect(replaced.created).toBe(false);
      expect(JSON.stringify(replaced)).not.toContain(VALUE);
      expect(JSON.stringify(await store.listSecrets())).not.toContain(VALUE);
      expect(await store.getSecret('db-password')).toEqual({ name: 'db-password', createdAt: expect.any(String), updatedAt: expect.any(String) });
      expect(await store.getSecretValues(['db-password'])).toEqual({ 'db-password': `${VALUE}-2` });
      await expect(store.getSecretValues(['nosuch'])).rejects.toMatchObject({ code: 'SECRET_NOT_FOUND' });
    } finally {
      await store.close();
    }
    for (const file of readdirSync(dir)) {
      const bytes = readFileSync(path.join(dir, file));
      expect([file, bytes.includes(Buffer.from(VALUE))]).toEqual([file, false]);
    }
    // The key file is beside the store, not in it.
    expect(statSync(`${dir}.secrets.key`).mode & 0o777).toBe(0o600);
  });

  test('a secret a function uses cannot be removed', async () => {
    const store = await PlatformStore.open(path.join(mkdtempSync(path.join(os.tmpdir(), 'faas-sec-')), 'db'));
    try {
      await store.putSecret('token', VALUE);
      await store.putFunction({ functionName: 'f', runtimeName: 'python', version: 'a'.repeat(64), size: 1, format: 'tar.gz', registeredAt: '', secrets: ['token'] });
      await expect(store.deleteSecret('token')).rejects.toMatchObject({ code: 'SECRET_IN_USE' });
      await store.deleteFunction('f');
      expect(await store.deleteSecret('token')).toEqual({ deleted: true });
      expect(await store.listSecrets()).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
