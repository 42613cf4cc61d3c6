"""Handler-mode bootstrap of the python runtime (frame protocol version 2, protocol/bootstrap-protocol.md).

Started once per container. It reads one JSON request per line and answers with frames, one line
each that starts with the token the platform passed in FAAS_FRAME_TOKEN. Both travel over the
container's channel socket (FAAS_CHANNEL_SOCKET) when there is one, else requests come on stdin and
frames go to the file descriptor FAAS_FRAME_FD, which carries nothing else. Requests:
  {"v": 2, "type": "files", "files": [{"path", "mode", "data"}]}  write the function's files (base64)
                                               first, when the container started without them (a stem cell)
  {"v": 2, "type": "load", "handler": "handler.handle"}  import the function (once)
  {"v": 2, "type": "call", "id": 7, "params": "<JSON text>", "env": {...}}  run it (env: for this call only)
What the function prints through sys.stdout is captured per call and returned with the result; a
call that prints and goes on running also sends what it printed as `stdout` frames, at most every
STDOUT_EVERY seconds, so that it can be followed live. What reaches fd 1 or fd 2 otherwise (os.write,
child processes) is the container's stderr, the call's log, and each call's stderr ends with a mark
(token:end:id) so that it is never mixed with the next call's.
"""
import codecs
import contextlib
import importlib
import io
import json
import os
import sys
import threading
import time
import traceback

VERSION = 2
# The token is not left in the function's os.environ (a function that forges frames only garbles its own calls).
TOKEN = os.environ.pop("FAAS_FRAME_TOKEN", "")
FRAME_FD = os.environ.pop("FAAS_FRAME_FD", "")
if not FRAME_FD.isdigit():
    sys.stderr.write("bootstrap: FAAS_FRAME_FD is not set; frames need a descriptor of their own (protocol version 2)\n")
    sys.exit(2)
# Child processes of the function do not get the frame channel.
os.set_inheritable(int(FRAME_FD), False)
CHANNEL = os.environ.pop("FAAS_CHANNEL_SOCKET", "")


def open_channel():
    """The container's own channel socket, when the platform gave one: two connections, one for
    requests and frames, one that becomes fd 1 and fd 2. Returns (requests, frames) or None, and then
    stdin and FAAS_FRAME_FD are used, as they are without a socket."""
    if not CHANNEL:
        return None
    import socket

    try:
        log = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        log.connect(CHANNEL)
        log.sendall(f"{TOKEN} log\n".encode())
        frames = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        frames.connect(CHANNEL)
        frames.sendall(f"{TOKEN} frames\n".encode())
    except OSError as exc:
        sys.stderr.write(f"bootstrap: the channel socket cannot be used ({exc}); using stdin and fd {FRAME_FD}\n")
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    # Whatever the function or its child processes write to fd 1 or fd 2 goes to the log connection.
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    log.close()
    os.close(int(FRAME_FD))
    return frames.makefile("rb"), frames.makefile("w", buffering=1, encoding="utf-8", errors="replace", newline="\n")


_channel = open_channel()
if _channel:
    _requests, _frames = _channel
else:
    _requests = sys.stdin.buffer
    _frames = os.fdopen(int(FRAME_FD), "w", buffering=1, encoding="utf-8", errors="replace")

MAX_LOG = int(os.environ.get("FAAS_MAX_LOG_BYTES", str(1024 * 1024)))
MAX_RESULT = int(os.environ.get("FAAS_MAX_RESULT_BYTES", str(1024 * 1024)))
MAX_PARAMS = int(os.environ.get("FAAS_MAX_PARAMS_BYTES", str(16 * 1024 * 1024)))
MAX_LINE = 64 * 1024 * 1024
MAX_ERROR = 4000


STDOUT_EVERY = 0.1
_send_lock = threading.Lock()


