import { StringDecoder } from 'node:string_decoder';
import { z } from 'zod';

/**
 * The frame protocol between the host (miniworker/handler-container.ts) and a handler-mode
 * bootstrap (runtimes/python/bootstrap/handler.py, runtimes/node/bootstrap/handler.js), as written
 * down in protocol/bootstrap-protocol.md. Requests go in as JSON lines on the bootstrap's stdin;
 * frames come out, token-prefixed, on fd FRAME_FD, which the host makes the container's stdout and
 * nothing else writes to; fd 1 and fd 2 both go to the container's stderr, the call's log, where
 * each call ends with an end mark.
 */

/** 1 was the unversioned protocol whose frames shared fd 1 with the function's own output. */
export const BOOTSTRAP_PROTOCOL_VERSION = 2;
export const FRAME_FD = 3;
/** The bootstrap reads no longer request line (it answers `rejected`); the host never sends one. */
export const MAX_REQUEST_LINE_BYTES = 64 * 1024 * 1024;
/** Params are JSON text; past this many bytes the call ends ERROR in the bootstrap. */
export const DEFAULT_MAX_PARAMS_BYTES = 16 * 1024 * 1024;
/** Error texts in frames are cut to their last this many characters by the bootstraps. */
export const MAX_ERROR_CHARS = 4000;

/**
 * The container's command: fd 3 becomes the container's stdout (frames only) and fd 1 its stderr,
 * so whatever the function or its children write to fd 1 is log, never a frame.
 */
export function bootstrapCommand(run: string): string[] {
  return ['sh', '-c', `exec ${FRAME_FD}>&1 1>&2; exec ${run}`];
}

export const BOOTSTRAP_ENV = [`FAAS_FRAME_FD=${FRAME_FD}`];

export interface PackageFile {
  path: string;
  mode: number;
  /** base64 */
  data: string;
}

export type BootstrapRequest =
  | { type: 'files'; files: PackageFile[] }
  | { type: 'load'; handler: string }
  /** params: the call's params as JSON text, parsed by the bootstrap inside the call's own error handling. */
  | { type: 'call'; id: number; params: string; env?: Record<string, string> };

/** One request line, with the version. */
export function encodeRequest(request: BootstrapRequest): string {
  return `${JSON.stringify({ v: BOOTSTRAP_PROTOCOL_VERSION, ...request })}\n`;
}

const version = z.literal(BOOTSTRAP_PROTOCOL_VERSION);
const errorText = z.string().max(4 * MAX_ERROR_CHARS);
const callId = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const readyFrameSchema = z.object({ v: version, type: z.literal('ready'), runtime: z.string().max(64), pid: z.number().int().optional() });
export const filesFrameSchema = z.object({ v: version, type: z.literal('files'), error: errorText.optional() });
export const loadedFrameSchema = z.object({ v: version, type: z.literal('loaded'), error: errorText.optional() });
export const resultFrameSchema = z.object({
  v: version,
  type: z.literal('result'),
  id: callId,
  ok: z.boolean(),
  /** The result as JSON text (ok only). */
  result: z.string().optional(),
  error: errorText.optional(),
  /** What the function printed through the language's stdout during the call, up to FAAS_MAX_LOG_BYTES. */
  stdout: z.string(),
  stdoutTruncated: z.boolean().optional(),
  /** The result was past FAAS_MAX_RESULT_BYTES and was not sent. */
  tooLarge: z.boolean().optional(),
  /** The function asked the process to exit (sys.exit, process.exit); the bootstrap went on serving. */
  exit: z.boolean().optional(),
  /** Files the call left in the output folder (base64). */
  outputs: z.array(z.object({ path: z.string().max(4096), data: z.string() })).optional(),
  /** Their size when past FAAS_MAX_OUTPUT_BYTES: then none are sent. */
  outputsTooLarge: z.number().nonnegative().optional(),
  outputsError: errorText.optional(),
});
/**
 * What a running call printed through the language's stdout since its previous piece, sent while it
 * runs (at most every 100 ms) so that it can be followed live. Optional: the `result` frame carries
 * the whole stdout all the same, and pieces are only a preview of its start.
 */
export const stdoutFrameSchema = z.object({ v: version, type: z.literal('stdout'), id: callId, text: z.string() });
/** A request line the bootstrap could not read: not JSON, another version, an unknown type, too long. */
export const rejectedFrameSchema = z.object({ v: version, type: z.literal('rejected'), id: callId.optional(), error: errorText });

export const bootstrapFrameSchema = z.discriminatedUnion('type', [readyFrameSchema, filesFrameSchema, loadedFrameSchema, resultFrameSchema, stdoutFrameSchema, rejectedFrameSchema]);

export type BootstrapFrame = z.infer<typeof bootstrapFrameSchema>;
export type ResultFrame = z.infer<typeof resultFrameSchema>;
export type FrameType = BootstrapFrame['type'];

export type DecodedLine =
  /** `skipped`: characters before the token (something other than the bootstrap wrote to the frame descriptor), dropped. */
  | { kind: 'frame'; frame: BootstrapFrame; skipped: number }
  /** A frame of another protocol version (`version` undefined: one from before versioning). */
  | { kind: 'version'; version: unknown; type: unknown }
  | { kind: 'bad'; reason: string };

