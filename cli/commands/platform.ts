import type { Command } from 'commander';
import { hashPassword } from '../../api/auth';
import { curveKeyPairText } from '../actions/keys';
import { ensureClusterBaseImages, ensureRuntimeImages } from '../actions/images';
import { packExamples } from '../actions/pack';
import { health, login, logout, workers, type LoginOptions } from '../actions/platform';
import { up } from '../actions/up';
import { UsageError, type GlobalFlags } from '../context';
import type { Act } from './types';

export function platformCommands(program: Command, act: Act): void {
  program
    .command('up')
    .description('start a one-node platform (db-service, api, one worker) in the foreground')
    .option('--port <port>', 'HTTP port', process.env.FAAS_API_PORT ?? '3000')
    .option('--host <host>', 'HTTP address', process.env.FAAS_API_HOST ?? '127.0.0.1')
    .option('--data-dir <dir>', 'data folder', process.env.FAAS_DATA_DIR ?? './data')
    .action(async (o: { port: string; host: string; dataDir: string }) => {
      if (!/^\d{1,5}$/.test(o.port)) throw new UsageError(`--port takes a port number, got "${o.port}"`);
      await up({ port: Number(o.port), host: o.host, dataDir: o.dataDir });
    });

  program
    .command('health')
    .description('is the platform ok: db-service answering and a worker connected (exit 1 when not)')
    .action(act((ctx) => health(ctx)));

  program
    .command('workers')
    .description('list connected workers with their load and warm containers')
    .action(act((ctx) => workers(ctx)));

  program
    .command('login')
    .description('check credentials and save them and the address for later commands')
    .option('--password-stdin', 'read the password from stdin')
    .action(act((ctx, o: LoginOptions) => login(ctx, program.opts<GlobalFlags>(), o)));

  program
    .command('logout')
    .description('forget the credentials saved for the platform')
    .action(act((ctx) => logout(ctx, program.opts<GlobalFlags>())));

  program
    .command('images')
    .description('build the shipped runtime images that are missing')
    .option('--force', 'rebuild them all')
    .option('--cluster', 'instead, make sure the compose cluster has base images and print FAAS_NODE_IMAGE and FAAS_REGISTRY_IMAGE')
    .action(act(async (ctx, o: { force?: boolean; cluster?: boolean }) => {
      if (o.cluster) {
        const bases = await ensureClusterBaseImages((line) => ctx.out.note(line));
        const lines = `export FAAS_NODE_IMAGE=${bases.node} FAAS_REGISTRY_IMAGE=${bases.registry}`;
        ctx.out.result(bases, () => lines, () => lines);
        return;
      }
      const built = await ensureRuntimeImages({ force: o.force, say: (line) => ctx.out.note(line) });
      ctx.out.result(built, () => (built.length ? `built ${built.join(', ')}` : 'runtime images already present'), () => built.join('\n'));
    }));

  program
    .command('pack-examples')
    .description('pack the example functions into archives (runtimes/python/dice/python.tar.gz)')
    .action(act(async (ctx) => {
      const files = await packExamples();
      ctx.out.result(files, () => files.join('\n'), () => files.join('\n'));
    }));

  program
    .command('hash-password')
    .description('read a password on stdin and print the hash for FAAS_AUTH_USERS (name:hash)')
    .action(async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
      if (!password) throw new UsageError('give the password on stdin');
      process.stdout.write(`${await hashPassword(password)}\n`);
    });

  program
    .command('curve-keypair')
    .description('print a new CURVE key pair: the cluster pair (FAAS_CURVE_PUBLIC_KEY, FAAS_CURVE_SECRET_KEY), or with --client a client pair and its allow-list entry')
    .option('--client [role]', 'a client pair (FAAS_CURVE_CLIENT_PUBLIC_KEY, FAAS_CURVE_CLIENT_SECRET_KEY) for a worker, api or miniworker')
    .action((o: { client?: string | true }) => {
      process.stdout.write(curveKeyPairText(o.client === true ? 'worker' : o.client));
    });
}
