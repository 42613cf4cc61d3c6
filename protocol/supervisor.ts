import { fork, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';

/**
 * One way to start, watch and stop a child process. `stop()` sends SIGTERM, waits a grace period,
 * then sends SIGKILL; it is safe to call twice or at once from two places (they share one stop),
 * and it resolves when the child is gone, with how it ended. An optional init handshake bounds the
 * start: a child that exits or stays silent before it is ready is stopped, marked failed, and its
 * `ready()` rejects; it is never marked ready afterwards.
 *
 * Everything the rest of the code uses is the `ChildHandle` interface, so a library could take its
 * place behind `startChild`.
 */
export interface ChildOptions {
  /** A Node.js script, started with fork (an IPC channel, so the child sees 'disconnect' when its parent goes). */
  script?: string;
  /** Or a program. */
  command?: string;
  args?: string[];
  /** Node.js options of a `script`. */
  execArgv?: string[];
  env?: NodeJS.ProcessEnv;
  stdio?: StdioOptions;
  /** Between SIGTERM and SIGKILL when stopping; default 5000 ms. */
  graceMs?: number;
  /** The init handshake: `until` resolves when the child is ready (without it, the owner calls `markReady()`). */
  init?: { timeoutMs: number; until?: (child: ChildProcess) => Promise<void> };
  /** For messages: "db-service exited with code 1". */
  name?: string;
}

export type ChildState = 'starting' | 'ready' | 'failed' | 'stopping' | 'exited';

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** SIGKILL was sent because the grace period ran out. */
  forced: boolean;
  /** It ended because it was asked to (stop()), not on its own. */
  stopped: boolean;
  /** It never ran (the program could not be started). */
  error?: Error;
}

export interface StopOptions {
  /** The first signal; default SIGTERM. SIGKILL skips the grace period. */
  signal?: NodeJS.Signals;
  graceMs?: number;
}

export interface ChildHandle {
  readonly name: string;
  readonly pid: number | undefined;
  readonly child: ChildProcess;
  readonly state: ChildState;
  /** True until the child has exited (or failed its init). */
  readonly alive: boolean;
  /** Resolves once, when the child is gone, however it went. */
  readonly exited: Promise<ChildExit>;
  /** Resolves when the init handshake completes; rejects if the child failed it. */
  ready(): Promise<void>;
  /** Completes the handshake from outside (for a child that says so on a channel of its owner's). */
  markReady(): void;
  stop(options?: StopOptions): Promise<ChildExit>;
  /** A signal without stopping (SIGSTOP, SIGCONT…); false if the child is gone. */
  kill(signal: NodeJS.Signals): boolean;
}

export class InitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InitError';
  }
}

/** How a child ended, in words: "exited with code 1", "killed by SIGKILL after the grace period". */
export function describeExit(exit: ChildExit): string {
  if (exit.error) return `could not start: ${exit.error.message}`;
  if (exit.signal) return `killed by ${exit.signal}${exit.forced ? ' after the grace period' : ''}`;
  return `exited with code ${exit.code}`;
}

export function startChild(options: ChildOptions): ChildHandle {
  return new SupervisedChild(options);
}

class SupervisedChild implements ChildHandle {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<ChildExit>;
  private current: ChildState;
  private readonly handshake: Promise<void>;
  private settleReady!: (err?: Error) => void;
  private stopping?: Promise<ChildExit>;
  private forced = false;
  private asked = false;
  private killTimer?: NodeJS.Timeout;

  constructor(private readonly options: ChildOptions) {
    this.name = options.name ?? options.script ?? options.command ?? 'child';
    this.current = options.init ? 'starting' : 'ready';
    this.handshake = new Promise<void>((resolve, reject) => {
      this.settleReady = (err?: Error) => (err ? reject(err) : resolve());
    });
    // A handshake nobody waits on must not become an unhandled rejection.
    this.handshake.catch(() => undefined);
    if (!options.init) this.settleReady();

    if (options.script) {
      this.child = fork(options.script, options.args ?? [], { env: options.env, stdio: options.stdio, execArgv: options.execArgv });
    } else if (options.command) {
      this.child = spawn(options.command, options.args ?? [], { env: options.env, stdio: options.stdio });
    } else {
      throw new Error('startChild needs a script or a command');
    }

    this.exited = new Promise<ChildExit>((resolve) => {
      const finish = (exit: Omit<ChildExit, 'forced' | 'stopped'>) => {
        if (this.current === 'exited') return;
        clearTimeout(this.killTimer);
        const wasStarting = this.current === 'starting';
        this.current = 'exited';
        const result: ChildExit = { ...exit, forced: this.forced, stopped: this.asked };
        if (wasStarting) this.settleReady(new InitError(`${this.name} ${describeExit(result)} before it was ready`));
        resolve(result);
      };
      this.child.once('exit', (code, signal) => finish({ code, signal }));
      // A program that cannot be started gives 'error' and no 'exit'.
      this.child.on('error', (error) => {
        if (this.child.pid === undefined) finish({ code: null, signal: null, error });
      });
    });

    if (options.init) {
      const timer = setTimeout(() => this.failInit(`${this.name} did not say it was ready within ${options.init!.timeoutMs} ms`), options.init.timeoutMs);
      void this.exited.then(() => clearTimeout(timer));
      if (options.init.until) {
        options.init.until(this.child).then(
          () => {
            clearTimeout(timer);
            this.markReady();
          },
          (err: unknown) => {
            clearTimeout(timer);
            // A child that crashed is reported by its exit, which may follow the handshake's failure closely.
            const settle = setTimeout(() => this.failInit(`${this.name} failed its start: ${err instanceof Error ? err.message : String(err)}`), 1000);
            void this.exited.then(() => clearTimeout(settle));
          },
        );
      }
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get state(): ChildState {
    return this.current;
  }

  get alive(): boolean {
    return this.current !== 'exited' && this.current !== 'failed';
  }

  ready(): Promise<void> {
    return this.handshake;
  }

  markReady(): void {
    if (this.current !== 'starting') return;
    this.current = 'ready';
    this.settleReady();
  }

  stop(options: StopOptions = {}): Promise<ChildExit> {
    const signal = options.signal ?? 'SIGTERM';
    if (this.stopping) {
      // A second stop shares the first; one that asks for SIGKILL does not wait out the grace.
      if (signal === 'SIGKILL') this.signal('SIGKILL');
      return this.stopping;
    }
    this.asked = true;
    if (this.current === 'exited') {
      this.stopping = this.exited;
      return this.stopping;
    }
    if (this.current === 'starting') this.settleReady(new InitError(`${this.name} was stopped before it was ready`));
    if (this.current !== 'failed') this.current = 'stopping';
    // A stopped (SIGSTOP) process would not see SIGTERM until it runs again.
    this.signal('SIGCONT');
    this.signal(signal);
    if (signal !== 'SIGKILL') {
      this.killTimer = setTimeout(() => {
        this.forced = true;
        this.signal('SIGKILL');
      }, options.graceMs ?? this.options.graceMs ?? 5000);
    }
    this.stopping = this.exited;
    return this.stopping;
  }

  kill(signal: NodeJS.Signals): boolean {
    return this.current !== 'exited' && this.signal(signal);
  }

  private signal(signal: NodeJS.Signals): boolean {
    try {
      return this.child.kill(signal);
    } catch {
      return false;
    }
  }

  /** A child that failed its init is stopped and never becomes ready. */
  private failInit(message: string): void {
    if (this.current !== 'starting') return;
    this.current = 'failed';
    this.settleReady(new InitError(message));
    void this.stop();
  }
}
