#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { PROJECT_ROOT } from './actions/images';
import { ClientError } from './client';
import { callCommands } from './commands/calls';
import { fnCommands } from './commands/fn';
import { platformCommands } from './commands/platform';
import { runtimeCommands } from './commands/runtime';
import { triggerCommands } from './commands/trigger';
import { secretCommands } from './commands/secret';
import { stackCommands } from './commands/stack';
import type { Act } from './commands/types';
import { CommandFailed, EXIT, UsageError, explain, makeContext, makeOutput, type GlobalFlags } from './context';
import { configPath, DEFAULT_URL, readConfig, resolveTarget } from './settings';

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

const HELP_AFTER = `
Where the platform is: --url, else FAAS_URL, else the address saved by \`faas login\`
(${configPath()}), else ${DEFAULT_URL}. Credentials: --user/--password, else
FAAS_USER/FAAS_PASSWORD, else those saved by \`faas login\` for that address.

Exit codes:
  0  ok
  1  the call or request failed (the platform answered with an error, a call ended ERROR or TIMEOUT)
  2  usage error (unknown command or flag, bad value)
  3  platform unreachable, or credentials refused

Examples:
  faas up                                              start a one-node platform
  faas runtime register --image pythonruntime --path /ws --deps "pip3 install -r requirements.txt" --run "python3 test.py"
  faas fn deploy runtimes/python/dice --runtime pythonruntime
  faas invoke dice -p roll=2d6                         wait and print the result
  faas invoke dice -p roll=2d6 --async                 print the call number at once
  faas calls --fn dice --status error
  faas logs 12`;

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('faas')
    .description('Command line of the faas platform: runtimes, functions, calls.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .option('--url <url>', 'platform address')
    .option('--user <name>', 'user, for a platform with users')
    .option('--password <password>', 'password of that user')
    .option('--json', 'print JSON for machines')
    .option('-q, --quiet', 'print only names, call numbers and results')
    .option('--raw', "print what functions wrote as they wrote it, terminal control sequences included (stripped by default)")
    .addOption(new Option('--no-color', 'no colours (they are only used on a terminal anyway)'))
    .addHelpText('after', HELP_AFTER)
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text.startsWith('error:') ? text : `error: ${text}`) });

  const act: Act =
    (handler) =>
    async (...args) => {
      const ctx = await makeContext(program.opts<GlobalFlags>());
      await handler(ctx, ...args);
    };
  runtimeCommands(program, act);
  fnCommands(program, act);
  triggerCommands(program, act);
  secretCommands(program, act);
  callCommands(program, act);
  platformCommands(program, act);
  stackCommands(program, act);
  // Subcommands report their own usage errors the same way.
  for (const command of program.commands) {
    command.exitOverride();
    for (const sub of command.commands) sub.exitOverride();
  }
  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    const flags = program.opts<GlobalFlags>();
    const out = makeOutput(flags);
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.ok;
      // Commander has printed its message (or the help of a command given without a subcommand).
      return EXIT.usage;
    }
    if (err instanceof UsageError) {
      out.error(err.message);
      return EXIT.usage;
    }
    if (err instanceof CommandFailed) {
      out.error(err.message);
      return err.exit;
    }
    if (err instanceof ClientError) {
      const target = resolveTarget(flags, await readConfig().catch(() => ({})));
      const { message, exit } = explain(err, target);
      out.error(message);
      return exit;
    }
    out.error(err instanceof Error ? err.message : String(err));
    return EXIT.failed;
  }
}

if (require.main === module) {
  void main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
