import * as zmq from 'zeromq';
import { serverCurveOptions } from '../protocol/curve';
import type { FailCommand, FinishCommand, RequeueCommand, StartCommand } from '../protocol/call-lifecycle';
import { authorize, type PeerRole } from '../protocol/zap';
import { isDbMsgType, dbRequestSchemas, type DbMsgType } from '../protocol/db-messages';
import { decodeMessage, encodeReply, isReply, MAX_FRAME_BYTES } from '../protocol/envelope';
import { PlatformError, asPlatformError } from '../protocol/errors';
import type { Logger } from '../protocol/log';
import { Outbox } from '../protocol/outbox';
import type { PlatformStore } from './store';

/**
 * db-service's request/reply front: a ROUTER socket, so many clients are served at once. Each
 * request is validated at this one entry point; a malformed one gets an error reply (or, when it
 * cannot be answered, is logged and dropped) and never stops the service.
 */
export class DbServer {
  private readonly socket = new zmq.Router({ linger: 0, mandatory: false, receiveHighWaterMark: 0, sendHighWaterMark: 0, maxMessageSize: MAX_FRAME_BYTES, ...serverCurveOptions(process.env, 'db') });
  private readonly outbox: Outbox;
  private closed = false;
  private loop?: Promise<void>;

  constructor(
    private readonly store: PlatformStore,
    private readonly log: Logger,
  ) {
    this.outbox = new Outbox(this.socket, (err) => this.log.warn({ err: String(err) }, 'reply not sent'));
  }

  async bind(endpoint: string): Promise<string> {
    await this.socket.bind(endpoint);
    this.loop = this.receiveLoop();
    return this.socket.lastEndpoint ?? endpoint;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
    await this.loop?.catch(() => undefined);
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const [identity, frame] of this.socket) {
        void this.handle(identity!, frame);
      }
    } catch (err) {
      if (!this.closed) this.log.error({ err: String(err) }, 'db receive loop ended');
    }
  }

  private async handle(identity: Buffer, frame: Buffer | undefined): Promise<void> {
    let message;
    try {
      message = decodeMessage(frame);
    } catch (err) {
      this.log.warn({ err: String(err) }, 'dropped a malformed request');
      return;
    }
    if (isReply(message)) return;
    const { id, msgType, content, deadline } = message;
    if (deadline !== undefined && Date.now() > deadline) {
      this.expired += 1;
      this.outbox.send([identity, encodeReply(id, { ok: false, error: new PlatformError('REQUEST_EXPIRED', `${msgType} arrived after its deadline and was not applied`).toJSON() })]);
      return;
    }
    try {
      const peerRole = authorize(identity, msgType);
      const data = await this.dispatch(msgType, content, deadline, peerRole);
      const reply = encodeReply(id, { ok: true, data: data ?? null });
      // A frame past the cap would be dropped by the peer, which would then wait out its timeout.
      if (reply.length > MAX_FRAME_BYTES) {
        this.log.warn({ msgType, bytes: reply.length }, 'reply too large');
        throw new PlatformError('REPLY_TOO_LARGE', `the answer to ${msgType} is ${reply.length} bytes, past the ${MAX_FRAME_BYTES}-byte frame cap`);
      }
      this.outbox.send([identity, reply]);
    } catch (err) {
      const error = asPlatformError(err);
      if (error.code === 'INTERNAL') this.log.error({ err: String(err), msgType }, 'request failed');
      this.outbox.send([identity, encodeReply(id, { ok: false, error: error.toJSON() })]);
    }
  }

  /** Requests that arrived after their sender stopped waiting, since this start. */
  expired = 0;

  private async dispatch(msgType: string, content: unknown, deadline?: number, peerRole: PeerRole = 'api'): Promise<unknown> {
    if (!isDbMsgType(msgType)) throw new PlatformError('PROTOCOL_ERROR', `unknown operation ${msgType}`);
    const parsed = dbRequestSchemas[msgType].safeParse(content ?? {});
    if (!parsed.success) {
      throw new PlatformError('BAD_REQUEST', `${msgType}: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
    }
    const input = parsed.data as never;
    // A lifecycle command names its sender's role; a node's key may speak only for a node.
    const claimed = (parsed.data as { by?: unknown }).by;
    if (typeof claimed === 'string' && peerRole !== 'api' && claimed !== 'worker' && claimed !== 'miniworker') {
      throw new PlatformError('FORBIDDEN', `a ${peerRole} may not send ${msgType} as the ${claimed}`);
    }
    const s = this.store;
    const handlers: Record<DbMsgType, (c: never) => Promise<unknown>> = {
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
      createCall: (c: Parameters<PlatformStore['createCall']>[0]) => s.createCall(c, [], deadline),
      createCallOnce: (c: Parameters<PlatformStore['createCallOnce']>[0]) => s.createCallOnce(c, deadline),
      startCall: (c: StartCommand) => s.applyCall({ command: 'start', ...c }),
      finishCall: (c: FinishCommand) => s.applyCall({ command: 'finish', ...c }),
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
    return handlers[msgType](input);
  }
}
