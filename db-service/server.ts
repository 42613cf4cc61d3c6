import * as zmq from 'zeromq';
import type { FailCommand, FinishCommand, RequeueCommand, StartCommand } from '../protocol/call-lifecycle';
import { Channel, type Handlers, type Received } from '../protocol/channel';
import { serverCurveOptions } from '../protocol/curve';
import { dbRequestSchemas, type DbMsgType } from '../protocol/db-messages';
import { MAX_FRAME_BYTES } from '../protocol/envelope';
import { asPlatformError, PlatformError } from '../protocol/errors';
import type { Logger } from '../protocol/log';
import { authorize } from '../protocol/zap';
import type { PlatformStore } from './store';

type Operations = typeof dbRequestSchemas;

/**
 * db-service's request/reply front: a ROUTER on the platform's one channel class, so many clients
 * are served at once, every request is checked against the schema of its operation, and each is
 * answered — with its data, or an error — so that no client waits out its timeout. Before an
 * operation runs, the peer's role must allow it, and a request whose sender has stopped waiting
 * is not applied.
 */
export class DbServer {
  private readonly socket = new zmq.Router({ linger: 0, receiveHighWaterMark: 0, sendHighWaterMark: 0, maxMessageSize: MAX_FRAME_BYTES, ...serverCurveOptions(process.env, 'db') });
  private readonly channel: Channel<Operations, Record<string, never>>;
  /** Requests that arrived after their sender stopped waiting, since this start. */
  expired = 0;

  constructor(
    private readonly store: PlatformStore,
    log: Logger,
  ) {
    const handlers = Object.fromEntries(
      (Object.keys(dbRequestSchemas) as DbMsgType[]).map((op) => [op, (content: unknown, from: string, received: Received) => this.serve(op, content, from, received)]),
    ) as unknown as Handlers<Operations>;
    this.channel = new Channel({ name: 'db client', socket: this.socket, inbound: dbRequestSchemas, replies: true, handlers, log });
  }

  async bind(endpoint: string): Promise<string> {
    await this.socket.bind(endpoint);
    this.channel.start();
    return this.socket.lastEndpoint ?? endpoint;
  }

  async close(): Promise<void> {
    await this.channel.close();
  }

  private serve(op: DbMsgType, content: unknown, from: string, received: Received): Promise<unknown> {
    if (received.deadline !== undefined && Date.now() > received.deadline) {
      this.expired += 1;
      throw new PlatformError('REQUEST_EXPIRED', `${op} arrived after its deadline and was not applied`);
    }
    const peerRole = authorize(Buffer.from(from, 'latin1'), op);
    // A lifecycle command names its sender's role; a node's key may speak only for a node.
    const commands = op === 'finishCalls' ? (content as { commands: Array<{ by?: unknown }> }).commands : [content as { by?: unknown }];
    for (const { by: claimed } of commands) {
      if (typeof claimed === 'string' && peerRole !== 'api' && claimed !== 'worker' && claimed !== 'miniworker') {
        throw new PlatformError('FORBIDDEN', `a ${peerRole} may not send ${op} as the ${claimed}`);
      }
    }
    return this.run(op, content as never, received.deadline);
  }

  private run(op: DbMsgType, input: never, deadline: number | undefined): Promise<unknown> {
    const s = this.store;
    const operations: Record<DbMsgType, (c: never) => Promise<unknown>> = {
      ping: async () => ({ ok: true, calls: s.callCount, lateResults: s.lateResults, expired: this.expired, writable: s.writable, ...(s.writeError ? { writeError: s.writeError } : {}) }),
      putRuntime: (c: { runtime: Parameters<PlatformStore['putRuntime']>[0] }) => s.putRuntime(c.runtime),
      getRuntime: (c: { name: string }) => s.getRuntime(c.name),
      listRuntimes: () => s.listRuntimes(),
      deleteRuntime: (c: { name: string }) => s.deleteRuntime(c.name),
      putFunction: (c: { fn: Parameters<PlatformStore['putFunction']>[0] }) => s.putFunction(c.fn),
      getFunction: (c: { name: string }) => s.getFunction(c.name),
      listFunctions: () => s.listFunctions(),
      deleteFunction: (c: { name: string }) => s.deleteFunction(c.name),
      listFunctionVersions: (c: { name: string }) => s.listFunctionVersions(c.name),
      getFunctionVersion: (c: { name: string; version: string }) => s.getFunctionVersion(c.name, c.version),
      createCall: (c: Parameters<PlatformStore['createCall']>[0]) => s.createCall(c, undefined, deadline),
      putDeadLetter: (c: { callNum: number }) => s.putDeadLetter(c.callNum),
      putSecret: (c: { name: string; value: string }) => s.putSecret(c.name, c.value),
      listSecrets: () => s.listSecrets(),
      getSecret: (c: { name: string }) => s.getSecret(c.name),
      deleteSecret: (c: { name: string }) => s.deleteSecret(c.name),
      getSecretValues: (c: { names: string[] }) => s.getSecretValues(c.names),
      putCallback: (c: { record: Parameters<PlatformStore['putCallback']>[0] }) => s.putCallback(c.record),
      getCallback: (c: { callNum: number }) => s.getCallback(c.callNum),
      pendingCallbacks: (c: { limit?: number }) => s.pendingCallbacks(c.limit),
      putTrigger: (c: { trigger: Parameters<PlatformStore['putTrigger']>[0] }) => s.putTrigger(c.trigger),
      getTrigger: (c: { name: string }) => s.getTrigger(c.name),
      listTriggers: () => s.listTriggers(),
      deleteTrigger: (c: { name: string }) => s.deleteTrigger(c.name),
      fireTrigger: (c: { name: string; tick: string; call: Parameters<PlatformStore['createCall']>[0] }) => s.fireTrigger(c.name, c.tick, c.call),
      createCallOnce: (c: Parameters<PlatformStore['createCallOnce']>[0]) => s.createCallOnce(c, deadline),
      startCall: (c: StartCommand) => s.applyCall({ command: 'start', ...c }),
      finishCall: (c: FinishCommand) => s.applyCall({ command: 'finish', ...c }),
      // Applied side by side, so their writes go to disk in one group commit; each gets its own answer.
      finishCalls: (c: { commands: FinishCommand[] }) =>
        Promise.all(
          c.commands.map((command) =>
            s.applyCall({ command: 'finish', ...command }).then(
              (result) => ({ ok: true as const, result }),
              (err: unknown) => ({ ok: false as const, error: asPlatformError(err).toJSON() }),
            ),
          ),
        ),
      failCall: (c: FailCommand) => s.applyCall({ command: 'fail', ...c }),
      requeueCall: (c: RequeueCommand) => s.applyCall({ command: 'requeue', ...c }),
      unfinishedCalls: (c: { limit?: number }) => s.unfinishedCalls(c.limit),
      putNode: (c: { nodeId: string }) => s.putNode(c.nodeId),
      deleteNode: (c: { nodeId: string }) => s.deleteNode(c.nodeId),
      listNodes: () => s.listNodes(),
      getCall: (c: { callNum: number }) => s.getCall(c.callNum),
      putOutputs: (c: { callNum: number; zip: string }) => s.putOutputs(c.callNum, c.zip),
      getOutputs: (c: { callNum: number }) => s.getOutputs(c.callNum),
      listCalls: (c: Parameters<PlatformStore['listCalls']>[0]) => s.listCalls(c),
    };
    return operations[op](input);
  }
}
