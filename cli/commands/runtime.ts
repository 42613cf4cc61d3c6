import type { Command } from 'commander';
import { buildRuntime, listRuntimes, registerRuntime, removeRuntime, showRuntime, type BuildOptions, type RegisterRuntimeOptions } from '../actions/runtime';
import { repeatable, type Act } from './types';

export function runtimeCommands(program: Command, act: Act): void {
  const runtime = program.command('runtime').alias('rt').description('runtimes: the Docker images functions run in');

  runtime
    .command('register')
    .alias('add')
    .description('register a runtime (the RUNTIME object: image, path, dependencies, run)')
    .option('--file <json>', 'read the RUNTIME object from a JSON file')
    .option('--name <name>', 'runtime name (default: from the image, its last path component without tag: 127.0.0.1:5000/pythonruntime:1 → pythonruntime)')
    .option('--image <image>', 'Docker image')
    .option('--path <path>', 'folder of the function inside the container', '/ws')
    .option('--deps <cmd>', 'command that installs dependencies, run once per function version', '')
    .option('--run <cmd>', 'command that runs the function')
    .option('--mode <mode>', 'process (one run per call) or handler (one container serves many calls)')
    .action(act((ctx, o: RegisterRuntimeOptions) => registerRuntime(ctx, o)));

  runtime.command('ls').alias('list').description('list runtimes').action(act((ctx) => listRuntimes(ctx)));

  runtime
    .command('get <name>')
    .alias('show')
    .description('show one runtime')
    .action(act((ctx, name: string) => showRuntime(ctx, name)));

  runtime
    .command('rm <name>')
    .alias('remove')
    .description('remove a runtime that no function uses')
    .action(act((ctx, name: string) => removeRuntime(ctx, name)));

  runtime
    .command('build <dir>')
    .description('build a runtime image from a folder with a Dockerfile; push it when a registry is given')
    .option('-t, --tag <image>', 'image name (default: the folder name + "runtime")')
    .option('--build-arg <NAME=value>', 'a build argument (repeatable)', repeatable, [] as string[])
    .option('--label <key=value>', 'a label on the image (repeatable)', repeatable, [] as string[])
    .option('--registry <host:port>', 'image registry to push to (env FAAS_REGISTRY)')
    .option('--push', 'push the image (the default when a registry is given)')
    .option('--no-push', 'build only, even with a registry')
    .action(act((ctx, dir: string, o: BuildOptions) => buildRuntime(ctx.out, dir, o)));
}
