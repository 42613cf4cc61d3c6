import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { OUTPUT_DIR } from '../protocol/limits';

/**
 * Process-mode outputs travel on the container's stderr after the function has exited: the run
 * command is wrapped so that, when the output folder (a size-capped tmpfs, which the engine's
 * archive API cannot read) holds anything, the shell prints a mark line and then the folder as a
 * base64 tar. This splitter gives what comes before the mark to the call's stderr and the rest to
 * the outputs, each to its own sink.
 */
export class OutputChannel extends Writable {
  readonly mark = `faas-outputs-${randomBytes(12).toString('hex')}`;
  private readonly separator = Buffer.from(`\n${this.mark}\n`);
  private held = Buffer.alloc(0);
  private afterMark = false;

  constructor(
    private readonly log: Writable,
    private readonly outputs: Writable,
  ) {
    super();
  }

  /** The run command (with "$@" when it has arguments), followed by the shell that sends the folder. */
  wrap(run: string, withArgs: boolean): string {
    return [
      withArgs ? `${run.trimEnd()} "$@"` : run,
      'rc=$?',
      `if [ -n "$(ls -A ${OUTPUT_DIR} 2>/dev/null)" ]; then printf '\\n%s\\n' '${this.mark}' >&2; tar -C ${OUTPUT_DIR} -cf - . 2>/dev/null | base64 >&2; fi`,
      'exit $rc',
    ].join('\n');
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.afterMark) {
      this.outputs.write(chunk, () => done());
      return;
    }
    const data = this.held.length ? Buffer.concat([this.held, chunk]) : chunk;
    const at = data.indexOf(this.separator);
    if (at >= 0) {
      this.afterMark = true;
      this.held = Buffer.alloc(0);
      if (at > 0) this.log.write(data.subarray(0, at));
      this.outputs.write(data.subarray(at + this.separator.length), () => done());
      return;
    }
    // The separator may be cut in two: keep its possible beginning back.
    const keep = Math.min(this.separator.length - 1, data.length);
    this.held = Buffer.from(data.subarray(data.length - keep));
    if (data.length > keep) this.log.write(data.subarray(0, data.length - keep), () => done());
    else done();
  }

  override _final(done: (err?: Error | null) => void): void {
    if (this.held.length) this.log.write(this.held);
    this.held = Buffer.alloc(0);
    done();
  }
}
