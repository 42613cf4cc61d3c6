#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { ClientError, FaasClient } from './client';
import { ensureRuntimeImages } from './actions/images';
import { archiveFor, packExamples } from './actions/pack';
import { up } from './actions/up';
import { curveKeyPair } from 'zeromq';
import { hashPassword } from '../api/auth';

/** Exit codes: 0 ok, 1 the call or request failed, 2 usage error, 3 platform unreachable or credentials refused. */
const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3 } as const;

const program = new Command();
program
  .name('faas')
  .description('Command line of the faas platform.')
  .option('--url <url>', 'platform address (env FAAS_URL)', process.env.FAAS_URL ?? 'http://127.0.0.1:3000')
  .option('--user <name>', 'user name, for a platform with users (env FAAS_USER)', process.env.FAAS_USER)
  .option('--password <password>', 'password (env FAAS_PASSWORD)', process.env.FAAS_PASSWORD)
  .option('--json', 'machine-readable output')
  .addHelpText('after', '\nExit codes: 0 ok, 1 the call or request failed, 2 usage error, 3 platform unreachable or credentials refused.')
  .exitOverride();

const client = () => {
  const { url, user, password } = program.opts<{ url: string; user?: string; password?: string }>();
  return new FaasClient(String(url).replace(/\/+$/, ''), user ? `${user}:${password ?? ''}` : undefined);
};
const asJson = () => Boolean(program.opts().json);
const print = (value: unknown, human?: string): void => void process.stdout.write(`${asJson() || human === undefined ? JSON.stringify(value, null, asJson() ? 0 : 2) : human}\n`);

program
  .command('up')
  .description('start a one-node platform (db-service, api, one worker) in the foreground')
  .option('--port <port>', 'HTTP port', process.env.FAAS_API_PORT ?? '3000')
  .option('--host <host>', 'HTTP address', process.env.FAAS_API_HOST ?? '127.0.0.1')
  .option('--data <dir>', 'data folder', process.env.FAAS_DATA_DIR ?? './data')
  .action(async (o: { port: string; host: string; data: string }) => up({ port: Number(o.port), host: o.host, dataDir: o.data }));

program
  .command('images')
  .description('build the runtime images that are missing')
  .option('--force', 'rebuild them all')
  .action(async (o: { force?: boolean }) => {
    const built = await ensureRuntimeImages({ force: o.force });
    print(built, built.length ? `built ${built.join(', ')}` : 'runtime images already present');
  });

program
  .command('pack-examples')
  .description('pack the example functions into archives (runtimes/python/dice/python.tar.gz)')
  .action(async () => {
    const files = await packExamples();
    print(files, files.join('\n'));
  });

const runtime = program.command('runtime').alias('rt').description('runtimes: Docker images that run functions');
runtime
  .command('register')
  .description('register a runtime (the seed RUNTIME object)')
  .option('--file <json>', 'read the RUNTIME object from a JSON file')
  .option('--name <name>', 'runtime name (default: the image name)')
  .option('--image <image>', 'Docker image')
  .option('--path <path>', 'folder of the function inside the container', '/ws')
  .option('--deps <cmd>', 'command that installs dependencies', '')
  .option('--run <cmd>', 'command that runs the function')
  .action(async (o: { file?: string; name?: string; image?: string; path: string; deps: string; run?: string }) => {
    const body = o.file
      ? JSON.parse(await readFile(o.file, 'utf8'))
      : { ...(o.name ? { name: o.name } : {}), image: o.image, path: o.path, dependencies: o.deps, run: o.run };
    const registered = await client().registerRuntime(body);
    print(registered, `runtime ${registered.name} registered (image ${registered.image})`);
  });
runtime.command('ls').alias('list').description('list runtimes').action(async () => {
  const names = await client().listRuntimes();
  print(names, names.join('\n'));
});

const fn = program.command('fn').alias('function').description('functions');
fn.command('deploy <target>')
  .description('deploy a function from a folder or a .tar.gz/.zip archive')
  .requiredOption('--runtime <runtime>', 'runtime to run it with')
  .option('--name <name>', 'function name (default: the folder or archive name)')
  .action(async (target: string, o: { runtime: string; name?: string }) => {
    const name = o.name ?? path.basename(path.resolve(target)).replace(/\.(tar\.gz|tgz|zip)$/, '');
    const archive = await archiveFor(target);
    const record = await client().registerFunction(o.runtime, name, archive);
    print(record, `function ${record.functionName} deployed on ${record.runtimeName} (version ${record.version.slice(0, 12)})`);
  });
