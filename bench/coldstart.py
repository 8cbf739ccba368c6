"""Cold start and package size of kiln's Lambda binaries, against Python + boto3.

For each release binary, N times: start a fake Lambda Runtime API on
127.0.0.1, spawn the binary as a custom runtime would be spawned, and time
  * init: spawn -> its first GET /runtime/invocation/next (runtime, config and
    clients ready), and
  * first event: spawn -> the response to one real event, handled against the
    local emulator (the events chain: resolve -> launch -> provision -> image).
The baseline (bench/baseline.py) is resolve-source in Python 3 + boto3 with
the same client setup and calls, measured the same way. Reports medians, the
ratios, and each binary stripped and zipped as a Lambda package (`bootstrap`).

Usage: .venv/bin/python bench/coldstart.py --target-dir target/release [--runs N]
"""

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ["resolve-source", "launch-builder", "run-ssm-provision", "create-image"]


class Invocation:
    """One process lifetime: one event in, one answer out."""

    def __init__(self, event):
        self.event = json.dumps(event).encode()
        self.request_id = str(uuid.uuid4())
        self.ready_at = None
        self.done_at = None
        self.answer = None
        self.delivered = False
        self.finished = threading.Event()


class RuntimeApi(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A killed runtime's connection: expected, and nothing to report.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.current = None
        self.closing = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        inv = self.server.current
        if not self.path.endswith("/invocation/next") or inv is None:
            self.send_error(404)
            return
        if inv.ready_at is None:
            inv.ready_at = time.perf_counter()
        if inv.delivered:
            # One event per process: park the runtime until it is killed.
            self.server.closing.wait(60)
            self.close_connection = True
            return
        inv.delivered = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Lambda-Runtime-Aws-Request-Id", inv.request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.send_header("Content-Length", str(len(inv.event)))
        self.end_headers()
        self.wfile.write(inv.event)

    def do_POST(self):
        inv = self.server.current
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        if inv is not None and inv.done_at is None:
            inv.done_at = time.perf_counter()
            kind = "error" if self.path.endswith("/error") else "response"
            inv.answer = (kind, json.loads(body or b"null"))
            inv.finished.set()


def run_once(command, env, event):
    """One cold start, on a Runtime API of its own: requests a killed process
    left in flight can never reach the next run's API."""
    api = RuntimeApi()
    threading.Thread(target=api.serve_forever, daemon=True).start()
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api.server_address[1]}")
    inv = Invocation(event)
    api.current = inv
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    finished = inv.finished.wait(60)
    process.kill()
    _, stderr = process.communicate()
    api.current = None
    api.closing.set()
    api.shutdown()
    api.server_close()
    if not finished or inv.ready_at is None:
        sys.exit(f"{command[0]} never answered:\n{stderr.decode(errors='replace')[-2000:]}")
    kind, answer = inv.answer
    if kind == "error":
        sys.exit(f"{command[0]} answered an error: {answer}")
    return (inv.ready_at - start) * 1000, (inv.done_at - start) * 1000, answer


def zipped_size(binary):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        archive.writestr(info, binary.read_bytes(), compress_type=zipfile.ZIP_DEFLATED)
    return len(buffer.getvalue())


def start_emulator():
    process = subprocess.Popen(
        [str(ROOT / "scripts/emulator"), "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    seeded = json.loads(process.stdout.readline())
    return process, seeded


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-dir", default=str(ROOT / "target/release"))
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    target = Path(args.target_dir)

    emulator, seeded = start_emulator()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_REGION": seeded["region"],
        "AWS_DEFAULT_REGION": seeded["region"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": seeded["endpoint"],
        "KILN_RECIPE_ROOT": str(ROOT / "images"),
        "KILN_SOURCE_PARAMETER": seeded["source_parameter"],
    }

    state = {"recipe": "ubuntu-base", "build_id": "bench-coldstart", "reason": "manual"}
    results = {}
    try:
        for name in FUNCTIONS:
            event = dict(state)
            if name in ("run-ssm-provision", "create-image"):
                event["action"] = "start"
            samples = [run_once([str(target / name)], env, event) for _ in range(args.runs)]
            answer = samples[-1][2]
            key = {"resolve-source": "source", "launch-builder": "builder",
                   "run-ssm-provision": "provision", "create-image": "image"}[name]
            state[key] = answer
            results[name] = samples
        python = [str(Path(sys.executable)), str(ROOT / "bench/baseline.py")]
        results["python+boto3"] = [run_once(python, env, state) for _ in range(args.runs)]
    finally:
        emulator.stdin.close()
        emulator.wait(10)

    def median(samples, i):
        return statistics.median(s[i] for s in samples)

    base_init = median(results["python+boto3"], 0)
    base_total = median(results["python+boto3"], 1)
    print(f"cold start, median of {args.runs} runs each (spawn -> first /next, spawn -> first event answered)")
    print(f"{'function':<20}{'init ms':>10}{'event ms':>10}{'init x':>9}{'event x':>9}{'zipped MB':>11}")
    for name, samples in results.items():
        init, total = median(samples, 0), median(samples, 1)
        if name == "python+boto3":
            print(f"{name:<20}{init:>10.1f}{total:>10.1f}{'1.0':>9}{'1.0':>9}{'-':>11}")
            continue
        size = zipped_size(target / name) / 1e6
        print(f"{name:<20}{init:>10.1f}{total:>10.1f}{base_init / init:>9.1f}{base_total / total:>9.1f}{size:>11.2f}")
    print("x = Python+boto3 median / ours (higher is faster). The baseline handles a resolve-source event;")
    print("each function's event is its own real step against the local emulator.")


if __name__ == "__main__":
    main()
