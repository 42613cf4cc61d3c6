import { fitFrame } from '../../miniworker/call-recorder';
import type { FinishCommand } from '../../protocol/call-lifecycle';
import { MAX_FRAME_BYTES } from '../../protocol/envelope';

describe('the end of a call fits in one frame', () => {
  test('logs of control bytes past the frame are cut, the longer first, and the call marked truncated', () => {
    // 1 MiB of \x01 is 6 MiB once JSON-escaped: three of them are past the 16 MiB frame.
    const command: FinishCommand = { callNum: 1, by: 'miniworker', status: 'DONE', result: JSON.stringify('\x01'.repeat(1024 * 1024)), stdout: '\x01'.repeat(1024 * 1024), stderr: '\x01'.repeat(2 * 1024 * 1024) };
    expect(Buffer.byteLength(JSON.stringify(command))).toBeGreaterThan(MAX_FRAME_BYTES);
    fitFrame(command, { a: 1 });
    expect(Buffer.byteLength(JSON.stringify(command))).toBeLessThan(MAX_FRAME_BYTES - 1024 * 1024);
    expect(command.truncated).toBe(true);
    expect(command.stderr!.endsWith('[faas: output cut to fit the call record]\n')).toBe(true);
    expect(command.result).toBe(JSON.stringify('\x01'.repeat(1024 * 1024)));
  });

  test('a call that fits is left as it is', () => {
    const command: FinishCommand = { callNum: 1, by: 'miniworker', status: 'DONE', result: '1', stdout: 'hello\n', stderr: '' };
    fitFrame(command, {});
    expect(command).toEqual({ callNum: 1, by: 'miniworker', status: 'DONE', result: '1', stdout: 'hello\n', stderr: '' });
  });
});
