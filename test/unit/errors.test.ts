import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ERROR_CODES, PlatformError, asPlatformError } from '../../protocol/errors';

describe('the error registry', () => {
  test('the codes documented in the README are exactly the registry, with the same statuses', () => {
    const readme = readFileSync(path.resolve(__dirname, '..', '..', 'README.md'), 'utf8');
    const documented = new Map<string, number>();
    for (const match of readme.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)) documented.set(match[1]!, Number(match[2]));
    const registry = new Map(Object.entries(ERROR_CODES).map(([code, spec]) => [code, spec.status as number]));
    expect(documented).toEqual(registry);
  });

  test('errors cross process boundaries as plain objects and are rebuilt', () => {
    const original = new PlatformError('RUNTIME_IN_USE', 'in use', { functions: ['f'] });
    const rebuilt = PlatformError.fromJSON(JSON.parse(JSON.stringify(original.toJSON())));
    expect(rebuilt).toBeInstanceOf(PlatformError);
    expect(rebuilt.code).toBe('RUNTIME_IN_USE');
    expect(rebuilt.status).toBe(409);
    expect(rebuilt.data).toEqual({ functions: ['f'] });
    expect(PlatformError.fromJSON({ code: 'NO_SUCH_CODE' as never, message: 'x' }).code).toBe('INTERNAL');
  });

  test('an unexpected error leaks neither its message nor its stack', () => {
    const hidden = asPlatformError(new Error('/secret/path/file.ts:12 exploded'));
    expect(hidden.code).toBe('INTERNAL');
    expect(hidden.message).not.toContain('/secret');
  });
});
