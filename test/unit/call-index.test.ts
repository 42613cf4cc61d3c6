import { indexOps, listed, unindexOps } from '../../db-service/call-index';
import type { Call } from '../../protocol/types';

function call(over: Partial<Call> = {}): Call {
  return { callNum: 7, funcName: 'greet', params: {}, status: 'PENDING', result: '', createdAt: '2026-01-02T03:04:05.006Z', ...over };
}

const keys = (ops: Array<{ type: string; key: string }>, type: 'put' | 'del') =>
  ops
    .filter((o) => o.type === type)
    .map((o) => o.key)
    .sort();

describe('the call indexes', () => {
  test('a new call is put in every index', () => {
    const ops = indexOps(undefined, call());
    expect(ops.every((o) => o.type === 'put')).toBe(true);
    expect(ops).toEqual(
      expect.arrayContaining([
        { type: 'put', key: 'ix:f:greet:000000000007', value: '2026-01-02T03:04:05.006Z' },
        { type: 'put', key: 'ix:s:PENDING:000000000007', value: '2026-01-02T03:04:05.006Z' },
        { type: 'put', key: 'ix:fs:greet:PENDING:000000000007', value: '2026-01-02T03:04:05.006Z' },
        { type: 'put', key: 'ix:t:2026-01-02T03:04:05.006Z:000000000007', value: 7 },
      ]),
    );
    expect(ops).toHaveLength(4);
  });

  test('a change of status moves the status keys and leaves the others alone', () => {
    const ops = indexOps(call(), call({ status: 'RUNNING', node: 'n1' }));
    expect(keys(ops, 'del')).toEqual(['ix:fs:greet:PENDING:000000000007', 'ix:s:PENDING:000000000007']);
    expect(keys(ops, 'put')).toEqual(['ix:fs:greet:RUNNING:000000000007', 'ix:s:RUNNING:000000000007']);
  });

  test('a write that changes no indexed field writes no index key', () => {
    expect(indexOps(call({ status: 'RUNNING' }), call({ status: 'RUNNING', startedAt: 'x', stdout: 'hello' }))).toEqual([]);
  });

  test('a removed call leaves every index', () => {
    const c = call({ status: 'DONE' });
    expect(keys(unindexOps(c), 'del')).toEqual(keys(indexOps(undefined, c), 'put'));
  });

  test('a name that could reach into another key is encoded', () => {
    const ops = indexOps(undefined, call({ funcName: 'a:DONE' }));
    expect(ops.map((o) => o.key)).toContain('ix:f:a%3ADONE:000000000007');
    expect(ops.map((o) => o.key)).toContain('ix:fs:a%3ADONE:PENDING:000000000007');
  });

  test('a listed call has no logs and keeps everything else', () => {
    const c = call({ status: 'DONE', result: 'r', stdout: 'out', stderr: 'err', truncated: true });
    const item = listed(c);
    expect(item).not.toHaveProperty('stdout');
    expect(item).not.toHaveProperty('stderr');
    expect(item).toEqual({ callNum: 7, funcName: 'greet', params: {}, status: 'DONE', result: 'r', createdAt: c.createdAt, truncated: true });
  });
});
