import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import { PROJECT_ROOT } from '../../cli/actions/images';

export const docker = new Docker();

export async function imageExists(name: string): Promise<boolean> {
  try {
    await docker.getImage(name).inspect();
    return true;
  } catch {
    return false;
  }
}

/** `docker compose` when the plugin is there, else the standalone `docker-compose`. */
export function composeCommand(): string[] {
  try {
    execFileSync('docker', ['compose', 'version'], { stdio: 'ignore' });
    return ['docker', 'compose'];
  } catch {
    return ['docker-compose'];
  }
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(command: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      command[0]!,
      command.slice(1),
      { env: options.env ?? process.env, cwd: options.cwd ?? PROJECT_ROOT, timeout: options.timeoutMs ?? 600_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/**
 * The extra certificate authorities this machine trusts (update-ca-certificates' local folder), for
 * npm inside the image build when the machine sits behind a TLS-inspecting proxy.
 */
export function extraCaCerts(): string {
  const dir = '/usr/local/share/ca-certificates';
  if (!existsSync(dir)) return '';
  return readdirSync(dir)
    .filter((f) => f.endsWith('.crt'))
    .map((f) => readFileSync(path.join(dir, f), 'utf8'))
    .join('\n');
}
