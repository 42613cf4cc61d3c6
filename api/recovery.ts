import { MAX_ATTEMPTS } from '../protocol/call-lifecycle';
import type { DbClient } from '../protocol/db-client';
import type { Logger } from '../protocol/log';
import { isFinal, type Call, type FunctionRecord, type Runtime } from '../protocol/types';
import type { Invocation } from '../protocol/worker-messages';
import type { WorkerHub } from './worker-hub';

export interface RecoveryOptions {
  db: DbClient;
  hub: WorkerHub;
  log: Logger;
  /** After a restart, how long to wait for the nodes that were registered before it. */
  graceMs: number;
  /** How often unfinished calls that nothing holds are looked for. */
  sweepIntervalMs: number;
  /** A call younger than this is never judged by the sweep: its creation or dispatch may be in flight. */
  minAgeMs: number;
  /** The function version and runtime a call runs, or null when they are no longer registered. */
  lookup: (call: Call) => Promise<{ fn: FunctionRecord; runtime: Runtime } | null>;
  /** A call this api ended itself. */
  ended: (call: Call) => void;
}

/**
 * The api's half of the call lifecycle when something was lost: a node (its calls run again when
 * their function is idempotent, else end node_lost), the api itself (after a restart it waits for the
 * nodes registered before it, then queues again the calls none of them holds), or a message (a
 * periodic sweep finds unfinished calls that no worker and no queue holds). Each pass is retried
 * until it succeeds: db-service may be away when it runs.
 */
export class CallRecovery {
  private timer?: NodeJS.Timeout;
  private stopped = false;
  /** Until the first pass after a start has run, the sweep waits. */
  private recovered = false;

  constructor(private readonly options: RecoveryOptions) {}

  get ready(): boolean {
    return this.recovered;
  }

  /** Starts recovery of the calls made before this start (`before`: the last call number then). */
  start(before: () => Promise<number>): void {
    void this.untilDone('restart recovery', async () => {
      const last = await before();
      await this.waitForNodes();
      await this.sweep((call) => call.callNum <= last, 'orchestrator_restart');
    }).then(() => {
      this.recovered = true;
      this.schedule();
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** A node was lost holding this call. */
  async lost(callNum: number): Promise<void> {
    await this.untilDone(`recovery of call ${callNum}`, async () => {
      const call = await this.options.db.getCall(callNum);
      // Even a PENDING call may have started there (a warm call records no RUNNING): it is not run again unless idempotent.
      if (call) await this.settle(call, 'node_lost', true);
    });
  }

  /**
   * A call its worker does not hold (the invoke or its end was lost on the way): ended already, its
   * end is passed on; else it cannot have started there and is settled as such.
   */
  async unheld(callNum: number): Promise<void> {
    await this.untilDone(`recovery of call ${callNum}`, async () => {
      const call = await this.options.db.getCall(callNum);
      if (!call) return;
      if (isFinal(call.status)) this.options.ended(call);
      else await this.settle(call, 'node_lost', false);
    });
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      const cutoff = Date.now() - this.options.minAgeMs;
      void this.sweep((call) => Date.parse(call.createdAt) < cutoff, 'node_lost')
        .catch((err: unknown) => this.options.log.warn({ err: String(err) }, 'the sweep of unfinished calls failed; it runs again'))
        .finally(() => this.schedule());
    }, this.options.sweepIntervalMs);
    this.timer.unref();
  }

  /**
   * Waits until every node registered before the restart has come back, or the grace has passed: a
   * node that still holds calls says so in its hello, and those calls are its to finish.
   */
  private async waitForNodes(): Promise<void> {
    const expected = (await this.options.db.listNodes()).map((n) => n.nodeId);
    const deadline = Date.now() + this.options.graceMs;
    const missing = () => {
      const connected = new Set(this.options.hub.list().map((w) => w.nodeId));
      return expected.filter((id) => !connected.has(id));
    };
    while (missing().length > 0 && Date.now() < deadline && !this.stopped) await new Promise((r) => setTimeout(r, 100));
    const absent = missing();
    if (absent.length > 0) this.options.log.warn({ nodes: absent, graceMs: this.options.graceMs }, 'nodes registered before the restart did not come back; their calls are recovered without them');
    for (const nodeId of absent) await this.options.db.deleteNode(nodeId);
  }

  /** Every unfinished call that `eligible` admits and that no worker or queue holds is settled. */
  private async sweep(eligible: (call: Call) => boolean, reason: 'orchestrator_restart' | 'node_lost'): Promise<void> {
    const calls = await this.options.db.unfinishedCalls();
    const held = this.options.hub.heldCalls();
    let settled = 0;
    for (const call of calls) {
      if (!eligible(call) || held.has(call.callNum)) continue;
      await this.settle(call, reason, false);
      settled += 1;
    }
    if (settled > 0) this.options.log.info({ settled, reason }, 'unfinished calls that nothing held were recovered');
  }

  /**
   * One call nothing holds: a PENDING one that cannot have started is queued (again); any other runs
   * again when its function is idempotent and it has an attempt left, else it ends ERROR with `reason`.
   */
  private async settle(call: Call, reason: 'orchestrator_restart' | 'node_lost', mayHaveStarted: boolean): Promise<void> {
    const { db, hub } = this.options;
    const found = await this.options.lookup(call);
    if (!found) {
      const result = await db.failCall({ callNum: call.callNum, by: 'api', reason: 'function_missing', error: 'the function version of this call is no longer registered' });
      if (result.applied) this.options.ended(result.call);
      return;
    }
    const invocation = (c: Call): Invocation => ({ call: c, fn: found.fn, runtime: found.runtime });
    if (call.status === 'PENDING' && !mayHaveStarted) {
      hub.dispatch(invocation(call));
      return;
    }
    if (found.fn.idempotent && found.fn.version === call.functionVersion && (call.attempts ?? 1) < MAX_ATTEMPTS) {
      const again = await db.requeueCall({ callNum: call.callNum, by: 'api', attempt: call.attempts ?? 1, why: reason });
      if (again.applied) {
        this.options.log.info({ callNum: call.callNum, attempt: again.call.attempts }, 'a call of an idempotent function is queued again after its node was lost');
        hub.dispatch(invocation(again.call));
        return;
      }
      if (again.refused !== 'state') return;
    }
    const error =
      reason === 'node_lost' ? 'the worker running this call stopped answering' : 'the call was running when the api restarted, and no worker holds it';
    const result = await db.failCall({ callNum: call.callNum, by: 'api', reason, error, attempt: call.attempts ?? 1 });
    if (result.applied) this.options.ended(result.call);
  }

  /** Runs `pass` until it succeeds, with a growing pause between tries; gives up only when stopped. */
  private async untilDone(what: string, pass: () => Promise<void>): Promise<void> {
    let pause = 250;
    for (let tries = 1; !this.stopped; tries++) {
      try {
        await pass();
        return;
      } catch (err) {
        if (tries === 1 || tries % 20 === 0) this.options.log.warn({ err: String(err), tries }, `${what} failed; trying again`);
        await new Promise((r) => setTimeout(r, pause));
        pause = Math.min(pause * 2, 5000);
      }
    }
  }
}
