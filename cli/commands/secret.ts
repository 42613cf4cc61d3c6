import type { Command } from 'commander';
import { createSecret, listSecrets, removeSecret, type SecretOptions } from '../actions/secret';
import type { Act } from './types';

export function secretCommands(program: Command, act: Act): void {
  const secret = program.command('secret').description('secrets: values functions read as files /run/secrets/<name>, never shown again');

  secret
    .command('create <name>')
    .alias('add')
    .description('create (or replace) a secret; functions using it get new containers')
    .option('--from-file <file>', 'the value is the content of this file')
    .option('--from-literal <value>', 'the value as given (it stays in your shell history: prefer a file or stdin)')
    .option('--from-stdin', 'the value is read from standard input')
    .action(act((ctx, name: string, o: SecretOptions) => createSecret(ctx, name, o)));

  secret.command('ls').alias('list').description('list secrets and the functions using them (never their values)').action(act((ctx) => listSecrets(ctx)));

  secret
    .command('rm <name>')
    .alias('remove')
    .description('remove a secret no function uses')
    .action(act((ctx, name: string) => removeSecret(ctx, name)));
}
