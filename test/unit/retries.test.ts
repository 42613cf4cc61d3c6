import { retriesOn } from '../../api/platform';
import type { Call, CallReason, CallStatus } from '../../protocol/types';

/** Which ends a function's retries cover. */
const end = (status: CallStatus, reason?: CallReason): Call => ({ callNum: 1, funcName: 'f', params: {}, status, result: '', createdAt: '', ...(reason ? { reason } : {}) });

describe('retries cover', () => {
  test('by default the ends the platform caused: a lost node, worker or container', () => {
    const retries = { max: 3 };
    for (const reason of ['worker_lost', 'node_lost', 'orchestrator_restart', 'docker_error'] as const) expect([reason, retriesOn(end('ERROR', reason), retries)]).toEqual([reason, true]);
    for (const reason of ['handler_error', 'exit_code', 'out_of_memory', 'handler_crashed', 'load_failed', 'result_too_large'] as const) expect([reason, retriesOn(end('ERROR', reason), retries)]).toEqual([reason, false]);
    expect(retriesOn(end('ERROR'), retries)).toBe(false);
    expect(retriesOn(end('TIMEOUT', 'timeout'), retries)).toBe(false);
    expect(retriesOn(end('DONE'), retries)).toBe(false);
  });

  test('timeouts when asked; any error or timeout with on: any', () => {
    expect(retriesOn(end('TIMEOUT', 'timeout'), { max: 1, timeouts: true })).toBe(true);
    expect(retriesOn(end('ERROR', 'handler_error'), { max: 1, timeouts: true })).toBe(false);
    expect(retriesOn(end('ERROR', 'handler_error'), { max: 1, on: 'any' })).toBe(true);
    expect(retriesOn(end('TIMEOUT', 'timeout'), { max: 1, on: 'any' })).toBe(true);
    expect(retriesOn(end('DONE'), { max: 1, on: 'any' })).toBe(false);
  });
});
