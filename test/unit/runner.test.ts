import { finalPatch } from '../../miniworker/runner';

const caps = { maxResultBytes: 1024, maxLogBytes: 2048 };
const outcome = { exitCode: 0, stdout: '[1,2]\n', stderr: '', timedOut: false, oomKilled: false, stdoutTruncated: false, stderrTruncated: false };

describe('the final state of a process-mode call', () => {
  test('exit 0 is DONE with stdout, trailing newline trimmed', () => {
    expect(finalPatch(outcome, 1000, caps)).toMatchObject({ status: 'DONE', result: '[1,2]', exitCode: 0 });
  });
  test('non-zero is ERROR with the exit code and the tail of stderr', () => {
    const patch = finalPatch({ ...outcome, exitCode: 2, stderr: 'x'.repeat(5000) + 'the end' }, 1000, caps);
    expect(patch).toMatchObject({ status: 'ERROR', reason: 'exit_code', exitCode: 2 });
    expect(patch.error!.endsWith('the end')).toBe(true);
    expect(patch.error!.length).toBeLessThan(2100);
  });
  test('a timeout is TIMEOUT', () => {
    expect(finalPatch({ ...outcome, exitCode: null, timedOut: true }, 1000, caps)).toMatchObject({ status: 'TIMEOUT', reason: 'timeout' });
  });
  test('an out-of-memory kill is ERROR out_of_memory', () => {
    expect(finalPatch({ ...outcome, exitCode: 137, oomKilled: true }, 1000, caps)).toMatchObject({ status: 'ERROR', reason: 'out_of_memory' });
  });
  test('a result past its cap is refused: ERROR result_too_large, truncated', () => {
    expect(finalPatch({ ...outcome, stdoutTruncated: true }, 1000, caps)).toMatchObject({ status: 'ERROR', reason: 'result_too_large', truncated: true, result: '' });
  });
  test('a cut log is marked, in the record and in the text', () => {
    const patch = finalPatch({ ...outcome, stderr: 'e'.repeat(2048), stderrTruncated: true }, 1000, caps);
    expect(patch).toMatchObject({ status: 'DONE', truncated: true });
    expect(patch.stderr!.endsWith('[faas: output truncated at 2048 bytes]\n')).toBe(true);
  });
});
