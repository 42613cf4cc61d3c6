import { randomUUID } from 'node:crypto';
import * as zmq from 'zeromq';
import { DbClient } from '../protocol/db-client';
import { decodeMessage, encodeRequest, isReply } from '../protocol/envelope';
import { createLogger } from '../protocol/log';
import type { MiniworkerToWorker, WorkerToMiniworker } from '../protocol/worker-messages';
import { loadMiniworkerConfig } from './config';
import { ContainerDriver } from './container-driver';
import { Miniworker } from './miniworker';

/**
 * A miniworker: a process of its own, started by its worker, that asks for work and drives one
 * container at a time. It reports each call's end to its worker after writing it to db-service.
 */
async function main(): Promise<void> {
  const { endpoint, routingId, dbEndpoint, nodeId, platformLabel } = loadMiniworkerConfig();
  const log = createLogger('miniworker', { node: nodeId, miniworker: routingId });
  const db = new DbClient(dbEndpoint, { log }).start();
  const miniworker = new Miniworker(new ContainerDriver(), db, { nodeId, platformLabel, log });
  const socket = new zmq.Dealer({ routingId, linger: 0 });
  socket.connect(endpoint);
  const send = <K extends keyof MiniworkerToWorker>(msgType: K, content: MiniworkerToWorker[K]) =>
    socket.send(encodeRequest(randomUUID(), msgType, content));

  let busy = false;
  let stopping = false;
  const exit = async (code: number) => {
    await miniworker.retire().catch(() => undefined);
    socket.close();
    db.close();
    process.exit(code);
  };
  const stop = () => {
    stopping = true;
    // A call in flight is finished first; its worker waits for us.
    if (!busy) void exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The worker is our parent; if it goes, so do we (and our container).
  process.on('disconnect', () => {
    miniworker.abandon();
    void exit(0);
  });

  await send('ready', { pid: process.pid });
  for await (const [frame] of socket) {
    let message;
    try {
      message = decodeMessage(frame);
    } catch (err) {
      log.warn({ err: String(err) }, 'dropped a malformed frame');
      continue;
    }
    if (isReply(message)) continue;
    busy = true;
    try {
      switch (message.msgType) {
        case 'job': {
          const job = message.content as WorkerToMiniworker['job'];
          try {
            const call = await miniworker.run(job);
            await send('done', { call, warm: miniworker.warmKey });
            await miniworker.cleanUp();
          } catch (err) {
            // Could not record the outcome (db-service unreachable): crash, so the worker reports the job lost.
            log.error({ callNum: job?.call?.callNum, err: String(err) }, 'call could not be completed');
            await exit(1);
          }
          break;
        }
        case 'prewarm':
        case 'stem': {
          const request = message.content as WorkerToMiniworker['prewarm'] | WorkerToMiniworker['stem'];
          const warming = message.msgType === 'stem' ? miniworker.stem(request as WorkerToMiniworker['stem']) : miniworker.prewarm(request as WorkerToMiniworker['prewarm']);
          const error = await warming.then(
            () => undefined,
            (err: unknown) => (err instanceof Error ? err.message : String(err)),
          );
          if (error) log.warn({ msgType: message.msgType, runtime: request?.runtime?.name, err: error }, 'warming a container failed');
          await send('warmed', { warm: miniworker.warmKey, ...(error ? { error } : {}) });
          break;
        }
        case 'retire':
          await miniworker.retire();
          await send('warmed', { warm: null });
          break;
        default:
          log.warn({ msgType: message.msgType }, 'dropped an unknown message');
      }
    } finally {
      busy = false;
    }
    if (stopping) await exit(0);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`miniworker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
