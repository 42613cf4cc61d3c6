import type { Command } from 'commander';
import { deployFunction, listFunctions, listVersions, removeFunction, showFunction, type DeployOptions } from '../actions/fn';
import { repeatable, type Act } from './types';

export function fnCommands(program: Command, act: Act): void {
  const fn = program.command('fn').alias('function').description('functions: packages of code that run on a runtime');

  fn.command('deploy <target>')
    .alias('register')
    .description('deploy a function from a folder (packed for you) or a .tar.gz/.zip archive')
    .requiredOption('--runtime <runtime>', 'runtime to run it on')
    .option('--name <name>', 'function name (default: the folder or archive name)')
    .option('--timeout <duration>', 'time limit of a call: 1500ms, 30s, 2m')
    .option('--memory <size>', 'memory of its containers: 128m, 1g')
    .option('--cpus <n>', 'CPUs of its containers: 0.5, 2')
    .option('--concurrency <n>', 'calls of it running at once, across the platform')
    .option('--env <KEY=value>', 'an environment variable of its containers (repeatable)', repeatable, [] as string[])
    .option('--arg <value>', 'an extra argument for the run command (repeatable; process mode)', repeatable, [] as string[])
    .option('--outputs', 'keep what each call writes to /out (faas outputs N downloads it)')
    .option('--handler <module.attribute>', 'handler-mode entry point (default handler.handle)')
    .option('--preload <policy>', 'none, runtime or function: when its containers start')
    .option('--idempotent', 'safe to run twice: a call that loses its node runs again')
    .option('--retries <n>', 'an async call that fails runs again, up to n more times (idempotent functions); then it is a dead letter')
    .option('--retry-backoff <duration>', 'the wait before the first retry, doubled each time: 500ms, 2s (default 1s)')
    .option('--retry-on <which>', 'platform (its node, worker or container lost: the default) or any error')
    .option('--retry-timeouts', 'retry calls that ran past their timeout too')
    .option('--secret <name>', 'a secret it reads as /run/secrets/<name> (repeatable; faas secret create makes one)', repeatable, [] as string[])
    .option('--public', 'its HTTP endpoint /function/<name> answers without credentials')
    .option('--network', 'give it a network (the platform must allow it)')
    .action(act((ctx, target: string, o: DeployOptions) => deployFunction(ctx, target, o)));

  fn.command('ls').alias('list').description('list functions').action(act((ctx) => listFunctions(ctx)));

  fn.command('get <name>')
    .alias('show')
    .description('show one function')
    .action(act((ctx, name: string) => showFunction(ctx, name)));

  fn.command('rm <name>')
    .alias('remove')
    .description('remove a function and its versions (its calls are kept)')
    .action(act((ctx, name: string) => removeFunction(ctx, name)));

  fn.command('versions <name>')
    .description('list the versions a function has had, newest first')
    .action(act((ctx, name: string) => listVersions(ctx, name)));
}