/**
 * Checks one line of the frame channel: the token, JSON, the version, the frame's schema. Text before
 * the token (an unfinished line that the function itself wrote to the frame descriptor) is skipped,
 * so it costs that text only, not the frame after it.
 */
export function decodeFrameLine(line: string, token: string): DecodedLine {
  const skipped = line.indexOf(`${token} {`);
  if (skipped < 0) return { kind: 'bad', reason: 'a line without the frame token' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(line.slice(skipped + token.length + 1));
  } catch {
    return { kind: 'bad', reason: 'a frame that is not JSON' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { kind: 'bad', reason: 'a frame that is not an object' };
  const raw = parsed as Record<string, unknown>;
  if (raw.v !== BOOTSTRAP_PROTOCOL_VERSION) return { kind: 'version', version: raw.v, type: raw.type ?? raw.op };
  const checked = bootstrapFrameSchema.safeParse(parsed);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    return { kind: 'bad', reason: `a ${String(raw.type).slice(0, 32)} frame that does not fit its schema (${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'})` };
  }
  if (checked.data.type === 'result' && checked.data.ok && checked.data.result === undefined) return { kind: 'bad', reason: 'an ok result frame without a result' };
  return { kind: 'frame', frame: checked.data, skipped };
}

/** The clear error for a bootstrap of another protocol version. */
export function versionMismatchMessage(version: unknown): string {
  const theirs = version === undefined ? 'a protocol from before versioning' : `protocol version ${JSON.stringify(version).slice(0, 32)}`;
  return `the runtime's bootstrap speaks ${theirs}, this platform speaks version ${BOOTSTRAP_PROTOCOL_VERSION}: rebuild the runtime image (faas images --force) and deploy the function again`;
}

/**
 * Splits the frame channel into lines, decoding UTF-8 across chunk boundaries. A line that grows
 * past `maxLineChars` is dropped whole (`onOversized`), and reading resumes after its end.
 */
export class FrameLineReader {
  private readonly decoder = new StringDecoder('utf8');
  private parts: string[] = [];
  private size = 0;
  private skipping = false;

  constructor(
    private readonly maxLineChars: number,
    private readonly onLine: (line: string) => void,
    private readonly onOversized: () => void,
  ) {}

  push(chunk: Buffer): void {
    let text = this.decoder.write(chunk);
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n')) {
      const piece = text.slice(0, nl);
      text = text.slice(nl + 1);
      if (this.skipping || this.size + piece.length > this.maxLineChars) {
        if (!this.skipping) this.onOversized();
        this.reset();
        continue;
      }
      this.parts.push(piece);
      const line = this.parts.join('');
      this.reset();
      this.onLine(line);
    }
    if (this.skipping || text.length === 0) return;
    this.parts.push(text);
    this.size += text.length;
    if (this.size > this.maxLineChars) {
      this.onOversized();
      this.reset();
      this.skipping = true;
    }
  }

  private reset(): void {
    this.parts = [];
    this.size = 0;
    this.skipping = false;
  }
}

export type StderrEvent = { log: string } | { mark: number };

/**
 * Finds the per-call end marks (`token:end:id` and a newline) on the container's stderr, anywhere in
 * a line: a function's unfinished line (`progress 50%`) is its log, the mark after it still counts.
 * The text before a mark is the log of the call the mark ends.
 */
export class EndMarkScanner {
  private readonly decoder = new StringDecoder('utf8');
  private readonly prefix: string;
  /** The end of stderr not yet given out: it may be the start of a mark. */
  private pending = '';

  constructor(token: string) {
    this.prefix = `${token}:end:`;
  }

  push(chunk: Buffer): StderrEvent[] {
    const events: StderrEvent[] = [];
    let text = this.pending + this.decoder.write(chunk);
    this.pending = '';
    let from = 0;
    for (let at = text.indexOf(this.prefix, from); at >= 0; at = text.indexOf(this.prefix, from)) {
      const end = text.indexOf('\n', at);
      if (end < 0) break;
      const id = text.slice(at + this.prefix.length, end);
      if (!/^\d{1,15}$/.test(id)) {
        // Not a mark (a garbled or forged one): it stays log.
        from = at + 1;
        continue;
      }
      if (at > 0) events.push({ log: text.slice(0, at) });
      events.push({ mark: Number(id) });
      text = text.slice(end + 1);
      from = 0;
    }
    // Keep back what may be the beginning of a mark until the rest arrives.
    const last = text.lastIndexOf(this.prefix);
    let keep = last >= 0 && text.length - last <= this.prefix.length + 16 && !text.includes('\n', last) ? text.length - last : 0;
    if (keep === 0) for (let n = Math.min(this.prefix.length - 1, text.length); n > 0 && keep === 0; n--) if (this.prefix.startsWith(text.slice(-n))) keep = n;
    if (text.length > keep) events.push({ log: text.slice(0, text.length - keep) });
    this.pending = text.slice(text.length - keep);
    return events;
  }

  /** What was kept back, once no more will come. */
  flush(): string {
    const rest = this.pending + this.decoder.end();
    this.pending = '';
    return rest;
  }
}
