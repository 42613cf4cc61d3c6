import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  CALL_TRANSITIONS,
  MAX_ATTEMPTS,
  ROLES,
  applyCommand,
  transitionTable,
  type CallCommand,
  type CallCommandName,
  type Role,
} from '../../protocol/call-lifecycle';
import { PlatformError } from '../../protocol/errors';
import type { Call, CallReason, CallStatus } from '../../protocol/types';

const STATUSES: CallStatus[] = ['PENDING', 'RUNNING', 'DONE', 'ERROR', 'TIMEOUT'];
const COMMANDS: Exclude<CallCommandName, 'create'>[] = ['start', 'finish', 'fail', 'requeue'];

function call(status: CallStatus, extra: Partial<Call> = {}): Call {
  return { callNum: 7, funcName: 'f', params: {}, status, result: '', createdAt: '2026-01-01T00:00:00.000Z', ...extra };
}

/** A well-formed command of each kind, with a reason the table allows for that role when it needs one. */
function command(name: Exclude<CallCommandName, 'create'>, by: Role, reason?: CallReason): CallCommand {
  switch (name) {
    case 'start':
      return { command: 'start', callNum: 7, by, node: 'n1', startedAt: '2026-01-01T00:00:01.000Z' };
    case 'finish':
      return reason ? { command: 'finish', callNum: 7, by, status: 'ERROR', reason, error: 'x' } : { command: 'finish', callNum: 7, by, status: 'DONE', result: '42' };
    case 'fail':
      return { command: 'fail', callNum: 7, by, reason: reason ?? 'node_lost', error: 'x' };
    case 'requeue':
      return { command: 'requeue', callNum: 7, by, why: 'test' };
  }
}

describe('the call lifecycle table', () => {
  test('every command × role × status is either in the table or refused, and nothing leaves a final state', () => {
    for (const name of COMMANDS) {
      for (const by of ROLES) {
        const row = CALL_TRANSITIONS.find((t) => t.command === name && t.by === by);
        const reason = row && row.reasons.length > 0 && name !== 'finish' ? row.reasons[0] : undefined;
        for (const status of STATUSES) {
          const attempt = () => applyCommand(call(status), command(name, by, reason));
          if (!row) {
            expect(attempt).toThrow(PlatformError);
            continue;
          }
          const result = attempt();
          if (['DONE', 'ERROR', 'TIMEOUT'].includes(status)) {
            expect(result).toMatchObject({ applied: false, refused: 'final' });
            expect(result.call.status).toBe(status);
          } else if (row.from.includes(status)) {
            expect(result.applied).toBe(true);
            expect(row.to).toContain(result.call.status);
          } else {
            expect(result).toMatchObject({ applied: false, refused: 'state' });
          }
        }
      }
    }
  });

  test('a reason the role may not give is refused; DONE carries none, ERROR needs one', () => {
    expect(() => applyCommand(call('RUNNING'), command('fail', 'worker', 'node_lost'))).toThrow(/may not end a call with reason node_lost/);
    expect(() => applyCommand(call('RUNNING'), command('fail', 'api', 'dependencies_failed'))).toThrow(/may not/);
    expect(() => applyCommand(call('RUNNING'), command('finish', 'miniworker', 'orchestrator_restart'))).toThrow(/may not/);
    expect(() => applyCommand(call('RUNNING'), { command: 'finish', callNum: 7, by: 'miniworker', status: 'ERROR' })).toThrow(/needs a reason/);
    expect(() => applyCommand(call('RUNNING'), { command: 'finish', callNum: 7, by: 'miniworker', status: 'DONE', reason: 'exit_code' })).toThrow(/no reason/);
  });

  test('finish keeps the outcome and sets endedAt; fail keeps the reason', () => {
    const done = applyCommand(call('RUNNING', { node: 'n1' }), { command: 'finish', callNum: 7, by: 'miniworker', status: 'DONE', result: '"ok"', durationMs: 3, dispatchedAt: '2026-01-01T00:00:00.500Z' });
    expect(done.call).toMatchObject({ status: 'DONE', result: '"ok"', durationMs: 3, node: 'n1', dispatchedAt: '2026-01-01T00:00:00.500Z' });
    expect(done.call.endedAt).toEqual(expect.any(String));
    expect(done.call).not.toHaveProperty('by');
    const failed = applyCommand(call('PENDING'), { command: 'fail', callNum: 7, by: 'api', reason: 'function_missing', error: 'gone' });
    expect(failed.call).toMatchObject({ status: 'ERROR', reason: 'function_missing', error: 'gone' });
  });

  test('a requeue starts a new attempt, bounded; reports of the old attempt are stale', () => {
    const again = applyCommand(call('RUNNING', { node: 'n1', startedAt: 'x' }), { command: 'requeue', callNum: 7, by: 'api', attempt: 1, why: 'node_lost' });
    expect(again).toMatchObject({ applied: true, call: { status: 'PENDING', attempts: 2 } });
    expect(again.call.node).toBeUndefined();
    expect(applyCommand(again.call, { command: 'finish', callNum: 7, by: 'miniworker', attempt: 1, status: 'DONE' })).toMatchObject({ applied: false, refused: 'stale' });
    expect(applyCommand(again.call, { command: 'finish', callNum: 7, by: 'miniworker', attempt: 2, status: 'DONE' }).applied).toBe(true);
    const last = call('RUNNING', { attempts: MAX_ATTEMPTS });
    expect(applyCommand(last, { command: 'requeue', callNum: 7, by: 'api', why: 'node_lost' })).toMatchObject({ applied: false, refused: 'state' });
  });

  test('the README shows the table as the code has it', () => {
    const readme = readFileSync(path.resolve(__dirname, '..', '..', 'README.md'), 'utf8');
    expect(readme).toContain(transitionTable());
  });
});
