import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../protocol/log';
import type { FromMiniworkerThread, MiniworkerThreadData, ToMiniworkerThread } from '../protocol/miniworker-thread';
import { backendFromEnv } from '../protocol/backend';
import { miniworkerBackend } from './backend';
import { Miniworker } from './miniworker';
import { PortDb } from './port-db';
import { MiniworkerService } from './service';

/**
 * A miniworker as a thread of its worker (FAAS_MINIWORKER_KIND=thread, the default): the same
 * Miniworker as a process, driving one container at a time, with its worker's port in place of
 * sockets. Its messages take one postMessage each way instead of two ZeroMQ hops; its db-service
 * requests (RUNNING, outputs) are made by the worker. A thread costs megabytes where a process
 * costs tens, so a node can keep hundreds warm. It ends on a stop, or when the call in hand cannot
 * be completed (its worker then ends the call as lost), as a process would.
 */
function main(): void {
  const port = parentPort;
  if (!port) throw new Error('thread-main runs as a worker thread');
  const { routingId, nodeId, platformLabel, channelDir, secretsDir } = workerData as MiniworkerThreadData;
  const log = createLogger('miniworker', { node: nodeId, miniworker: routingId });
  const post = (message: FromMiniworkerThread) => port.postMessage(message);
  const db = new PortDb((content) => post({ msgType: 'db', content }));
  const miniworker = new Miniworker(miniworkerBackend(backendFromEnv()), db, { nodeId, platformLabel, miniworkerId: routingId, log, ...(secretsDir ? { secretsDir } : {}), ...(channelDir ? { channelDir: path.join(channelDir, routingId) } : {}) });

  let exiting = false;
  const exit = async (code: number) => {
    if (exiting) return;
    exiting = true;
    await miniworker.retire().catch(() => undefined);
    db.close();
    // In a thread this ends the thread only; what it posted before is delivered.
    process.exit(code);
  };
  const service = new MiniworkerService(miniworker, { send: (msgType, content) => post({ msgType, content } as FromMiniworkerThread) }, log, exit);

  // The worker's messages one at a time (see MiniworkerService.take); db answers and stops are taken at once.
  port.on('message', (message: ToMiniworkerThread) => {
    switch (message.msgType) {
      case 'dbAnswer':
        return db.answer(message.content);
      case 'stop':
        return service.stop();
      default:
        return service.take(message.msgType, message.content as never);
    }
  });
  post({ msgType: 'ready', content: { pid: process.pid } });
}

main();