fn.command('ls').alias('list').description('list functions').action(async () => {
  const names = await client().listFunctions();
  print(names, names.join('\n'));
});

program
  .command('invoke <fn>')
  .description('invoke a function')
  .option('-p, --param <k=v>', 'a parameter (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
  .option('--data <json>', 'all parameters as JSON, or @file')
  .option('--wait', 'wait for the call to end and print it')
  .action(async (name: string, o: { param: string[]; data?: string; wait?: boolean }) => {
    let params: Record<string, unknown> = {};
    if (o.data) {
      const text = o.data.startsWith('@') ? await readFile(o.data.slice(1), 'utf8') : o.data;
      try {
        params = JSON.parse(text);
      } catch {
        throw new CommanderError(EXIT.usage, 'faas.usage', '--data is not valid JSON');
      }
    }
    for (const pair of o.param) {
      const at = pair.indexOf('=');
      if (at < 1) throw new CommanderError(EXIT.usage, 'faas.usage', `-p takes key=value, got "${pair}"`);
      params[pair.slice(0, at)] = pair.slice(at + 1);
    }
    const started = Date.now();
    const { call } = await client().invoke(name, params, Boolean(o.wait));
    const seconds = ((Date.now() - started) / 1000).toFixed(2);
    if (!o.wait) {
      print(call, `call ${call.callNum} ${call.status}`);
      return;
    }
    if (asJson() || !process.stdout.isTTY) print(call, call.status === 'DONE' ? call.result : JSON.stringify(call, null, 2));
    else print(call, `${call.status === 'DONE' ? call.result : JSON.stringify(call, null, 2)}\n(call ${call.callNum} ${call.status} in ${seconds} s)`);
    if (call.status !== 'DONE' && ['ERROR', 'TIMEOUT'].includes(call.status)) process.exitCode = EXIT.failed;
  });

const callCmd = program.command('call').description('calls');
callCmd
  .command('get <callNum>')
  .description('show one call')
  .action(async (n: string) => {
    if (!/^\d+$/.test(n)) throw new CommanderError(EXIT.usage, 'faas.usage', `"${n}" is not a call number`);
    print(await client().getCall(Number(n)));
  });

program
  .command('calls')
  .description('list calls')
  .action(async () => {
    const calls = Object.values(await client().listCalls());
    print(calls, calls.map((c) => `${String(c.callNum).padStart(6)}  ${c.status.padEnd(8)} ${c.funcName}`).join('\n'));
  });

program
  .command('curve-keypair')
  .description('print a new CURVE key pair for FAAS_CURVE_PUBLIC_KEY and FAAS_CURVE_SECRET_KEY')
  .action(() => {
    const pair = curveKeyPair();
    process.stdout.write(`FAAS_CURVE_PUBLIC_KEY=${pair.publicKey}\nFAAS_CURVE_SECRET_KEY=${pair.secretKey}\n`);
  });

program
  .command('hash-password')
  .description('read a password on stdin and print the hash to put in FAAS_AUTH_USERS as name:hash')
  .action(async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
    if (!password) throw new CommanderError(EXIT.usage, 'faas.usage', 'give the password on stdin');
    process.stdout.write(`${await hashPassword(password)}\n`);
  });

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
        process.exitCode = EXIT.ok;
        return;
      }
      if (err.code === 'faas.usage') process.stderr.write(`error: ${err.message}\n`);
      process.exitCode = EXIT.usage;
      return;
    }
    if (err instanceof ClientError) {
      const hint = err.status === 401 ? ' (give --user and --password, or set FAAS_USER and FAAS_PASSWORD)' : '';
      process.stderr.write(`error: ${err.message}${hint}\n`);
      process.exitCode = err.unreachable || err.status === 401 ? EXIT.unreachable : EXIT.failed;
      return;
    }
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = EXIT.failed;
  }
}

void main();
