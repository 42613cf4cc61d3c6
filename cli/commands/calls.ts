import type { Command } from 'commander';
import { invoke, listCalls, rerun, saveOutputs, showCall, showLogs, type InvokeOptions, type ListCallsOptions } from '../actions/calls';
import { followLogs, watchCalls, watchEvents, type EventsOptions } from '../actions/watch';
import { repeatable, type Act } from './types';

export function callCommands(program: Command, act: Act): void {
  program
    .command('invoke <fn>')
    .description('invoke a function; waits for its result unless --async')
    .option('-p, --param <key=value>', 'a parameter (repeatable)', repeatable, [] as string[])
    .option('-d, --data <json>', 'the parameters as a JSON object, @file or @- (stdin)')
    .option('-w, --wait', 'wait for the end and print the result (the default)')
    .option('-a, --async', 'print the call number at once and do not wait')
    .option('--arg <value>', "an extra argument for the run command, this call only (repeatable; process mode)", repeatable, [] as string[])
    .option('-e, --env <KEY=value>', 'an environment variable for this call only (repeatable)', repeatable, [] as string[])
    .option('--callback <url>', 'POST the final call there when it ends (a host the platform allows: FAAS_CALLBACK_ALLOW)')
    .action(act((ctx, name: string, o: InvokeOptions) => invoke(ctx, name, o)));

  program
    .command('rerun <n>')
    .description('run call n again: same function version, params, args and env; waits unless --async')
    .option('-w, --wait', 'wait for the end and print the result (the default)')
    .option('-a, --async', 'print the new call number at once')
    .action(act((ctx, n: string, o: { wait?: boolean; async?: boolean }) => rerun(ctx, n, o)));

  program
    .command('outputs <n>')
    .description('save the zip of the files call n wrote to /out (functions deployed with --outputs)')
    .option('-o, --output <file>', 'where to save it; - for stdout (default call-N-outputs.zip)')
    .action(act((ctx, n: string, o: { output?: string }) => saveOutputs(ctx, n, o)));

  const call = program.command('call').description('one call');
  call
    .command('get <n>')
    .alias('show')
    .description('show call n: status, times, result, error')
    .action(act((ctx, n: string) => showCall(ctx, n)));

  program
    .command('calls')
    .description('list calls, newest first')
    .option('--fn <name>', 'only the calls of this function')
    .option('--status <status>', 'only calls in this status: pending, running, done, error, timeout')
    .option('--since <date>', 'only calls made at or after this date (ISO 8601)')
    .option('--until <date>', 'only calls made before this date (ISO 8601)')
    .option('--limit <n>', 'at most n calls', '20')
    .option('--cursor <cursor>', 'continue a listing where the previous page ended')
    .option('--dead', 'only dead letters: async calls whose retries ran out (faas rerun N runs one again)')
    .option('-w, --watch', 'then go on: print each call accepted, started or ended as it happens (Ctrl-C stops)')
    .action(act((ctx, o: ListCallsOptions & { watch?: boolean }) => (o.watch ? watchCalls(ctx, o) : listCalls(ctx, o))));

  program
    .command('events')
    .description("the platform's live events: calls, functions, runtimes, workers (--json: one JSON object per line)")
    .option('--types <list>', 'only these event types or families, comma-separated: call, function, runtime, worker, call.ended, …')
    .option('--fn <name>', 'only the events of this function')
    .action(act((ctx, o: EventsOptions) => watchEvents(ctx, o)));

  program
    .command('logs <n>')
    .description("what call n wrote: its stdout on stdout, its stderr on stderr")
    .option('-f, --follow', 'while the call runs, print what it writes as it writes it, until it ends')
    .action(act((ctx, n: string, o: { follow?: boolean }) => (o.follow ? followLogs(ctx, n) : showLogs(ctx, n))));
}
