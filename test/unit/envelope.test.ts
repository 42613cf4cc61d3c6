import { decodeMessage, encodeReply, encodeRequest, PROTOCOL_VERSION } from '../../protocol/envelope';
import { PlatformError } from '../../protocol/errors';

describe('the message envelope', () => {
  test('a request and a reply survive a round trip', () => {
    expect(decodeMessage(encodeRequest('1', 'createCall', { funcName: 'f' }))).toEqual({ v: PROTOCOL_VERSION, id: '1', msgType: 'createCall', content: { funcName: 'f' } });
    expect(decodeMessage(encodeReply('2', { ok: true, data: [1] }))).toEqual({ v: PROTOCOL_VERSION, id: '2', ok: true, data: [1] });
    expect(decodeMessage(encodeReply('3', { ok: false, error: { code: 'CALL_NOT_FOUND', message: 'no' } }))).toMatchObject({ ok: false, error: { code: 'CALL_NOT_FOUND' } });
  });

  test.each([
    ['not JSON', Buffer.from('{nope'), 'PROTOCOL_ERROR'],
    ['not an object', Buffer.from('42'), 'PROTOCOL_ERROR'],
    ['another version', Buffer.from(JSON.stringify({ v: 99, id: '1', msgType: 'ping', content: {} })), 'VERSION_MISMATCH'],
    ['no id', Buffer.from(JSON.stringify({ v: PROTOCOL_VERSION, msgType: 'ping', content: {} })), 'PROTOCOL_ERROR'],
    ['empty frame', undefined, 'PROTOCOL_ERROR'],
  ])('%s is refused with a PlatformError', (_name, frame, code) => {
    let thrown: unknown;
    try {
      decodeMessage(frame as Buffer | undefined);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(PlatformError);
    expect((thrown as PlatformError).code).toBe(code);
  });

  test('an oversized frame is refused before it is parsed', () => {
    expect(() => decodeMessage(Buffer.alloc(2048, 0x20), 1024)).toThrow(/exceeds/);
  });
});
