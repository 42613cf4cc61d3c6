import * as zmq from 'zeromq';
import { Channel } from '../protocol/channel';
import { DbClient } from '../protocol/db-client';
import { createLogger } from '../protocol/log';
import { miniworkerToWorkerSchemas, workerToMiniworkerSchemas } from '../protocol/worker-messages';
import { loadMiniworkerConfig } from './config';
import { backendFromEnv } from '../protocol/backend';
import { miniworkerBackend } from './backend';
import { Miniworker } from './miniworker';
import { MiniworkerService } from './service';

/**
 * A miniworker as a process of its own (FAAS_MINIWORKER_KIND=process), started by its worker: it
 * asks for work on the worker's ROUTER and drives one container at a time. It reports each call's
 * end to its worker, which writes it to db-service. The thread kind is thread-main.ts.
 */
async function main(): Promise<void> {
  const { endpoint, routingId, dbEndpoint, nodeId, platformLabel, channelDir, secretsDir } = loadMiniworkerConfig();
  const log = createLogger('miniworker', { node: nodeId, miniworker: routingId });
  const db = new DbClient(dbEndpoint, { log }).start();
  const miniworker = new Miniworker(miniworkerBackend(backendFromEnv()), db, { nodeId, platformLabel, miniworkerId: routingId, log, channelDir, secretsDir });
  // A short linger: the last report leaves before the process exits.
  const socket = new zmq.Dealer({ routingId, linger: 1000 });

  let exiting = false;
  const exit = async (code: number) => {
    if (exiting) return;
    exiting = true;
    await miniworker.retire().catch(() => undefined);
    // The last report leaves first, unless the worker is gone (a send would wait for it forever).
    await Promise.race([channel.flush(), new Promise((r) => setTimeout(r, 1000))]);
    // Not awaited: exit may run inside a handler, which the channel's loop is waiting for.
    void channel.close();
    db.close();
    process.exit(code);
  };
  const service = new MiniworkerService(miniworker, { send: (msgType, content) => channel.send(msgType, content) }, log, exit);
  const channel: Channel<typeof workerToMiniworkerSchemas, typeof miniworkerToWorkerSchemas> = new Channel({
    name: 'worker',
    socket,
    inbound: workerToMiniworkerSchemas,
    log,
    // One message at a time, but a follow at once (see MiniworkerService.take).
    handlers: {
      job: (content) => service.take('job', content),
      prewarm: (content) => service.take('prewarm', content),
      stem: (content) => service.take('stem', content),
      retire: (content) => service.take('retire', content),
      follow: (content) => service.take('follow', content),
    },
  });

  process.on('SIGTERM', () => service.stop());
  process.on('SIGINT', () => service.stop());
  // The worker is our parent; if it goes, so do we (and our container).
  process.on('disconnect', () => {
    miniworker.abandon();
    void exit(0);
  });

  socket.connect(endpoint);
  channel.start();
  channel.send('ready', { pid: process.pid });
}

main().catch((err: unknown) => {
  process.stderr.write(`miniworker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
