import { read } from 'read';
import { ClientError, FaasClient } from '../client';
import { CommandFailed, EXIT, UsageError, type Context } from '../context';
import { formatTime } from '../output';
import { configPath, normalizeUrl, writeConfig } from '../settings';

/** Exit 0 when the platform is ok (db-service answers and a worker is connected), 1 when degraded. */
export async function health(ctx: Context): Promise<void> {
  const h = await ctx.client.health();
  const db = h.db.connected ? `db-service answers (${h.db.calls ?? 0} calls)` : `db-service does not answer${h.db.error ? ` (${h.db.error})` : ''}`;
  const workers = h.workers.connected === 0 ? 'no worker connected' : `${h.workers.connected} worker${h.workers.connected > 1 ? 's' : ''} (${h.workers.nodes.join(', ')})`;
  ctx.out.result(h, () => `${ctx.target.url}: ${h.status}; ${db}; ${workers}; ${h.queue} calls queued`, () => h.status);
  if (h.status !== 'ok') throw new CommandFailed(`the platform at ${ctx.target.url} is ${h.status}: ${h.workers.connected === 0 ? 'start a worker (`faas up` starts a whole node)' : 'db-service does not answer'}`);
}

export async function workers(ctx: Context): Promise<void> {
  const list = await ctx.client.workers();
  ctx.out.table(
    list,
    [
      { header: 'NODE', value: (w) => w.nodeId },
      { header: 'STATE', value: (w) => w.state },
      { header: 'LOAD', value: (w) => `${w.load}/${w.capacity}` },
      { header: 'QUEUED', value: (w) => String(w.queued) },
      { header: 'WARM', value: (w) => (w.warm.length ? w.warm.map((x) => `${x.function}×${x.containers}`).join(' ') : '-') },
      { header: 'STEMS', value: (w) => (w.stems.length ? w.stems.map((x) => `${x.runtime}×${x.containers}`).join(' ') : '-') },
      { header: 'SINCE', value: (w) => formatTime(w.connectedAt) },
    ],
    'no workers connected: `faas up` starts a node, or start `node dist/worker/main.js` on one',
  );
}

export interface LoginOptions {
  passwordStdin?: boolean;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/**
 * Checks the credentials against the platform and saves the address (and the credentials, readable by
 * the owner only) in the config file, so that later commands need neither.
 */
export async function login(ctx: Context, flags: { url?: string; user?: string; password?: string }, o: LoginOptions): Promise<void> {
  const url = normalizeUrl(flags.url ?? ctx.target.url);
  const interactive = Boolean(process.stdin.isTTY);
  let user = flags.user;
  let password = flags.password;
  if (o.passwordStdin) {
    if (password !== undefined) throw new UsageError('give --password or --password-stdin, not both');
    password = await readAll(process.stdin);
  }
  // A platform without users needs no credentials: only its address is saved.
  const open = await new FaasClient(url).listRuntimes().then(
    () => true,
    (err) => {
      if (err instanceof ClientError && err.status === 401) return false;
      throw err;
    },
  );
  if (open) {
    // It would take any name and password: saving them would make a login out of nothing.
    if (user !== undefined || password !== undefined) {
      throw new CommandFailed(`the platform at ${url} has no users: there is nothing to log in to, and no credentials were checked or saved (\`faas login\` without --user saves its address only)`);
    }
    await save(ctx, url);
    ctx.out.result({ url, user: null }, () => `the platform at ${url} has no users (nothing to log in to); saved it as the default address in ${configPath()}`);
    return;
  }
  if (user === undefined) {
    if (!interactive) throw new UsageError('give --user (and --password-stdin) when not on a terminal');
    user = (await read({ prompt: 'user: ', output: process.stderr })).trim();
  }
  if (password === undefined) {
    if (!interactive) throw new UsageError('give --password-stdin (or --password) when not on a terminal');
    password = String(await read({ prompt: 'password: ', silent: true, replace: '', output: process.stderr }));
  }
  if (!user) throw new UsageError('the user name is empty');
  const credentials = { user, password: password ?? '' };
  try {
    await new FaasClient(url, credentials).listRuntimes();
  } catch (err) {
    if (err instanceof ClientError && err.status === 401) throw new CommandFailed(`the platform at ${url} refused user "${user}": check the name and password`, EXIT.unreachable);
    throw err;
  }
  await save(ctx, url, credentials);
  ctx.out.result({ url, user }, () => `logged in to ${url} as ${user}; saved in ${configPath()}`);
}

/** Forgets the credentials saved for the platform (and the default address if it was that one). */
export async function logout(ctx: Context, flags: { url?: string }): Promise<void> {
  const url = normalizeUrl(flags.url ?? ctx.target.url);
  const config = { ...ctx.config, platforms: { ...ctx.config.platforms } };
  const had = Boolean(config.platforms[url]);
  delete config.platforms[url];
  if (config.url === url) delete config.url;
  await writeConfig(config);
  ctx.out.result({ url, removed: had }, () => (had ? `forgot the credentials for ${url}` : `no credentials were saved for ${url}`));
}

async function save(ctx: Context, url: string, credentials?: { user: string; password: string }): Promise<void> {
  const platforms = { ...ctx.config.platforms };
  if (credentials) platforms[url] = credentials;
  await writeConfig({ ...ctx.config, url, platforms });
}
