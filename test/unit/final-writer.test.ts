import type { FinishCommand } from '../../protocol/call-lifecycle';
import type { FinishOutcome } from '../../protocol/db-client';
import { PlatformError } from '../../protocol/errors';
import type { Logger } from '../../protocol/log';
import type { Call } from '../../protocol/types';
import { FinalWriter } from '../../worker/final-writer';

/** The worker's writer of outcomes against a db-service faked at its client. */

const log = { warn: jest.fn(), error: jest.fn() } as unknown as Logger;

function finish(callNum: number, extra: Partial<FinishCommand> = {}): FinishCommand {
  return { callNum, by: 'miniworker', attempt: 1, status: 'DONE', result: String(callNum), ...extra };
}

function stored(command: FinishCommand): Call {
  return { callNum: command.callNum, funcName: 'f', params: {}, status: command.status, createdAt: 'now', result: command.result, ...(command.error ? { error: command.error } : {}) } as Call;
}

/** A db whose answer to each request the test decides; it records every request. */
function fakeDb(answer: (commands: FinishCommand[], nth: number) => FinishOutcome[] | PlatformError) {
  const requests: FinishCommand[][] = [];
  return {
    requests,
    db: {
      finishCalls: async (commands: FinishCommand[]) => {
        requests.push(commands);
        const reply = answer(commands, requests.length);
        if (reply instanceof PlatformError) throw reply;
        return reply;
      },
    },
  };
}

const applied = (commands: FinishCommand[]): FinishOutcome[] => commands.map((c) => ({ ok: true, result: { applied: true, call: stored(c) } }));

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met within 10 s');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('the final writer', () => {
  test('outcomes reported in the same turn go in one request; each call is reported as stored', async () => {
    const { db, requests } = fakeDb(applied);
    const recorded: Call[] = [];
    const writer = new FinalWriter({ db, log, recorded: (call) => recorded.push(call), givenUp: jest.fn() });
    for (let i = 1; i <= 5; i++) writer.add(finish(i));
    expect(writer.pending).toBe(5);
    await writer.drained();
    expect(requests.map((r) => r.map((c) => c.callNum))).toEqual([[1, 2, 3, 4, 5]]);
    expect(recorded.map((c) => c.callNum)).toEqual([1, 2, 3, 4, 5]);
    expect(writer.pending).toBe(0);
  });

  test('while db-service is away the outcomes wait and are written when it is back, none lost', async () => {
    const { db, requests } = fakeDb((commands, nth) => (nth <= 2 ? new PlatformError('DB_UNAVAILABLE', 'away') : applied(commands)));
    const recorded: number[] = [];
    const writer = new FinalWriter({ db, log, recorded: (call) => recorded.push(call.callNum), givenUp: jest.fn() });
    writer.add(finish(1));
    writer.add(finish(2));
    await until(() => requests.length >= 1);
    writer.add(finish(3));
    await writer.drained();
    expect(recorded.sort()).toEqual([1, 2, 3]);
    expect(requests.length).toBeGreaterThanOrEqual(3);
  });

  test('a batch refused whole is split to find the outcome at fault, which is then recorded as a platform error', async () => {
    const bad = (c: FinishCommand) => c.result === 'bad';
    const { db, requests } = fakeDb((commands) => {
      if (commands.some(bad)) return new PlatformError('BAD_REQUEST', 'finishCalls: a result db-service will not store');
      return applied(commands);
    });
    const recorded: Call[] = [];
    const givenUp = jest.fn();
    const writer = new FinalWriter({ db, log, recorded: (call) => recorded.push(call), givenUp });
    writer.add(finish(1));
    writer.add(finish(2, { result: 'bad' }));
    writer.add(finish(3));
    await writer.drained();
    expect(recorded.map((c) => [c.callNum, c.status])).toEqual([
      [1, 'DONE'],
      [3, 'DONE'],
      [2, 'ERROR'],
    ]);
    expect(recorded[2]!.error).toMatch(/^the outcome could not be recorded: finishCalls: a result db-service will not store/);
    expect(requests[0]!.length).toBe(3);
    expect(givenUp).not.toHaveBeenCalled();
  });

  test('an outcome refused even as a platform error is given up to the worker, and the others still land', async () => {
    const { db } = fakeDb((commands) => commands.map((c) => (c.callNum === 2 ? { ok: false, error: new PlatformError('BAD_REQUEST', 'never').toJSON() } : { ok: true, result: { applied: true, call: stored(c) } })));
    const recorded: number[] = [];
    const givenUp = jest.fn();
    const writer = new FinalWriter({ db, log, recorded: (call) => recorded.push(call.callNum), givenUp });
    writer.add(finish(1));
    writer.add(finish(2));
    await writer.drained();
    expect(recorded).toEqual([1]);
    expect(givenUp).toHaveBeenCalledTimes(1);
    expect(givenUp.mock.calls[0][0]).toMatchObject({ callNum: 2, status: 'ERROR', reason: 'docker_error' });
  });

  test('a call that moved on meanwhile is reported as it is stored', async () => {
    const { db } = fakeDb((commands) => commands.map((c) => ({ ok: true, result: { applied: false, refused: 'final', call: { ...stored(c), status: 'ERROR', reason: 'node_lost' } as Call } })));
    const recorded: Call[] = [];
    const writer = new FinalWriter({ db, log, recorded: (call) => recorded.push(call), givenUp: jest.fn() });
    writer.add(finish(9));
    await writer.drained();
    expect(recorded).toMatchObject([{ callNum: 9, status: 'ERROR', reason: 'node_lost' }]);
  });

  test('stop hands back what was not written and ends the waiting', async () => {
    const { db } = fakeDb(() => new PlatformError('DB_UNAVAILABLE', 'away'));
    const writer = new FinalWriter({ db, log, recorded: jest.fn(), givenUp: jest.fn() });
    writer.add(finish(1));
    const waiting = writer.drained();
    await new Promise((r) => setTimeout(r, 50));
    // The first try failed and the outcome waits for the next: it is handed back.
    const left = writer.stop();
    await waiting;
    expect(left.map((p) => p.command.callNum)).toEqual([1]);
    expect(writer.pending).toBe(0);
  });
});
