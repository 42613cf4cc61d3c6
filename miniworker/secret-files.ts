import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { MiniworkerDb } from '../protocol/db-client';

/** Where a container finds its function's secrets, one file each. */
export const SECRETS_MOUNT = '/run/secrets';

/**
 * The secrets of one container, as files in a folder of its own under the node's secrets folder
 * (FAAS_SECRETS_DIR, a tmpfs: /dev/shm by default, so values never reach a disk), bind-mounted
 * read-only at /run/secrets into that container alone and removed with it. The folder (0500) and the
 * files (0400) belong to the sandbox user when the worker runs as root; otherwise they are readable by
 * anyone inside the container, and the node's folder (0700) keeps other users of the machine out.
 */
export class SecretFiles {
  private removed = false;

  private constructor(private readonly dir: string) {}

  static async create(root: string, owner: string, values: Record<string, string>): Promise<SecretFiles> {
    await mkdir(root, { recursive: true, mode: 0o700 });
    const dir = path.join(root, randomBytes(8).toString('hex'));
    await mkdir(dir, { mode: 0o700 });
    const files = new SecretFiles(dir);
    try {
      const [uid, gid] = owner.split(':').map(Number) as [number, number];
      let owned = true;
      for (const [name, value] of Object.entries(values)) {
        // Names match ^[a-z0-9][a-z0-9_-]*$: never a path.
        const file = path.join(dir, name);
        await writeFile(file, value, { mode: 0o400, flag: 'wx' });
        owned = owned && (await chown(file, uid, gid).then(() => true, () => false));
        if (!owned) await chmod(file, 0o444);
      }
      owned = owned && (await chown(dir, uid, gid).then(() => true, () => false));
      await chmod(dir, owned ? 0o500 : 0o555);
      return files;
    } catch (err) {
      await files.remove();
      throw err;
    }
  }

  /**
   * The secrets of a function as files for its next container, in this miniworker's folder under the
   * node's secrets folder: the values are asked of db-service for the call in hand.
   */
  static async forCall(db: Pick<MiniworkerDb, 'getSecretValues'>, names: string[], owner: string, at: { secretsDir?: string; miniworkerId: string }): Promise<SecretFiles> {
    if (!at.secretsDir) throw new Error('this node has no secrets folder (FAAS_SECRETS_DIR)');
    return SecretFiles.create(path.join(at.secretsDir, at.miniworkerId), owner, await db.getSecretValues(names));
  }

  /** The Docker bind that puts the folder into the container, read-only. */
  get bind(): string {
    return `${this.dir}:${SECRETS_MOUNT}:ro`;
  }

  /** Removes the folder and its files; safe to call twice. */
  async remove(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    await chmod(this.dir, 0o700).catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }
}
