import { z } from 'zod';
import { PlatformError } from './errors';
import { callReasonSchema } from './schemas';
import { isFinal, type Call, type CallReason, type CallStatus } from './types';

/**
 * The one lifecycle of a CALL. Every change of a call's state is a command checked here against the
 * call's current state and the role of whoever sends it; db-service applies nothing else. The table
 * is data: tests enumerate it and the README prints it.
 */

/** Who may send a command: the api, a worker (for its node), a miniworker (for the call it runs). */
export type Role = 'api' | 'worker' | 'miniworker';
export const ROLES: readonly Role[] = ['api', 'worker', 'miniworker'];

export type CallCommandName = 'create' | 'start' | 'finish' | 'fail' | 'requeue';

export interface Transition {
  command: CallCommandName;
  by: Role;
  from: readonly CallStatus[];
  to: readonly CallStatus[];
  /** The reasons an ERROR or TIMEOUT may carry when this role ends a call with this command. */
  reasons: readonly CallReason[];
  why: string;
}

/** What the function or its container decided: the reasons a miniworker reports. */
const RUN_REASONS: readonly CallReason[] = [
  'exit_code',
  'timeout',
  'handler_error',
  'handler_crashed',
  'out_of_memory',
  'result_too_large',
  'load_failed',
  'docker_error',
];

export const CALL_TRANSITIONS: readonly Transition[] = [
  { command: 'create', by: 'api', from: [], to: ['PENDING'], reasons: [], why: 'a request was accepted: the call is stored before it is answered' },
  { command: 'start', by: 'miniworker', from: ['PENDING'], to: ['RUNNING'], reasons: [], why: 'its container runs the call (in handler mode only for calls that last past 20 ms)' },
  { command: 'finish', by: 'miniworker', from: ['PENDING', 'RUNNING'], to: ['DONE', 'ERROR', 'TIMEOUT'], reasons: RUN_REASONS, why: 'the function answered, failed, ran out of time or its container failed' },
  {
    command: 'fail',
    by: 'worker',
    from: ['PENDING', 'RUNNING'],
    to: ['ERROR'],
    reasons: ['dependencies_failed', 'image_missing', 'docker_error', 'function_missing', 'worker_lost'],
    why: 'the node could not prepare the function, or the miniworker running the call died',
  },
  {
    command: 'fail',
    by: 'api',
    from: ['PENDING', 'RUNNING'],
    to: ['ERROR'],
    reasons: ['node_lost', 'orchestrator_restart', 'function_missing'],
    why: 'the node holding the call was lost, no node holds it after a restart, or its function version is gone',
  },
  { command: 'requeue', by: 'api', from: ['PENDING', 'RUNNING'], to: ['PENDING'], reasons: [], why: 'an idempotent function lost its node: the call runs once more (a new attempt)' },
];

/** A call runs at most this many times (a requeue starts a new attempt). */
export const MAX_ATTEMPTS = 2;

export function transitionFor(command: CallCommandName, by: Role): Transition | undefined {
  return CALL_TRANSITIONS.find((t) => t.command === command && t.by === by);
}

const reasonSchema = callReasonSchema;

const time = z.string().max(40);
const text = (max: number) => z.string().max(max);
const LOG_CHARS = 8 * 1024 * 1024;

/**
 * Every command names its call, its sender's role, and the attempt it belongs to: a report of an
 * earlier attempt (a node that came back after its call was queued again) is refused as stale.
 */
const base = {
  callNum: z.number().int().positive(),
  by: z.enum(['api', 'worker', 'miniworker']),
  attempt: z.number().int().min(1).max(MAX_ATTEMPTS).optional(),
};

export const startCommandSchema = z.object({ ...base, node: text(128), startedAt: time }).strict();

/** The outcome of a run, as the miniworker saw it. */
export const finishCommandSchema = z
  .object({
    ...base,
    status: z.enum(['DONE', 'ERROR', 'TIMEOUT']),
    result: text(LOG_CHARS).optional(),
    node: text(128).optional(),
    dispatchedAt: time.optional(),
    startedAt: time.optional(),
    endedAt: time.optional(),
    durationMs: z.number().finite().nonnegative().optional(),
    exitCode: z.number().int().finite().optional(),
    stdout: text(LOG_CHARS).optional(),
    stderr: text(LOG_CHARS).optional(),
    reason: reasonSchema.optional(),
    error: text(64 * 1024).optional(),
    truncated: z.boolean().optional(),
    coldStart: z.boolean().optional(),
    outputs: z.object({ bytes: z.number().int().nonnegative().finite(), truncated: z.boolean().optional() }).strict().optional(),
  })
  .strict();

