'use strict';
/*
 * Handler-mode bootstrap of the node runtime. Started once per container: reads one JSON request
 * per line on stdin, answers with one line on stdout that starts with the frame token the platform
 * passed in FAAS_FRAME_TOKEN; anything else on stdout or stderr is a log line of the call in flight.
 *   {"op": "files", "files": [{"path", "mode", "data"}]}  write the function's files (base64) first,
 *                                                when the container started without them (a stem cell)
 *   {"op": "load", "handler": "handler.handle"}  require the function (once)
 *   {"op": "call", "id": 7, "params": {...}}     run it (sync or async)
 * console.log/info/debug output during a call is captured and returned with the answer (stdout is
 * the protocol's channel); console.warn/error go to stderr as written, so that they survive a crash,
 * and each call's stderr ends with a mark (token:end:id) so that it is never mixed with the next call's.
 */
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const util = require('node:util');

// The token is not left in the function's process.env (a function that forges frames only garbles its own calls).
const TOKEN = process.env.FAAS_FRAME_TOKEN || '';
delete process.env.FAAS_FRAME_TOKEN;
const MAX_LOG = Number(process.env.FAAS_MAX_LOG_BYTES || 1024 * 1024);
const MAX_RESULT = Number(process.env.FAAS_MAX_RESULT_BYTES || 1024 * 1024);
const send = (frame) => fs.writeSync(1, `${TOKEN} ${JSON.stringify(frame)}\n`);

let handler = null;
let capture = null;
for (const name of ['log', 'info', 'debug']) {
  const original = console[name].bind(console);
  console[name] = (...args) => {
    if (!capture) return original(...args);
    const text = `${util.format(...args)}\n`;
    const room = MAX_LOG - capture.stdout.length;
    if (text.length > room) capture.cut = true;
    if (room > 0) capture.stdout += text.slice(0, room);
  };
}
for (const name of ['warn', 'error']) {
  console[name] = (...args) => fs.writeSync(2, `${util.format(...args)}\n`);
}

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

/** The files the call left in the output folder go back with its answer (base64), up to MAX_OUTPUT. */
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

async function call(request) {
  try {
    clearOutputs();
  } catch {
    /* what cannot be removed stays; the call goes on */
  }
  capture = { stdout: '', cut: false };
  const frame = { op: 'result', id: request.id };
  // The call's own variables last for the call only.
  const callEnv = request.env && typeof request.env === 'object' ? request.env : {};
  const saved = Object.fromEntries(Object.keys(callEnv).map((k) => [k, process.env[k]]));
  Object.assign(process.env, callEnv);
  try {
    const result = await handler(request.params);
    const encoded = JSON.stringify(result === undefined ? null : result);
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
    frame.error = String((err && err.stack) || err).slice(-4000);
  }
  try {
    readOutputs(frame);
  } catch (err) {
    frame.outputsError = String((err && err.message) || err).slice(0, 500);
  }
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  frame.stdout = capture.stdout;
  if (capture.cut) frame.stdoutTruncated = true;
  capture = null;
  // Everything this call wrote to stderr comes before this mark on the same stream.
  try {
    fs.writeSync(2, `${TOKEN}:end:${request.id}\n`);
  } catch {
    /* stderr closed by the function: the platform stops waiting for the mark */
  }
  send(frame);
}

const lines = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
lines.on('line', (line) => {
  let request;
  try {
    request = JSON.parse(line);
  } catch {
    return;
  }
  if (request.op === 'files') {
    try {
      writeFiles(request.files || []);
      send({ op: 'files' });
    } catch (err) {
      send({ op: 'files', error: String(err && err.message) });
    }
  } else if (request.op === 'load') {
    try {
      handler = load(request.handler || 'handler.handle');
      send({ op: 'loaded' });
    } catch (err) {
      send({ op: 'loaded', error: String((err && err.stack) || err).slice(-4000) });
      process.exit(3);
    }
  } else if (request.op === 'call') {
    // One call at a time, in order.
    chain = chain.then(() => call(request));
  }
});
lines.on('close', () => process.exit(0));
send({ op: 'ready' });