class LiveStdout:
    """What the running call printed and has not yet been sent, sent as a `stdout` frame by a thread of
    its own STDOUT_EVERY seconds after the first of it: a call that prints and ends sooner sends none
    (its result carries the whole), one that goes on is seen while it runs. The thread starts with the
    first call that prints and then waits on an event, costing nothing while nothing is printed."""

    def __init__(self):
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.call_id = None
        self.pending = []
        self.thread = None

    def begin(self, call_id):
        with self.lock:
            self.call_id = call_id
            self.pending = []

    def add(self, text):
        with self.lock:
            if self.call_id is None:
                return
            self.pending.append(text)
        if not self.wake.is_set():
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="faas-stdout", daemon=True)
                self.thread.start()
            self.wake.set()

    def end(self):
        """The call ended: what it printed goes with its result, after every piece already sent."""
        with self.lock:
            self.call_id = None
            self.pending = []

    def _loop(self):
        while True:
            self.wake.wait()
            time.sleep(STDOUT_EVERY)
            self.wake.clear()
            with self.lock:
                if self.call_id is None or not self.pending:
                    continue
                text = "".join(self.pending)
                self.pending = []
                try:
                    send({"type": "stdout", "id": self.call_id, "text": text})
                except (OSError, ValueError):
                    pass  # the frame channel is gone: the process is ending


LIVE = LiveStdout()


