import pino from 'pino';
import { DbServer } from '../../db-service/server';
import type { PlatformStore } from '../../db-service/store';
import { DbClient } from '../../protocol/db-client';
import { MAX_FRAME_BYTES } from '../../protocol/envelope';
import { ERROR_CODES } from '../../protocol/errors';
import type { Call } from '../../protocol/types';

/** db-service's real request/reply front over real ZeroMQ sockets; the store is a seam that answers one call. */
describe('a db-service reply past the frame cap', () => {
  let server: DbServer;
  let client: DbClient;
  const huge: Call = { callNum: 1, funcName: 'f', params: {}, status: 'DONE', result: 'x'.repeat(MAX_FRAME_BYTES), createdAt: new Date().toISOString() };
  const small: Call = { ...huge, callNum: 2, result: 'ok' };
  const warnings: unknown[] = [];

  beforeAll(async () => {
    const store = { getCall: async (n: number) => (n === 1 ? huge : n === 2 ? small : null) } as unknown as PlatformStore;
    const log = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line)) });
    server = new DbServer(store, log);
    const endpoint = await server.bind('tcp://127.0.0.1:*');
    client = new DbClient(endpoint, { timeoutMs: 20_000 }).start();
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
  });

  test('is answered REPLY_TOO_LARGE, not left to time out, and the socket goes on serving', async () => {
    // A dropped reply would have ended in the client's own timeout, as DB_UNAVAILABLE.
    await expect(client.getCall(1)).rejects.toMatchObject({ code: 'REPLY_TOO_LARGE', message: expect.stringMatching(/past the \d+-byte frame cap/) });
    expect(await client.getCall(2)).toEqual(small);
    expect(warnings).toEqual(expect.arrayContaining([expect.objectContaining({ msg: 'an answer to the db client is past the frame cap' })]));
  });

  test('the code is in the registry: not retryable, a server error', () => {
    expect(ERROR_CODES.REPLY_TOO_LARGE).toMatchObject({ status: 500, retryable: false });
  });
});
