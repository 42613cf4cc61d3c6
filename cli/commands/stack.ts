import type { Command } from 'commander';
import { stackDeploy, stackRemove } from '../actions/stack';
import { UsageError } from '../context';
import type { Act } from './types';

const port = (flag: string, value: string): number => {
  if (!/^\d{1,5}$/.test(value) || Number(value) < 1 || Number(value) > 65535) throw new UsageError(`${flag} takes a port number, got "${value}"`);
  return Number(value);
};

export function stackCommands(program: Command, act: Act): void {
  const stack = program.command('stack').description('the platform as a Docker Swarm stack (docker-compose.yml with docker-compose.swarm.yml)');

  stack
    .command('deploy')
    .description("start the stack's registry, build and push the platform images to it, make the missing secrets, deploy the stack")
    .option('--name <stack>', 'stack name', process.env.FAAS_STACK ?? 'faas')
    .option('--api-port <port>', "the api's port, published on the manager", process.env.FAAS_STACK_API_PORT ?? '3000')
    .option('--registry-port <port>', "the registry's port, published on the manager", process.env.FAAS_STACK_REGISTRY_PORT ?? '5000')
    .option('--tag <tag>', 'tag of the platform images', process.env.FAAS_TAG ?? 'latest')
    .option('--secrets <dir>', 'a folder of files, each the value of the secret of its name (the others are generated)')
    .option('--replicated <n>', 'workers as a replicated service of n (docker service scale) instead of one per node')
    .option('--no-wait', 'do not wait for the api to answer with a worker')
    .action(
      act(async (ctx, o: { name: string; apiPort: string; registryPort: string; tag: string; secrets?: string; replicated?: string; wait: boolean }) => {
        if (!/^[a-z0-9][a-z0-9_-]{0,30}$/.test(o.name)) throw new UsageError(`--name takes a stack name (lower-case letters, digits, - and _), got "${o.name}"`);
        if (o.replicated !== undefined && !/^[1-9]\d{0,2}$/.test(o.replicated)) throw new UsageError(`--replicated takes a number of workers from 1 to 999, got "${o.replicated}"`);
        const deployed = await stackDeploy({
          name: o.name,
          apiPort: port('--api-port', o.apiPort),
          registryPort: port('--registry-port', o.registryPort),
          tag: o.tag,
          secretsDir: o.secrets,
          replicas: o.replicated === undefined ? undefined : Number(o.replicated),
          waitMs: o.wait ? 300_000 : 0,
          say: (line) => ctx.out.note(line),
        });
        ctx.out.result(
          deployed,
          () =>
            [
              `stack ${deployed.stack}: api on ${deployed.api}, registry ${deployed.registry}`,
              ...(deployed.admin ? [`user ${deployed.admin.user}, password ${deployed.admin.password} (shown once, kept only as a hash)`] : []),
            ].join('\n'),
          () => deployed.api,
        );
      }),
    );

  stack
    .command('rm')
    .description('remove the stack and wait until its containers and networks are gone')
    .option('--name <stack>', 'stack name', process.env.FAAS_STACK ?? 'faas')
    .option('--volumes', "remove its volumes (calls, packages, the registry's images) and its secrets too")
    .action(
      act(async (ctx, o: { name: string; volumes?: boolean }) => {
        const removed = await stackRemove({ name: o.name, volumes: Boolean(o.volumes), say: (line) => ctx.out.note(line) });
        ctx.out.result(removed, () => `stack ${removed.stack} removed${o.volumes ? `, with ${removed.volumes.length} volumes and ${removed.secrets.length} secrets` : ' (volumes and secrets kept)'}`);
      }),
    );
}
