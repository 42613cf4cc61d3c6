import { PlatformError } from '../../protocol/errors';
import { checkParamsDepth, jsonDepth } from '../../api/requests';

const nested = (depth: number): unknown => {
  let value: unknown = [];
  for (let i = 1; i < depth; i++) value = [value];
  return value;
};

describe('the depth of params', () => {
  test.each([
    [1, 0],
    ['text', 0],
    [null, 0],
    [{}, 1],
    [[], 1],
    [{ a: 1, b: [1, 2] }, 2],
    [{ a: { b: { c: {} } }, d: [] }, 4],
    [nested(1500), 1500],
  ])('%#: depth %p', (value, depth) => {
    expect(jsonDepth(value)).toBe(depth);
  });

  test('is counted without recursion, and stops past the limit', () => {
    expect(jsonDepth(nested(200_000))).toBe(200_000);
    expect(jsonDepth(nested(200_000), 100)).toBe(101);
  });

  test('past the bound, params are refused with BAD_REQUEST naming the setting', () => {
    expect(() => checkParamsDepth(nested(100), 100)).not.toThrow();
    try {
      checkParamsDepth(nested(101), 100);
      throw new Error('not refused');
    } catch (err) {
      expect(err).toBeInstanceOf(PlatformError);
      expect((err as PlatformError).code).toBe('BAD_REQUEST');
      expect((err as PlatformError).message).toMatch(/deeper than 100 levels \(FAAS_MAX_PARAMS_DEPTH\)/);
    }
  });
});