class CappedText(io.TextIOBase):
    """What a call prints, kept up to MAX_LOG characters; the rest is counted, not stored."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit
        self.parts = []
        self.size = 0
        self.cut = False
        self.buffer = _CapturedBytes(self)

    def writable(self):
        return True

    def write(self, text):
        text = str(text)
        room = self.limit - self.size
        if len(text) > room:
            self.cut = True
        if room > 0:
            part = text[:room]
            if part:
                self.parts.append(part)
                self.size += len(part)
                LIVE.add(part)
        return len(text)

    def getvalue(self):
        return "".join(self.parts) + self.buffer.rest()


class _CapturedBytes(io.RawIOBase):
    """sys.stdout.buffer during a call: bytes are kept as text, bytes that are not UTF-8 as U+FFFD."""

    def __init__(self, text):
        super().__init__()
        self.text = text
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def writable(self):
        return True

    def write(self, data):
        self.text.write(self.decoder.decode(bytes(data)))
        return len(data)

    def rest(self):
        return self.decoder.decode(b"", final=True)


OUTPUT_DIR = os.environ.get("FAAS_OUTPUT_DIR", "")


def clear_outputs():
    """Each call starts with an empty output folder: what is there afterwards is that call's."""
    if not OUTPUT_DIR or not os.path.isdir(OUTPUT_DIR):
        return
    import shutil

    for name in os.listdir(OUTPUT_DIR):
        path = os.path.join(OUTPUT_DIR, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.remove(path)
            except OSError:
                pass


MAX_OUTPUT = int(os.environ.get("FAAS_MAX_OUTPUT_BYTES", str(8 * 1024 * 1024)))


def read_outputs(frame):
    """The files the call left in the output folder go back with its result (base64), up to MAX_OUTPUT."""
    if not OUTPUT_DIR or not os.path.isdir(OUTPUT_DIR):
        return
    import base64

    paths = []
    total = 0
    for root, _, files in os.walk(OUTPUT_DIR):
        for name in files:
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                paths.append(path)
                total += os.path.getsize(path)
    if not paths:
        return
    if total > MAX_OUTPUT:
        frame["outputsTooLarge"] = total
        return
    outputs = []
    for path in paths:
        with open(path, "rb") as f:
            outputs.append({"path": os.path.relpath(path, OUTPUT_DIR), "data": base64.b64encode(f.read()).decode()})
    frame["outputs"] = outputs


def send(frame):
    frame["v"] = VERSION
    line = TOKEN + " " + json.dumps(frame, separators=(",", ":"), ensure_ascii=False, default=str) + "\n"
    with _send_lock:
        _frames.write(line)
        _frames.flush()


def _platform_frame(summary):
    """The bootstrap's own frames (call, run, load) and importlib's machinery are not the function's."""
    return summary.filename == __file__ or summary.filename.startswith("<frozen importlib")


def _one_line(exc):
    return "".join(exc.format_exception_only()).strip().replace("\n", " ")


def error_text(budget=MAX_ERROR):
    """The exception being handled as a person reads it first: its line (type and message), what it
    was raised from, then the function's traceback, most recent call last. Past `budget` characters
    the oldest frames go first; the exception line is cut only when it alone is longer."""
    exc = traceback.TracebackException(*sys.exc_info())
    head = "".join(exc.format_exception_only()).rstrip("\n")
    if len(head) > budget // 2:
        head = head[: budget // 2] + " …"
    lines = [head]
    chained, depth = exc, 0
    while depth < 3:
        if chained.__cause__ is not None:
            chained, why = chained.__cause__, "raised from"
        elif chained.__context__ is not None and not chained.__suppress_context__:
            chained, why = chained.__context__, "raised while handling"
        else:
            break
        lines.append(f"({why} {_one_line(chained)[:300]})")
        depth += 1
    frames = traceback.StackSummary.from_list([f for f in exc.stack if not _platform_frame(f)]).format()
    if not frames:
        return "\n".join(lines)[:budget]
    for skip in range(len(frames) + 1):
        cut = f"  … {skip} earlier frame{'s' if skip != 1 else ''} cut\n" if skip else ""
        text = "\n".join(lines) + "\nTraceback (most recent call last):\n" + cut + "".join(frames[skip:])
        if len(text) <= budget:
            return text.rstrip("\n")
    return text[:budget]


def write_files(files, workdir):
    import base64

    root = os.path.realpath(workdir)
    for item in files:
        rel = str(item.get("path", ""))
        target = os.path.realpath(os.path.join(root, rel))
        if rel.startswith("/") or ".." in rel.split("/") or not target.startswith(root + os.sep):
            raise ValueError(f"refusing to write {rel!r}")
        if rel.endswith("/"):
            os.makedirs(target, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(base64.b64decode(item.get("data", "")))
        os.chmod(target, int(item.get("mode", 0o644)) & 0o755)


def load(spec, workdir):
    module_name, _, attr = spec.rpartition(".")
    if not module_name:
        module_name, attr = spec, "handle"
    for extra in (os.path.join(workdir, ".packages"), workdir):
        if os.path.isdir(extra) and extra not in sys.path:
            sys.path.insert(0, extra)
    os.chdir(workdir)
    module = importlib.import_module(module_name)
    fn = getattr(module, attr)
    if not callable(fn):
        raise TypeError(f"{spec} is not callable")
    return fn


class CallError(Exception):
    """An error of the call that is not the function's traceback: unreadable params, a result that is not JSON."""


def read_params(text):
    if not isinstance(text, str):
        raise CallError("params could not be read: the request carries no params text")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_PARAMS:
        raise CallError(f"params could not be read: {size} bytes, past the limit of {MAX_PARAMS} bytes")
    try:
        return json.loads(text)
    except RecursionError:
        raise CallError(f"params could not be read: nested deeper than the python runtime can parse (recursion limit {sys.getrecursionlimit()})") from None
    except ValueError as exc:
        raise CallError(f"params could not be read: not JSON ({exc})") from None


def encode_result(result):
    try:
        return json.dumps(result, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except RecursionError:
        raise CallError("the result is not JSON: nested too deeply") from None
    except (TypeError, ValueError) as exc:
        raise CallError(f"the result is not JSON: {exc}") from None


def run(fn, params):
    result = fn(params)
    if hasattr(result, "__await__"):
        import asyncio

        result = asyncio.run(_await(result))
    return result


async def _await(awaitable):
    return await awaitable


def call(handler, request):
    call_id = request["id"]
    out = CappedText(MAX_LOG)
    frame = {"type": "result", "id": call_id}
    try:
        clear_outputs()
    except OSError:
        pass  # what cannot be removed stays; the call goes on
    call_env = request.get("env") or {}
    saved = {k: os.environ.get(k) for k in call_env}
    try:
        if handler is None:
            raise CallError("no function is loaded")
        params = read_params(request.get("params"))
        os.environ.update(call_env)
        LIVE.begin(call_id)
        with contextlib.redirect_stdout(out):
            result = run(handler, params)
        encoded = encode_result(result)
        if len(encoded.encode("utf-8", "surrogatepass")) > MAX_RESULT:
            frame["ok"] = False
            frame["tooLarge"] = True
            frame["error"] = f"the result is larger than {MAX_RESULT} bytes"
        else:
            frame["ok"] = True
            frame["result"] = encoded
    except CallError as exc:
        frame["ok"] = False
        frame["error"] = str(exc)[-MAX_ERROR:]
    except SystemExit as exc:  # the function asked to exit: that call ends, the container goes on
        frame["ok"] = False
        frame["exit"] = True
        frame["error"] = f"the function called sys.exit({exc.code!r})"
    except BaseException:  # the function's error ends this call, not the container
        frame["ok"] = False
        frame["error"] = error_text()
    finally:
        LIVE.end()
        # The call's own variables last for the call only.
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        read_outputs(frame)
    except OSError as exc:  # a file that went away or cannot be read: no outputs, the call stands
        frame["outputsError"] = str(exc)[:500]
    frame["stdout"] = out.getvalue()
    if out.cut:
        frame["stdoutTruncated"] = True
    # Everything this call wrote to fd 1 and fd 2 comes before this mark on the container's stderr.
    try:
        sys.__stdout__.flush()
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
    try:
        os.write(2, f"{TOKEN}:end:{call_id}\n".encode())
    except OSError:
        pass  # stderr closed by the function: the platform stops waiting for the mark
    send(frame)


def check(request):
    """The request's shape, or the reason it is refused."""
    if not isinstance(request, dict):
        return "a request that is not an object"
    if request.get("v") != VERSION:
        return f"protocol version {request.get('v')!r} is not {VERSION}"
    kind = request.get("type")
    if kind == "call":
        if not isinstance(request.get("id"), int) or isinstance(request.get("id"), bool) or request["id"] < 0:
            return "a call without a numeric id"
        env = request.get("env")
        if env is not None and (not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
            return "a call whose env is not an object of strings"
    elif kind == "load":
        if not isinstance(request.get("handler", ""), str):
            return "a load whose handler is not a string"
    elif kind == "files":
        files = request.get("files", [])
        if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
            return "a files request whose files are not a list of objects"
    else:
        return f"unknown request type {str(kind)[:32]!r}"
    return None


def requests(stream):
    """Request lines, each no longer than MAX_LINE; a longer one is skipped whole and reported as None."""
    while True:
        line = stream.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = stream.readline(MAX_LINE)
            yield None
            continue
        yield line


def reject(error, request=None):
    frame = {"type": "rejected", "error": error}
    if isinstance(request, dict) and isinstance(request.get("id"), int) and not isinstance(request.get("id"), bool) and request["id"] >= 0:
        frame["id"] = request["id"]
    send(frame)


def main():
    workdir = os.environ.get("FAAS_WORKDIR", os.getcwd())
    handler = None
    send({"type": "ready", "runtime": "python", "pid": os.getpid()})
    for line in requests(_requests):
        if line is None:
            reject(f"a request line longer than {MAX_LINE} bytes")
            continue
        if not line.strip():
            continue
        try:
            request = json.loads(line.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # a bad line costs that line only
            reject(f"a request line that is not JSON ({str(exc)[:200]})")
            continue
        problem = check(request)
        if problem:
            reject(problem, request)
            continue
        kind = request["type"]
        if kind == "files":
            try:
                write_files(request.get("files") or [], workdir)
                send({"type": "files"})
            except Exception:
                send({"type": "files", "error": error_text()})
        elif kind == "load":
            try:
                handler = load(request.get("handler") or "handler.handle", workdir)
                send({"type": "loaded"})
            except BaseException:  # an import error is the function's, reported, then the container ends
                send({"type": "loaded", "error": error_text()})
                sys.exit(3)
        else:
            call(handler, request)


if __name__ == "__main__":
    main()