export const failCommandSchema = z
  .object({ ...base, reason: reasonSchema, error: text(64 * 1024), node: text(128).optional(), stderr: text(LOG_CHARS).optional(), dispatchedAt: time.optional() })
  .strict();

export const requeueCommandSchema = z.object({ ...base, why: text(1024) }).strict();

export type StartCommand = z.infer<typeof startCommandSchema>;
export type FinishCommand = z.infer<typeof finishCommandSchema>;
export type FailCommand = z.infer<typeof failCommandSchema>;
export type RequeueCommand = z.infer<typeof requeueCommandSchema>;

export type CallCommand =
  | ({ command: 'start' } & StartCommand)
  | ({ command: 'finish' } & FinishCommand)
  | ({ command: 'fail' } & FailCommand)
  | ({ command: 'requeue' } & RequeueCommand);

/**
 * What a command did. `applied: false` is not an error: the call had already moved on (it was final,
 * or a newer attempt owns it), and `call` is what it is now. Each caller decides what that means to it.
 */
export type CommandResult = { applied: true; call: Call } | { applied: false; call: Call; refused: 'final' | 'stale' | 'state' };

/**
 * The pure core of every call write: the next state of `call` under `command`, or why it is refused.
 * A role that may not send the command, or a reason its role may not give, is an error (a bug or a
 * forged request); a call that has moved on is a refusal.
 */
export function applyCommand(call: Call, command: CallCommand, now: Date = new Date()): CommandResult {
  const transition = transitionFor(command.command, command.by);
  if (!transition) throw new PlatformError('FORBIDDEN', `a ${command.by} may not ${command.command} a call`);
  if (isFinal(call.status)) return { applied: false, call, refused: 'final' };
  const attempt = call.attempts ?? 1;
  if (command.attempt !== undefined && command.attempt !== attempt) return { applied: false, call, refused: 'stale' };
  if (!transition.from.includes(call.status)) return { applied: false, call, refused: 'state' };
  const at = now.toISOString();
  switch (command.command) {
    case 'start':
      return { applied: true, call: { ...call, status: 'RUNNING', node: command.node, startedAt: command.startedAt } };
    case 'finish': {
      checkReason(transition, command.status, command.reason);
      const { command: _c, by: _b, attempt: _a, callNum: _n, ...outcome } = command;
      return { applied: true, call: { ...call, ...outcome, endedAt: command.endedAt ?? at } };
    }
    case 'fail': {
      checkReason(transition, 'ERROR', command.reason);
      const { command: _c, by: _b, attempt: _a, callNum: _n, ...failure } = command;
      return { applied: true, call: { ...call, ...failure, status: 'ERROR', endedAt: at } };
    }
    case 'requeue': {
      if (attempt >= MAX_ATTEMPTS) return { applied: false, call, refused: 'state' };
      // The new attempt starts from nothing: what the lost one recorded does not carry over.
      const { node: _node, startedAt: _s, dispatchedAt: _d, ...rest } = call;
      return { applied: true, call: { ...rest, status: 'PENDING', attempts: attempt + 1 } };
    }
  }
}

function checkReason(transition: Transition, status: CallStatus, reason: CallReason | undefined): void {
  if (status === 'DONE') {
    if (reason !== undefined) throw new PlatformError('BAD_REQUEST', 'a DONE call has no reason');
    return;
  }
  if (reason === undefined) throw new PlatformError('BAD_REQUEST', `an ${status} call needs a reason`);
  if (!transition.reasons.includes(reason)) throw new PlatformError('FORBIDDEN', `a ${transition.by} may not end a call with reason ${reason}`);
}

/** The table as Markdown, for the README (a test keeps the two equal). */
export function transitionTable(): string {
  const rows = CALL_TRANSITIONS.map(
    (t) => `| \`${t.command}\` | ${t.by} | ${t.from.join(', ') || '—'} | ${t.to.join(', ')} | ${t.reasons.map((r) => `\`${r}\``).join(', ') || '—'} | ${t.why} |`,
  );
  return ['| command | by | from | to | reasons | when |', '|---|---|---|---|---|---|', ...rows].join('\n');
}
