import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { curveKeyPair } from 'zeromq';
import { hashPassword } from '../../api/auth';
import { CommandFailed } from '../context';
import { docker } from './docker-cli';

/**
 * The stack's Swarm secrets, named <stack>_<secret> as docker-compose.swarm.yml expects. They carry the
 * label io.faas.stack, not the stack's namespace, so that `docker stack rm` leaves them with the data
 * they open (the secrets key seals the functions' secrets in db-service's volume); `faas stack rm
 * --volumes` removes both.
 */
export const STACK_LABEL = 'io.faas.stack';

/** Secrets made together: one group is made whole, or taken whole from files. */
const GROUPS = [
  ['curve_public_key', 'curve_secret_key'],
  ['worker_public_key', 'worker_secret_key', 'curve_allowed_keys'],
  ['api_user', 'api_password', 'auth_users'],
  ['secrets_key'],
] as const;

export const SECRET_NAMES: string[] = GROUPS.flat();

export interface MadeSecrets {
  /** The secrets created now (the others were there). */
  created: string[];
  /** When the users were made here: the one user an operator logs in as, and its password. */
  admin?: { user: string; password: string };
}

async function existing(stack: string): Promise<Set<string>> {
  const names = (await docker(['secret', 'ls', '--filter', `label=${STACK_LABEL}=${stack}`, '--format', '{{.Name}}'])).split('\n').filter(Boolean);
  return new Set(names.map((n) => n.slice(stack.length + 1)));
}

/**
 * Makes every secret of the stack that Swarm does not hold yet: from the file of that name in `fromDir`
 * when there is one, else generated (CURVE pairs, the worker's login, a secrets key). Generated users:
 * the workers' and `admin`, whose password is returned once. A file `auth_users` (lines of
 * `name:hash`, from `faas hash-password`) gives the operator's users; the workers' is added to it.
 */
export async function makeStackSecrets(stack: string, fromDir?: string): Promise<MadeSecrets> {
  const have = await existing(stack);
  const given = (name: string): string | undefined => {
    const file = fromDir ? path.join(fromDir, name) : undefined;
    return file && existsSync(file) ? readFileSync(file, 'utf8').replace(/[\r\n]+$/, '') : undefined;
  };
  // Half a key pair cannot be completed: a generated other half would not match it.
  for (const [a, b] of [['curve_public_key', 'curve_secret_key'], ['worker_public_key', 'worker_secret_key']] as const) {
    if ((given(a) === undefined) !== (given(b) === undefined)) throw new CommandFailed(`${a} and ${b} go together: give both files or neither`);
  }
  const values = new Map<string, string>();
  let admin: MadeSecrets['admin'];
  for (const group of GROUPS) {
    const missing = group.filter((name) => !have.has(name));
    if (missing.length === 0) continue;
    if (missing.length < group.length) {
      throw new CommandFailed(`the secrets ${group.map((n) => `${stack}_${n}`).join(', ')} go together and only some exist: remove them (docker secret rm) or the stack (faas stack rm --volumes)`);
    }
    const generated: Record<string, string> = {};
    if (group[0] === 'curve_public_key') {
      const pair = curveKeyPair();
      Object.assign(generated, { curve_public_key: pair.publicKey, curve_secret_key: pair.secretKey });
    } else if (group[0] === 'worker_public_key') {
      const pair = curveKeyPair();
      const publicKey = given('worker_public_key') ?? pair.publicKey;
      Object.assign(generated, { worker_public_key: pair.publicKey, worker_secret_key: pair.secretKey, curve_allowed_keys: `worker:${publicKey}` });
    } else if (group[0] === 'api_user') {
      const user = given('api_user') ?? 'worker';
      const password = given('api_password') ?? randomBytes(24).toString('base64url');
      let users = given('auth_users');
      if (users === undefined) {
        admin = { user: 'admin', password: randomBytes(18).toString('base64url') };
        users = `admin:${await hashPassword(admin.password)}`;
      }
      // The workers' login is added unless the users given already hold it.
      if (!users.split('\n').some((line) => line.startsWith(`${user}:`))) users = `${users}\n${user}:${await hashPassword(password)}`;
      Object.assign(generated, { api_user: user, api_password: password, auth_users: users });
    } else {
      generated.secrets_key = randomBytes(32).toString('hex');
    }
    // A file given wins, but for the users, made above from the file and the workers' login.
    for (const name of group) values.set(name, name === 'auth_users' ? generated[name]! : (given(name) ?? generated[name]!));
  }
  for (const [name, value] of values) {
    await docker(['secret', 'create', '--label', `${STACK_LABEL}=${stack}`, `${stack}_${name}`, '-'], { input: `${value}\n` });
  }
  return { created: [...values.keys()], ...(admin ? { admin } : {}) };
}

/** Removes the stack's secrets (after its services: Swarm refuses to remove a secret in use). */
export async function removeStackSecrets(stack: string): Promise<string[]> {
  const names = [...(await existing(stack))].map((n) => `${stack}_${n}`);
  if (names.length > 0) await docker(['secret', 'rm', ...names]);
  return names;
}
