import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export const DEFAULT_URL = 'http://127.0.0.1:3000';

/** What `faas login` keeps: the platform last logged into, and credentials per platform address. */
export interface ConfigFile {
  url?: string;
  platforms?: Record<string, { user?: string; password?: string }>;
}

/** Where the platform is and who asks, with where each came from (for `faas login` and messages). */
export interface Target {
  url: string;
  user?: string;
  password?: string;
  source: 'flag' | 'config' | 'env' | 'default';
  /** Where the user came from, when there is one. */
  userSource?: 'flag' | 'env' | 'config';
}

/** The user's config folder: FAAS_CONFIG names the file itself; else XDG, APPDATA, ~/.config. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.FAAS_CONFIG) return path.resolve(env.FAAS_CONFIG);
  const base =
    env.XDG_CONFIG_HOME || (process.platform === 'win32' && env.APPDATA ? env.APPDATA : path.join(os.homedir(), '.config'));
  return path.join(base, 'faas', 'config.json');
}

export async function readConfig(file = configPath()): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as ConfigFile;
    return parsed && typeof parsed === 'object' ? parsed : {};
  } catch {
    throw new Error(`${file} is not valid JSON; fix it or remove it and run \`faas login\` again`);
  }
}

/** Written whole to a temporary file and renamed over the old one, readable by its owner only. */
export async function writeConfig(config: ConfigFile, file = configPath()): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  await chmod(temp, 0o600);
  await rename(temp, file);
}

export function normalizeUrl(url: string): string {
  const trimmed = url.trim().replace(/\/+$/, '');
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`;
}

/**
 * The platform's address: --url, else FAAS_URL, else the address saved by `faas login`, else the
 * default (the environment beats the config file, as DOCKER_HOST beats docker's context). Credentials
 * the same way: the flags, else FAAS_USER/FAAS_PASSWORD, else those saved for that address. Saved
 * credentials are only ever sent to the address they were saved for.
 */
export function resolveTarget(flags: { url?: string; user?: string; password?: string }, config: ConfigFile, env: NodeJS.ProcessEnv = process.env): Target {
  let url: string;
  let source: Target['source'];
  if (flags.url) [url, source] = [flags.url, 'flag'];
  else if (env.FAAS_URL) [url, source] = [env.FAAS_URL, 'env'];
  else if (config.url) [url, source] = [config.url, 'config'];
  else [url, source] = [DEFAULT_URL, 'default'];
  url = normalizeUrl(url);
  const saved = config.platforms?.[url];
  const user = flags.user ?? (env.FAAS_USER || undefined) ?? saved?.user;
  if (!user) return { url, source };
  const userSource = flags.user !== undefined ? 'flag' : env.FAAS_USER ? 'env' : 'config';
  const fromEnv = user === env.FAAS_USER && env.FAAS_PASSWORD !== undefined ? env.FAAS_PASSWORD : undefined;
  const password = flags.password ?? fromEnv ?? (user === saved?.user ? saved.password : undefined) ?? '';
  return { url, source, user, password, userSource };
}
