import { isFinal, type CallStatus } from '../../protocol/types';
import { ClientError } from '../client';
import { CommandFailed, UsageError, type Context } from '../context';
import { formatTime, paintStatus } from '../output';
import type { StreamEvent } from '../sse';
import { errorExcerpt, listCalls, parseCallNum, type ListCallsOptions } from './calls';

/** A lost stream is opened again, resuming after the last event, for this long before giving up. */
const RECONNECT_FOR_MS = 60_000;

/**
 * Reads an event stream until it ends or the user stops it (Ctrl-C), opening it again after the
 * last event seen when the connection drops (the api replays what it kept, or says `reset`).
 * `resume` false: a dropped stream is not opened again (a call's logs have no ids).
 */
async function consume(ctx: Context, route: string, onEvent: (event: StreamEvent) => boolean | void, resume = true): Promise<void> {
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once('SIGINT', stop);
  let lastEventId: string | undefined;
  let failingSince: number | undefined;
  try {
    for (let delay = 250; !abort.signal.aborted; delay = Math.min(delay * 2, 5000)) {
      try {
        for await (const event of ctx.client.stream(route, { signal: abort.signal, lastEventId })) {
          failingSince = undefined;
          if (event.id) lastEventId = event.id;
          if (onEvent(event) === false) return;
        }
        if (!resume || abort.signal.aborted) return;
      } catch (err) {
        if (!(err instanceof ClientError) || !err.unreachable || !resume) throw err;
        failingSince ??= Date.now();
        if (Date.now() - failingSince > RECONNECT_FOR_MS) throw err;
        if (!ctx.out.mode.quiet) process.stderr.write(`${err.message}; trying again\n`);
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  } finally {
    process.removeListener('SIGINT', stop);
  }
}

/** One line for a person: time (UTC), type, then what the event is about. */
export function describeEvent(event: StreamEvent, color: boolean): string {
  const data = JSON.parse(event.data) as Record<string, unknown>;
  const at = typeof data.at === 'string' ? formatTime(data.at, true) : '';
  const str = (key: string) => (data[key] === undefined ? '' : String(data[key]));
  let what: string;
  switch (event.event.split('.')[0]) {
    case 'call': {
      const status = str('status');
      const painted = color ? paintStatus(status, status as CallStatus) : status;
      what = [
        `#${str('callNum')}`,
        str('funcName'),
        painted + (data.reason && status !== 'DONE' ? ` ${str('reason')}` : ''),
        data.durationMs !== undefined ? `${str('durationMs')} ms` : '',
        data.node ? `on ${str('node')}` : '',
        data.coldStart === true ? '(cold)' : data.coldStart === false ? '(warm)' : '',
        data.rerunOf ? `rerun of #${str('rerunOf')}` : '',
      ].filter(Boolean).join(' ');
      break;
    }
    case 'function':
      what = [str('functionName'), data.runtimeName ? `on ${str('runtimeName')}` : '', data.version ? `@ ${str('version').slice(0, 12)}` : ''].filter(Boolean).join(' ');
      break;
    case 'runtime':
      what = [str('name'), data.image ? `image ${str('image')}` : '', data.mode ? `(${str('mode')})` : ''].filter(Boolean).join(' ');
      break;
    case 'worker':
      what = [str('nodeId'), data.capacity !== undefined ? `capacity ${str('capacity')}` : ''].filter(Boolean).join(' ');
      break;
    default:
      what = str('reason') || event.data;
  }
  return `${at}  ${event.event.padEnd(19)} ${what}`;
}

export interface EventsOptions {
  types?: string;
  fn?: string;
}

/** `faas events`: the platform's live events, one line each (one JSON object per line under --json). */
export async function watchEvents(ctx: Context, o: EventsOptions): Promise<void> {
  const query = new URLSearchParams();
  if (o.types) query.set('types', o.types);
  if (o.fn) query.set('function', o.fn);
  const qs = query.toString();
  await consume(ctx, `/v1/events${qs ? `?${qs}` : ''}`, (event) => printEvent(ctx, event));
}

function printEvent(ctx: Context, event: StreamEvent): void {
  if (ctx.out.mode.json) {
    process.stdout.write(`${JSON.stringify({ ...(event.id ? { id: event.id } : {}), type: event.event, ...JSON.parse(event.data) })}\n`);
    return;
  }
  if (event.event === 'reset') {
    process.stderr.write(`(some events were missed: ${String(JSON.parse(event.data).reason)})\n`);
    return;
  }
  process.stdout.write(`${describeEvent(event, ctx.out.color)}\n`);
}

/** `faas calls --watch`: the listing, then each call accepted, started or ended as it happens. */
export async function watchCalls(ctx: Context, o: ListCallsOptions): Promise<void> {
  if (o.cursor) throw new UsageError('--watch shows the newest calls: it takes no --cursor');
  const status = o.status?.toUpperCase();
  if (!ctx.out.mode.json) {
    await listCalls(ctx, o);
    if (!ctx.out.mode.quiet) process.stderr.write('(watching; Ctrl-C stops)\n');
  }
  const query = new URLSearchParams({ types: 'call' });
  if (o.fn) query.set('function', o.fn);
  await consume(ctx, `/v1/events?${query.toString()}`, (event) => {
    if (status && event.event !== 'reset' && JSON.parse(event.data).status !== status) return;
    printEvent(ctx, event);
  });
}

/**
 * `faas logs -f N`: what call N writes, as it writes it: its stdout on stdout, its stderr on stderr,
 * until it ends. A call that did not end DONE fails the command, as `faas invoke` does.
 */
export async function followLogs(ctx: Context, n: string): Promise<void> {
  const callNum = parseCallNum(n);
  let end: { status: CallStatus; reason?: string; error?: string; truncated: boolean } | undefined;
  await consume(
    ctx,
    `/v1/calls/${callNum}/logs?follow=true`,
    (event) => {
      const data = JSON.parse(event.data);
      if (ctx.out.mode.json) process.stdout.write(`${JSON.stringify({ type: event.event, ...data })}\n`);
      else if (event.event === 'stdout') process.stdout.write(data.text);
      else if (event.event === 'stderr') process.stderr.write(data.text);
      if (event.event === 'end') {
        end = data;
        return false;
      }
      return undefined;
    },
    false,
  );
  if (!end) throw new CommandFailed(`the platform closed the logs of call ${callNum} before it ended: \`faas call get ${callNum}\` shows it`);
  if (end.truncated && !ctx.out.mode.json) ctx.out.note('(the platform cut these logs at its size limit)');
  if (isFinal(end.status) && end.status !== 'DONE') {
    const detail = errorExcerpt(end.error ?? '');
    throw new CommandFailed(`call ${callNum} ended ${end.status}${end.reason ? ` (${end.reason})` : ''}${detail ? `: ${detail}` : ''}`);
  }
}
