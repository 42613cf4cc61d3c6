'use strict';
/*
 * Handler-mode bootstrap of the node runtime (frame protocol version 2, protocol/bootstrap-protocol.md).
 * Started once per container: reads one JSON request per line on stdin and answers with frames, one
 * line each that starts with the token the platform passed in FAAS_FRAME_TOKEN, on the file
 * descriptor FAAS_FRAME_FD, which carries nothing else.
 *   {"v": 2, "type": "files", "files": [{"path", "mode", "data"}]}  write the function's files (base64)
 *                                                first, when the container started without them (a stem cell)
 *   {"v": 2, "type": "load", "handler": "handler.handle"}  require the function (once)
 *   {"v": 2, "type": "call", "id": 7, "params": "<JSON text>", "env": {...}}  run it (sync or async)
 * console.log/info/debug and process.stdout.write during a call are captured and returned with the
 * result; a call that prints and goes on running also sends what it printed as `stdout` frames, at
 * most every STDOUT_EVERY_MS, so that it can be followed live. console.warn/error and whatever reaches fd 1 or fd 2 otherwise (child processes) are the
 * container's stderr, the call's log, and each call's stderr ends with a mark (token:end:id) so that
 * it is never mixed with the next call's.
 */
const fs = require('node:fs');
const path = require('node:path');
const util = require('node:util');
const { StringDecoder } = require('node:string_decoder');

const VERSION = 2;
// The token is not left in the function's process.env (a function that forges frames only garbles its own calls).
const TOKEN = process.env.FAAS_FRAME_TOKEN || '';
delete process.env.FAAS_FRAME_TOKEN;
if (!/^\d+$/.test(process.env.FAAS_FRAME_FD || '')) {
  fs.writeSync(2, 'bootstrap: FAAS_FRAME_FD is not set; frames need a descriptor of their own (protocol version 2)\n');
  process.exit(2);
}
const FRAME_FD = Number(process.env.FAAS_FRAME_FD);
delete process.env.FAAS_FRAME_FD;
const MAX_LOG = Number(process.env.FAAS_MAX_LOG_BYTES || 1024 * 1024);
const MAX_RESULT = Number(process.env.FAAS_MAX_RESULT_BYTES || 1024 * 1024);
const MAX_PARAMS = Number(process.env.FAAS_MAX_PARAMS_BYTES || 16 * 1024 * 1024);
const MAX_LINE = 64 * 1024 * 1024;
const MAX_ERROR = 4000;

function send(frame) {
  const line = Buffer.from(`${TOKEN} ${JSON.stringify({ v: VERSION, ...frame })}\n`);
  for (let at = 0; at < line.length; ) at += fs.writeSync(FRAME_FD, line, at);
}

/**
 * A thrown value as a person reads it first: its line (type and message), what caused it, then the
 * function's stack, most recent call first as node prints it, without the bootstrap's own frames.
 * Past MAX_ERROR characters the oldest frames (the stack's end) go first; the message line is cut
 * only when it alone is longer.
 */
