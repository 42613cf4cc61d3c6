import { readFile } from 'node:fs/promises';
import { UsageError, type Context } from '../context';
import { formatTime } from '../output';

export interface SecretOptions {
  fromFile?: string;
  fromLiteral?: string;
  fromStdin?: boolean;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Creates or replaces a secret; its value is never printed, and never comes back. */
export async function createSecret(ctx: Context, name: string, o: SecretOptions): Promise<void> {
  const sources = [o.fromFile !== undefined, o.fromLiteral !== undefined, Boolean(o.fromStdin)].filter(Boolean).length;
  if (sources !== 1) throw new UsageError('give the value one way: --from-file FILE, --from-literal VALUE or --from-stdin');
  let value: string;
  if (o.fromFile !== undefined) {
    try {
      value = await readFile(o.fromFile, 'utf8');
    } catch (err) {
      throw new UsageError(`--from-file ${o.fromFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  } else if (o.fromLiteral !== undefined) value = o.fromLiteral;
  else value = await readStdin();
  const secret = await ctx.client.putSecret(name, value);
  ctx.out.result(secret, () => `secret ${secret.name} ${secret.createdAt === secret.updatedAt ? 'created' : 'replaced'}; functions read it as /run/secrets/${secret.name}`);
}

export async function listSecrets(ctx: Context): Promise<void> {
  const secrets = (await ctx.client.listSecrets()).sort((a, b) => a.name.localeCompare(b.name));
  ctx.out.table(
    secrets,
    [
      { header: 'NAME', value: (s) => s.name },
      { header: 'UPDATED', value: (s) => formatTime(s.updatedAt) },
      { header: 'USED BY', value: (s) => (s.usedBy?.length ? s.usedBy.join(', ') : '–') },
    ],
    'no secrets yet: `faas secret create NAME --from-file FILE` adds one',
  );
}

export async function removeSecret(ctx: Context, name: string): Promise<void> {
  await ctx.client.removeSecret(name);
  ctx.out.result({ removed: name }, () => `secret ${name} removed`);
}
