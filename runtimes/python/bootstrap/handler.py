"""Handler-mode bootstrap of the python runtime.

Started once per container. It reads one JSON request per line on stdin and answers with one line on
stdout that starts with the frame token the platform passed in FAAS_FRAME_TOKEN; anything else
written to stdout or stderr is a log line of the call in flight. Requests:
  {"op": "files", "files": [{"path", "mode", "data"}]}  write the function's files (base64) first,
                                               when the container started without them (a stem cell)
  {"op": "load", "handler": "handler.handle"}  import the function (once)
  {"op": "call", "id": 7, "params": {...}, "env": {...}}  run it (env: the call's own variables, for it only)
What the function prints to stdout is captured per call and returned with the answer (stdout is the
protocol's channel); what it writes to stderr goes out as it is written, so that it survives a crash,
and each call's stderr ends with a mark (token:end:id) so that it is never mixed with the next call's.
"""
import contextlib
import importlib
import io
import json
import os
import sys
import traceback

# The token is not left in the function's os.environ (a function that forges frames only garbles its own calls).
TOKEN = os.environ.pop("FAAS_FRAME_TOKEN", "")
# The protocol keeps its own copy of stdout; stray writes to fd 1 go where stderr goes.
_proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
os.dup2(2, 1)
sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True)

MAX_LOG = int(os.environ.get("FAAS_MAX_LOG_BYTES", str(1024 * 1024)))
MAX_RESULT = int(os.environ.get("FAAS_MAX_RESULT_BYTES", str(1024 * 1024)))


class CappedText(io.TextIOBase):
    """What a call prints, kept up to MAX_LOG characters; the rest is counted, not stored."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit
        self.parts = []
        self.size = 0
        self.cut = False

    def writable(self):
        return True

    def write(self, text):
        room = self.limit - self.size
        if len(text) > room:
            self.cut = True
        if room > 0:
            part = text[:room]
            self.parts.append(part)
            self.size += len(part)
        return len(text)

    def getvalue(self):
        return "".join(self.parts)


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
    """The files the call left in the output folder go back with its answer (base64), up to MAX_OUTPUT."""
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
    _proto.write(TOKEN + " " + json.dumps(frame, separators=(",", ":"), ensure_ascii=False, default=str) + "\n")
    _proto.flush()


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


def run(fn, params):
    result = fn(params)
    if hasattr(result, "__await__"):
        import asyncio

        result = asyncio.run(_await(result))
    return result


async def _await(awaitable):
    return await awaitable


def main():
    workdir = os.environ.get("FAAS_WORKDIR", os.getcwd())
    handler = None
    send({"op": "ready"})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            request = json.loads(line)
        except ValueError:
            continue
        op = request.get("op")
        if op == "files":
            try:
                write_files(request.get("files") or [], workdir)
                send({"op": "files"})
            except Exception:
                send({"op": "files", "error": traceback.format_exc(limit=5)[-2000:]})
        elif op == "load":
            try:
                handler = load(request.get("handler") or "handler.handle", workdir)
                send({"op": "loaded"})
            except BaseException:  # an import error is the function's, reported, not fatal to the protocol
                send({"op": "loaded", "error": traceback.format_exc(limit=20)[-4000:]})
                sys.exit(3)
        elif op == "call":
            out = CappedText(MAX_LOG)
            frame = {"op": "result", "id": request.get("id")}
            clear_outputs()
            call_env = request.get("env") or {}
            saved = {k: os.environ.get(k) for k in call_env}
            try:
                os.environ.update({str(k): str(v) for k, v in call_env.items()})
                with contextlib.redirect_stdout(out):
                    result = run(handler, request.get("params"))
                encoded = json.dumps(result, separators=(",", ":"), ensure_ascii=False)
                if len(encoded.encode("utf-8")) > MAX_RESULT:
                    frame["ok"] = False
                    frame["tooLarge"] = True
                    frame["error"] = f"the result is larger than {MAX_RESULT} bytes"
                else:
                    frame["ok"] = True
                    frame["result"] = encoded
            except BaseException as exc:  # the function's error ends this call, not the container
                if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                    frame["exit"] = True
                frame["ok"] = False
                frame["error"] = traceback.format_exc(limit=20)[-4000:]
            finally:
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
            # Everything this call wrote to stderr comes before this mark on the same stream.
            try:
                sys.stderr.flush()
                os.write(2, f"{TOKEN}:end:{request.get('id')}\n".encode())
            except OSError:
                pass  # stderr closed by the function: the platform stops waiting for the mark
            send(frame)
            if frame.get("exit"):
                sys.exit(1)


if __name__ == "__main__":
    main()
