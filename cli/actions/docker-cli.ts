import { spawn } from 'node:child_process';
import { CommandFailed } from '../context';
import { PROJECT_ROOT } from './images';

export interface DockerRun {
  /** Written to the command's stdin (then closed). */
  input?: string;
  env?: NodeJS.ProcessEnv;
  /** Each line of output as it comes (builds, pushes). */
  onLine?: (line: string) => void;
}

/**
 * The `docker` command, for what the engine's API does not do by itself (`stack deploy` reads compose
 * files, `build` and `push` keep the CLI's behaviour). Resolves to stdout; a failure becomes a
 * CommandFailed with the command and the end of its stderr.
 */
export function docker(args: string[], options: DockerRun = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('docker', args, { cwd: PROJECT_ROOT, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let partial = '';
    const lines = (chunk: string) => {
      if (!options.onLine) return;
      const text = partial + chunk;
      const parts = text.split('\n');
      partial = parts.pop()!;
      for (const line of parts) if (line.trim()) options.onLine(line);
    };
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      lines(chunk);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-8000);
      lines(chunk);
    });
    child.on('error', (err) => reject(new CommandFailed(`docker ${args[0]} could not run: ${err.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve(stdout);
      else reject(new CommandFailed(`docker ${args.slice(0, 3).join(' ')} failed (exit ${code}): ${stderr.trim().split('\n').slice(-10).join('\n')}`));
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Waits until `ready` holds, asking every `everyMs`; past `timeoutMs` fails with `what` and the last answer. */
export async function waitFor<T>(what: string, ready: () => Promise<T | undefined>, timeoutMs: number, everyMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await ready();
      if (value !== undefined) return value;
    } catch (err) {
      last = err instanceof Error ? err.message : err;
    }
    if (Date.now() > deadline) throw new CommandFailed(`${what}: not after ${Math.round(timeoutMs / 1000)} s${last ? ` (${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
