import { PlatformError } from '../../protocol/errors';
import type { ThreadDbAsk } from '../../protocol/miniworker-thread';
import { PortDb } from '../../miniworker/port-db';

/** A miniworker thread's db-service requests, made by its worker over the thread's port. */
describe('PortDb', () => {
  test('each request waits for the answer with its own id; an error answer is rebuilt with its code', async () => {
    const asked: ThreadDbAsk[] = [];
    const db = new PortDb((ask) => asked.push(ask));
    const started = db.startCall({ callNum: 5, by: 'miniworker', attempt: 1, node: 'n1', startedAt: '2026-12-01T10:00:00.000Z' });
    const stored = db.putOutputs(5, Buffer.from('zip'));
    expect(asked.map((a) => a.op)).toEqual(['startCall', 'putOutputs']);
    db.answer({ id: asked[1]!.id, ok: false, error: { code: 'STORE_UNAVAILABLE', message: 'disk full' } });
    db.answer({ id: 999, ok: true, data: 'nobody waits for this' });
    db.answer({ id: asked[0]!.id, ok: true, data: { applied: true } });
    await expect(started).resolves.toEqual({ applied: true });
    const err = await stored.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PlatformError);
    expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true });
  });

  test('an unanswered request fails DB_UNAVAILABLE (retryable) after its timeout; close() fails the rest and refuses new ones', async () => {
    const db = new PortDb(() => undefined, 50);
    await expect(db.putOutputs(1, Buffer.alloc(1))).rejects.toMatchObject({ code: 'DB_UNAVAILABLE', retryable: true });
    const slow = new PortDb(() => undefined, 60_000);
    const waiting = slow.putOutputs(2, Buffer.alloc(1));
    slow.close();
    await expect(waiting).rejects.toMatchObject({ code: 'DB_UNAVAILABLE' });
    await expect(slow.putOutputs(3, Buffer.alloc(1))).rejects.toMatchObject({ code: 'DB_UNAVAILABLE' });
  });
});
