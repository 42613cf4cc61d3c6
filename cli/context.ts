import { ClientError, FaasClient } from './client';
import { Output, terminalSafe, wantsColor } from './output';
import { readConfig, resolveTarget, type ConfigFile, type Target } from './settings';

/** Exit codes: 0 ok, 1 the call or request failed, 2 usage error, 3 platform unreachable or credentials refused. */
export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3 } as const;

/** A mistake in how the command was typed: exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A command that failed, with its explanation for the user and its exit code (1 unless told). */
export class CommandFailed extends Error {
  constructor(
    message: string,
    readonly exit: number = EXIT.failed,
  ) {
    super(message);
    this.name = 'CommandFailed';
  }
}

export interface GlobalFlags {
  url?: string;
  user?: string;
  password?: string;
  json?: boolean;
  quiet?: boolean;
  color?: boolean;
  raw?: boolean;
}

/** What every action gets: where the platform is, a client for it, and where to print. */
export interface Context {
  target: Target;
  config: ConfigFile;
  client: FaasClient;
  out: Output;
}

export async function makeContext(flags: GlobalFlags): Promise<Context> {
  const out = makeOutput(flags);
  const config = await readConfig();
  const target = resolveTarget(flags, config);
  // Under --json the answer is passed on as it came (JSON escapes control characters); for people,
  // every string the platform answers is made safe for a terminal unless --raw.
  const text = out.mode.json || out.mode.raw ? undefined : terminalSafe;
  const client = new FaasClient(target.url, target.user !== undefined ? { user: target.user, password: target.password ?? '' } : undefined, text);
  return { target, config, client, out };
}

export function makeOutput(flags: GlobalFlags): Output {
  return new Output({ json: Boolean(flags.json), quiet: Boolean(flags.quiet), color: wantsColor(flags.color), raw: Boolean(flags.raw) });
}

const LIST_HINT: Record<string, string> = {
  FUNCTION_NOT_FOUND: '`faas fn ls` lists them',
  RUNTIME_NOT_FOUND: '`faas runtime ls` lists them',
  CALL_NOT_FOUND: '`faas calls` lists them',
};

/** A platform error as one actionable sentence for a person, and the exit code it means. */
export function explain(err: ClientError, target: Pick<Target, 'url' | 'user' | 'userSource'>): { message: string; exit: number } {
  if (err.unreachable) {
    return { message: `${err.message}: is the platform running? \`faas up\` starts one, or give its address with --url`, exit: EXIT.unreachable };
  }
  if (err.status === 401) {
    const who = target.user ? `the platform at ${target.url} refused user "${target.user}"` : `the platform at ${target.url} asks for a user`;
    // FAAS_USER/FAAS_PASSWORD beat a saved login: logging in again would not help while they are set.
    if (target.userSource === 'env') return { message: `${who} of FAAS_USER/FAAS_PASSWORD: correct them, or unset them to use \`faas login\``, exit: EXIT.unreachable };
    return { message: `${who}: run \`faas login\` (or give --user and --password)`, exit: EXIT.unreachable };
  }
  const hint = LIST_HINT[err.code];
  if (hint) return { message: `${err.message}; ${hint}`, exit: EXIT.failed };
  if (err.code === 'NOT_FOUND') return { message: `the platform at ${target.url} does not know this request (${err.message}); is it an older version than this command?`, exit: EXIT.failed };
  if (err.code === 'RATE_LIMITED' || err.code === 'QUEUE_FULL') return { message: `${err.message}; try again in a moment`, exit: EXIT.failed };
  return { message: err.message, exit: EXIT.failed };
}
