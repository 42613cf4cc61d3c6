import * as zmq from 'zeromq';
import { Channel } from '../protocol/channel';
import { DbClient } from '../protocol/db-client';
import { createLogger } from '../protocol/log';
import { miniworkerToWorkerSchemas, workerToMiniworkerSchemas, type Prewarm, type Stem } from '../protocol/worker-messages';
import { loadMiniworkerConfig } from './config';
import { ContainerDriver } from './container-driver';
import { Miniworker } from './miniworker';

/**
 * A miniworker: a process of its own, started by its worker, that asks for work and drives one
 * container at a time. It reports each call's end to its worker, which writes it to db-service.
 */
async function main(): Promise<void> {
  const { endpoint, routingId, dbEndpoint, nodeId, platformLabel, channelDir } = loadMiniworkerConfig();
  const log = createLogger('miniworker', { node: nodeId, miniworker: routingId });
  const db = new DbClient(dbEndpoint, { log }).start();
  const miniworker = new Miniworker(new ContainerDriver(), db, { nodeId, platformLabel, miniworkerId: routingId, log, channelDir });
  // A short linger: the last report leaves before the process exits.
  const socket = new zmq.Dealer({ routingId, linger: 1000 });

  let busy = false;
  let stopping = false;
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
  /** One message at a time (the channel is serial); a stop asked for meanwhile waits for it. */
  const serving =
    <T>(handle: (content: T) => Promise<void>) =>
    async (content: T): Promise<void> => {
      busy = true;
      try {
        await handle(content);
      } finally {
        busy = false;
      }
      if (stopping) await exit(0);
    };
  const warm = async (msgType: 'prewarm' | 'stem', warming: Promise<void>, runtime: string) => {
    const error = await warming.then(
      () => undefined,
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    if (error) log.warn({ msgType, runtime, err: error }, 'warming a container failed');
    channel.send('warmed', { warm: miniworker.warmKey, ...(error ? { error: error.slice(0, 60_000) } : {}) });
  };

  const channel: Channel<typeof workerToMiniworkerSchemas, typeof miniworkerToWorkerSchemas> = new Channel({
    name: 'worker',
    socket,
    inbound: workerToMiniworkerSchemas,
    log,
    serial: true,
    handlers: {
      job: serving(async (job) => {
        try {
          // The outcome goes to the worker as soon as the container is free; the worker writes it.
          const finish = await miniworker.run(job);
          channel.send('done', { finish, warm: miniworker.warmKey });
          await miniworker.cleanUp();
        } catch (err) {
          // The call could not be run to an outcome (the worker is gone, outputs could not be kept): crash,
          // so that the worker, if it is there, ends the job as lost.
          log.error({ callNum: job.call.callNum, err: String(err) }, 'call could not be completed');
          await exit(1);
        }
      }),
      prewarm: serving((request: Prewarm) => warm('prewarm', miniworker.prewarm(request), request.runtime.name)),
      stem: serving((request: Stem) => warm('stem', miniworker.stem(request), request.runtime.name)),
      retire: serving(async () => {
        await miniworker.retire();
        channel.send('warmed', { warm: null });
      }),
    },
  });

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

  socket.connect(endpoint);
  channel.start();
  channel.send('ready', { pid: process.pid });
}

main().catch((err: unknown) => {
  process.stderr.write(`miniworker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