function errorText(err) {
  const isError = err instanceof Error;
  const message = isError ? `${err.name}: ${err.message}` : String(err);
  const head = message.length > MAX_ERROR / 2 ? `${message.slice(0, MAX_ERROR / 2)} …` : message;
  const lines = [head];
  for (let cause = isError ? err.cause : undefined, depth = 0; cause !== undefined && depth < 3; depth++) {
    lines.push(`(caused by ${(cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)).split('\n')[0].slice(0, 300)})`);
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  const stack = isError && typeof err.stack === 'string' ? err.stack.split('\n') : [];
  const frames = stack.filter((line) => /^\s+at /.test(line) && !line.includes(__filename) && !line.includes('(node:internal'));
  for (let keep = frames.length; keep >= 0; keep--) {
    const cut = frames.length - keep;
    const text = [...lines, ...frames.slice(0, keep), ...(cut ? [`    … ${cut} earlier frame${cut === 1 ? '' : 's'} cut`] : [])].join('\n');
    if (text.length <= MAX_ERROR) return text;
  }
  return lines.join('\n').slice(0, MAX_ERROR);
}

class CallError extends Error {}

/** The call in flight: what it prints through the language's stdout is kept here, up to MAX_LOG. */
let capture = null;
function captured(text) {
  const room = MAX_LOG - capture.stdout.length;
  if (text.length > room) capture.cut = true;
  if (room > 0 && text.length > 0) {
    capture.stdout += text.slice(0, room);
    liveTimer ??= setTimeout(sendLive, STDOUT_EVERY_MS);
  }
}

/**
 * What the running call printed since the last piece goes as a `stdout` frame STDOUT_EVERY_MS after
 * the first of it: a call that prints and ends sooner sends none (its result carries the whole), one
 * that goes on is seen while it runs.
 */
const STDOUT_EVERY_MS = 100;
let liveTimer = null;
function sendLive() {
  liveTimer = null;
  if (!capture || capture.stdout.length <= capture.sent) return;
  send({ type: 'stdout', id: capture.id, text: capture.stdout.slice(capture.sent) });
  capture.sent = capture.stdout.length;
}
for (const name of ['log', 'info', 'debug']) {
  const original = console[name].bind(console);
  console[name] = (...args) => (capture ? captured(`${util.format(...args)}\n`) : original(...args));
}
for (const name of ['warn', 'error']) {
  console[name] = (...args) => fs.writeSync(2, `${util.format(...args)}\n`);
}
const stdoutWrite = process.stdout.write.bind(process.stdout);
process.stdout.write = (chunk, encoding, done) => {
  if (!capture) return stdoutWrite(chunk, encoding, done);
  const callback = typeof encoding === 'function' ? encoding : done;
  // Bytes that are not UTF-8 become U+FFFD; a character split across two writes is kept whole.
  captured(typeof chunk === 'string' ? chunk : capture.decoder.write(Buffer.from(chunk)));
  if (typeof callback === 'function') process.nextTick(callback);
  return true;
};
const realExit = process.exit.bind(process);
process.exit = (code) => {
  if (!capture) return realExit(code);
  // The function asked to exit while a call runs: that call ends, the container goes on.
  capture.exit = true;
  throw new CallError(`the function called process.exit(${code === undefined ? '' : util.inspect(code)})`);
};

function writeFiles(files) {
  const root = path.resolve(process.env.FAAS_WORKDIR || process.cwd());
  for (const item of files) {
    const rel = String(item.path || '');
    const target = path.resolve(root, rel);
    if (rel.startsWith('/') || rel.split('/').includes('..') || !target.startsWith(root + path.sep)) throw new Error(`refusing to write ${rel}`);
    if (rel.endsWith('/')) {
      fs.mkdirSync(target, { recursive: true });
      continue;
    }
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, Buffer.from(item.data || '', 'base64'), { mode: Number(item.mode || 0o644) & 0o755 });
  }
}

function load(spec) {
  const workdir = process.env.FAAS_WORKDIR || process.cwd();
  const at = spec.lastIndexOf('.');
  const file = at > 0 ? spec.slice(0, at) : spec;
  const attr = at > 0 ? spec.slice(at + 1) : 'handle';
  process.chdir(workdir);
  const mod = require(path.resolve(workdir, file));
  const fn = typeof mod === 'function' && attr === 'handle' ? mod : mod[attr];
  if (typeof fn !== 'function') throw new TypeError(`${spec} is not a function`);
  return fn;
}

const OUTPUT_DIR = process.env.FAAS_OUTPUT_DIR || '';

/** Each call starts with an empty output folder: what is there afterwards is that call's. */
function clearOutputs() {
  if (!OUTPUT_DIR || !fs.existsSync(OUTPUT_DIR)) return;
  for (const name of fs.readdirSync(OUTPUT_DIR)) fs.rmSync(path.join(OUTPUT_DIR, name), { recursive: true, force: true });
}

const MAX_OUTPUT = Number(process.env.FAAS_MAX_OUTPUT_BYTES || 8 * 1024 * 1024);

function outputFiles(dir, found = []) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) outputFiles(file, found);
    else if (entry.isFile()) found.push(file);
  }
  return found;
}

/** The files the call left in the output folder go back with its result (base64), up to MAX_OUTPUT. */
function readOutputs(frame) {
  if (!OUTPUT_DIR || !fs.existsSync(OUTPUT_DIR)) return;
  const files = outputFiles(OUTPUT_DIR);
  if (files.length === 0) return;
  const total = files.reduce((sum, f) => sum + fs.statSync(f).size, 0);
  if (total > MAX_OUTPUT) {
    frame.outputsTooLarge = total;
    return;
  }
  frame.outputs = files.map((f) => ({ path: path.relative(OUTPUT_DIR, f), data: fs.readFileSync(f).toString('base64') }));
}

function readParams(text) {
  if (typeof text !== 'string') throw new CallError('params could not be read: the request carries no params text');
  const size = Buffer.byteLength(text);
  if (size > MAX_PARAMS) throw new CallError(`params could not be read: ${size} bytes, past the limit of ${MAX_PARAMS} bytes`);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CallError(`params could not be read: ${err instanceof RangeError ? 'nested deeper than the node runtime can parse' : `not JSON (${err.message})`}`);
  }
}

function encodeResult(result) {
  let encoded;
  try {
    encoded = JSON.stringify(result === undefined ? null : result);
  } catch (err) {
    throw new CallError(`the result is not JSON: ${err instanceof RangeError ? 'nested too deeply' : err.message.split('\n')[0]}`);
  }
  if (encoded === undefined) throw new CallError(`the result is not JSON: a ${typeof result}`);
  return encoded;
}

let handler = null;

