"""Run a Lambda custom runtime binary for one event, as AWS Lambda does.

`invoke` starts a Lambda Runtime API on 127.0.0.1 (a fresh one per call, so a
killed runtime's requests in flight can never reach another call), spawns the
binary with the Lambda environment, hands it the event on its first
`GET /runtime/invocation/next`, and returns its answer: the response body, or
the error it posted. Used by the emulator's Lambda proxy
(scripts/kiln_emulator/proxy.py) and by the cold-start benchmark
(bench/coldstart.py).

As a command, it runs one event from stdin with the caller's environment and
prints the answer; the exit status is 1 when the function answered an error:

    python3 scripts/local_lambda.py target/debug/audit-fleet < event.json
"""

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RUNTIME_PATH = "/2018-06-01/runtime"


@dataclass
class Answer:
    """What a runtime answered, and when (seconds after spawn)."""

    error: bool
    body: bytes
    ready_after: float
    answered_after: float
    stderr: str
    cpu: float = 0.0
    """User + system CPU seconds of the runtime's process, whole (init included)."""


class _Invocation:
    def __init__(self, event: bytes):
        self.event = event
        self.request_id = str(uuid.uuid4())
        self.ready_at = None
        self.done_at = None
        self.error = False
        self.body = b""
        self.delivered = False
        self.finished = threading.Event()


class _RuntimeApi(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, invocation):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.invocation = invocation
        self.closing = threading.Event()

    def handle_error(self, request, client_address):
        # A killed runtime's connection: expected, and nothing to report.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        inv = self.server.invocation
        if self.path != f"{RUNTIME_PATH}/invocation/next":
            self.send_error(404)
            return
        if inv.ready_at is None:
            inv.ready_at = time.perf_counter()
        if inv.delivered:
            # One event per process: park the runtime until it is stopped.
            self.server.closing.wait(600)
            self.close_connection = True
            return
        inv.delivered = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Lambda-Runtime-Aws-Request-Id", inv.request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 900_000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:local")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.send_header("Content-Length", str(len(inv.event)))
        self.end_headers()
        self.wfile.write(inv.event)

    def do_POST(self):
        inv = self.server.invocation
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        if inv.done_at is None and inv.request_id in self.path:
            inv.done_at = time.perf_counter()
            inv.error = self.path.endswith("/error")
            inv.body = body
            inv.finished.set()
        elif self.path.endswith("/init/error") and inv.done_at is None:
            inv.done_at = time.perf_counter()
            inv.error = True
            inv.body = body
            inv.finished.set()


def invoke(command, env, event: bytes, timeout: float = 900) -> Answer:
    """Runs `command` as a Lambda runtime for one `event` (JSON bytes)."""
    inv = _Invocation(event)
    api = _RuntimeApi(inv)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api.server_address[1]}")
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Drain stderr as it comes, so a chatty runtime never blocks on a full pipe.
    chunks = []
    drain = threading.Thread(target=lambda: chunks.extend(iter(lambda: process.stderr.read(4096), b"")), daemon=True)
    drain.start()
    deadline = start + timeout
    usage = None
    while not inv.finished.wait(0.05):
        usage = _reap(process, block=False)
        if usage is not None or time.perf_counter() > deadline:
            break
    answered = inv.finished.is_set()
    usage = usage or _reap(process, block=False)
    exited = usage is not None
    if not exited:
        process.kill()
        usage = _reap(process, block=True)
    cpu = usage.ru_utime + usage.ru_stime
    drain.join(5)
    api.closing.set()
    api.shutdown()
    api.server_close()
    stderr = b"".join(chunks).decode(errors="replace")
    if not answered:
        crash = {"errorType": "Runtime.ExitError" if exited else "Sandbox.Timedout",
                 "errorMessage": f"{command[0]} did not answer: {stderr[-2000:]}"}
        return Answer(True, json.dumps(crash).encode(), 0.0, time.perf_counter() - start, stderr, cpu)
    ready = (inv.ready_at or inv.done_at) - start
    return Answer(inv.error, inv.body, ready, inv.done_at - start, stderr, cpu)


def _reap(process, block):
    """The resource usage of `process` once it has exited (waiting for it
    when `block`), else None; `os.wait4` instead of Popen's wait, which
    keeps no usage."""
    pid, status, usage = os.wait4(process.pid, 0 if block else os.WNOHANG)
    if pid == 0:
        return None
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: local_lambda.py FUNCTION_BINARY < EVENT.json")
    env = dict(os.environ)
    env.setdefault("AWS_LAMBDA_FUNCTION_NAME", os.path.basename(sys.argv[1]))
    env.setdefault("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
    env.setdefault("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
    answer = invoke([sys.argv[1]], env, sys.stdin.buffer.read() or b"{}")
    sys.stdout.write(answer.body.decode(errors="replace") + "\n")
    sys.exit(1 if answer.error else 0)


if __name__ == "__main__":
    main()