async function call(request) {
  try {
    clearOutputs();
  } catch {
    /* what cannot be removed stays; the call goes on */
  }
  capture = { id: request.id, stdout: '', sent: 0, cut: false, exit: false, decoder: new StringDecoder('utf8') };
  const frame = { type: 'result', id: request.id };
  // The call's own variables last for the call only.
  const callEnv = request.env || {};
  const saved = Object.fromEntries(Object.keys(callEnv).map((k) => [k, process.env[k]]));
  try {
    if (!handler) throw new CallError('no function is loaded');
    const params = readParams(request.params);
    Object.assign(process.env, callEnv);
    const encoded = encodeResult(await handler(params));
    if (Buffer.byteLength(encoded) > MAX_RESULT) {
      frame.ok = false;
      frame.tooLarge = true;
      frame.error = `the result is larger than ${MAX_RESULT} bytes`;
    } else {
      frame.ok = true;
      frame.result = encoded;
    }
  } catch (err) {
    frame.ok = false;
    frame.error = err instanceof CallError ? err.message.slice(-MAX_ERROR) : errorText(err);
  }
  if (capture.exit) frame.exit = true;
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    readOutputs(frame);
  } catch (err) {
    frame.outputsError = String((err && err.message) || err).slice(0, 500);
  }
  captured(capture.decoder.end());
  frame.stdout = capture.stdout;
  if (capture.cut) frame.stdoutTruncated = true;
  capture = null;
  clearTimeout(liveTimer);
  liveTimer = null;
  // Everything this call wrote to fd 1 and fd 2 comes before this mark on the container's stderr.
  try {
    fs.writeSync(2, `${TOKEN}:end:${request.id}\n`);
  } catch {
    /* stderr closed by the function: the platform stops waiting for the mark */
  }
  send(frame);
}

/** The request's shape, or the reason it is refused. */
function check(request) {
  if (typeof request !== 'object' || request === null || Array.isArray(request)) return 'a request that is not an object';
  if (request.v !== VERSION) return `protocol version ${JSON.stringify(request.v)} is not ${VERSION}`;
  if (request.type === 'call') {
    if (!Number.isSafeInteger(request.id) || request.id < 0) return 'a call without a numeric id';
    const env = request.env;
    if (env !== undefined && env !== null && (typeof env !== 'object' || Array.isArray(env) || !Object.values(env).every((v) => typeof v === 'string'))) {
      return 'a call whose env is not an object of strings';
    }
  } else if (request.type === 'load') {
    if (request.handler !== undefined && typeof request.handler !== 'string') return 'a load whose handler is not a string';
  } else if (request.type === 'files') {
    if (request.files !== undefined && !(Array.isArray(request.files) && request.files.every((f) => typeof f === 'object' && f !== null))) {
      return 'a files request whose files are not a list of objects';
    }
  } else {
    return `unknown request type ${JSON.stringify(String(request.type).slice(0, 32))}`;
  }
  return null;
}

function reject(error, request) {
  const frame = { type: 'rejected', error };
  if (request && Number.isSafeInteger(request.id) && request.id >= 0) frame.id = request.id;
  send(frame);
}

let chain = Promise.resolve();
function onLine(bytes) {
  const line = bytes.toString('utf8');
  if (!line.trim()) return;
  let request;
  try {
    request = JSON.parse(line);
  } catch (err) {
    reject(`a request line that is not JSON (${String(err.message).slice(0, 200)})`);
    return;
  }
  const problem = check(request);
  if (problem) {
    reject(problem, request);
    return;
  }
  if (request.type === 'files') {
    try {
      writeFiles(request.files || []);
      send({ type: 'files' });
    } catch (err) {
      send({ type: 'files', error: String(err && err.message) });
    }
  } else if (request.type === 'load') {
    try {
      handler = load(request.handler || 'handler.handle');
      send({ type: 'loaded' });
    } catch (err) {
      send({ type: 'loaded', error: errorText(err) });
      realExit(3);
    }
  } else {
    // One call at a time, in order.
    chain = chain.then(() => call(request));
  }
}

// Request lines, each no longer than MAX_LINE; a longer one is skipped whole and refused.
let parts = [];
let size = 0;
let skipping = false;
process.stdin.on('data', (chunk) => {
  for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10)) {
    const piece = chunk.subarray(0, nl);
    chunk = chunk.subarray(nl + 1);
    if (skipping || size + piece.length > MAX_LINE) reject(`a request line longer than ${MAX_LINE} bytes`);
    else onLine(Buffer.concat([...parts, piece]));
    parts = [];
    size = 0;
    skipping = false;
  }
  if (skipping || chunk.length === 0) return;
  parts.push(chunk);
  size += chunk.length;
  if (size > MAX_LINE) {
    parts = [];
    size = 0;
    skipping = true;
  }
});
process.stdin.on('end', () => chain.then(() => realExit(0)));
send({ type: 'ready', runtime: 'node', pid: process.pid });
