"""The Lambda proxy of `serve --functions DIR`: moto's Step Functions executor
makes its service calls to it (MOTO_PORT), and so do the functions it runs.
It answers Lambda Invoke by running the function binary DIR/NAME for the
event through the Lambda Runtime API (local_lambda.py, beside this package
in scripts/, so importable whenever the package is), as real Lambda
answers: 200, and X-Amz-Function-Error: Unhandled when the function answered
an error. Every other call goes to moto unchanged.

Each function runs with AWS_ENDPOINT_URL this proxy and the access key id
`kiln-function-NAME` (secret `testing`; moto takes any key it does not know
for its default account), so the calls a function makes can be told apart.
The proxy records every call it is sent but moto's own API (/moto-api/...):
the calls it forwards and the Lambda Invokes it answers, in order, each as
calls.record makes it; a forwarded call's record gains `status`, the HTTP
status moto answered (a test can tell an S3 GetObject of a missing key, a
404, which AWS answers 403 to a caller without s3:ListBucket), and an
Invoke's `cpu` once answered: the user + system CPU seconds its function's
process used (what a benchmark counts as the functions' own work, apart
from the emulator's). `GET /_kiln/calls` answers the records so far (a JSON
array), `DELETE /_kiln/calls` empties them.

Two hooks change state, each standing in for time passing, which a test
cannot wait out; each takes a time in the past and changes nothing else.
`POST /_kiln/launch-time` with `{"instance_id": ID, "launch_time": RFC3339}`
(and `"account"`, `"region"`, by default the emulator's) dates the
instance's launch to then: the sweep tells an overdue build by its
instances' age (hours or days). `POST /_kiln/deprecation-time` with
`{"image_id": ID, "deprecation_time": RFC3339}` (same options) makes the
image deprecated since then, which EnableImageDeprecation refuses to set in
the past: retention disables an image once its deprecation time has passed.

`POST /_kiln/command-output` with `{"contains": TEXT, "stdout": TEXT}` (and
`"account"`, `"region"`, by default the emulator's) says what Run Commands
print, which nothing on an emulated instance can: a command sent afterwards
whose lines contain `contains` prints `stdout` (patches/command_output.py).

`--fault FUNCTION[:ACTION]:ERROR` is for tests: FUNCTION runs and does its
work, then answers the function error ERROR instead of its own answer (only
for events whose "action" is ACTION, when given).
"""

import http.client
import json
import threading
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import local_lambda

from . import ACCOUNT, REGION
from .calls import INVOKE_PATH, record

CALLS_PATH = "/_kiln/calls"
LAUNCH_TIME_PATH = "/_kiln/launch-time"
DEPRECATION_TIME_PATH = "/_kiln/deprecation-time"
COMMAND_OUTPUT_PATH = "/_kiln/command-output"


class LambdaProxy(ThreadingHTTPServer):
    """Lambda Invoke runs a local function binary; every other call goes to moto."""

    daemon_threads = True

    def __init__(self, functions, moto_port, function_env, faults):
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.functions = Path(functions)
        self.moto_port = moto_port
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.function_env = dict(function_env, AWS_ENDPOINT_URL=self.url)
        self.faults = faults
        self.calls = []
        self.calls_lock = threading.Lock()

    def fault(self, name, event):
        """The error to answer instead of the function's own, for tests."""
        try:
            action = json.loads(event or b"{}").get("action", "")
        except ValueError:
            action = ""
        for function, fault_action, error in self.faults:
            if function == name and fault_action in ("", action):
                return error
        return None

    def record(self, call):
        with self.calls_lock:
            self.calls.append(call)

    def recorded(self, clear=False):
        with self.calls_lock:
            calls = list(self.calls)
            if clear:
                self.calls.clear()
        return calls


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY each
    # answer waits out the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    moto = None  # this connection's keep-alive connection to moto

    def log_message(self, *args):
        pass

    def _body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status, body, headers=(), length=None):
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        body = self._body()
        path = urllib.parse.urlsplit(self.path).path
        if path == CALLS_PATH:
            self._calls()
            return
        if path == LAUNCH_TIME_PATH:
            self._launch_time(body)
            return
        if path == DEPRECATION_TIME_PATH:
            self._deprecation_time(body)
            return
        if path == COMMAND_OUTPUT_PATH:
            self._command_output(body)
            return
        call = record(self.command, self.path, self.headers, body)
        if not path.startswith("/moto-api/"):
            self.server.record(call)
        invoke = INVOKE_PATH.match(self.path) if self.command == "POST" else None
        if invoke:
            self._invoke(urllib.parse.unquote(invoke.group(1)), body, call)
        else:
            call["status"] = self._forward(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    def _calls(self):
        if self.command not in ("GET", "DELETE"):
            self._answer(405, b"", [("Allow", "GET, DELETE")])
            return
        calls = self.server.recorded(clear=self.command == "DELETE")
        body = json.dumps(calls).encode() if self.command == "GET" else b""
        self._answer(200 if body else 204, body, [("Content-Type", "application/json")] if body else [])

    def _past(self, body, key, find):
        """For a hook: what `find(backend, request)` finds and the request's
        `key` time (in the past, as UTC); None once it answered an error."""
        if self.command != "POST":
            self._answer(405, b"", [("Allow", "POST")])
            return None
        # Imported here: moto's EC2 models must load after cli.serve has set
        # moto up (its images, the patches).
        from moto.core.utils import utcnow
        from moto.ec2.exceptions import EC2ClientError
        from moto.ec2.models import ec2_backends

        json_type = [("Content-Type", "application/json")]
        try:
            request = json.loads(body)
            when = datetime.fromisoformat(request[key].replace("Z", "+00:00"))
            backend = ec2_backends[request.get("account", ACCOUNT)][request.get("region", REGION)]
            found = find(backend, request)
        except (ValueError, KeyError, TypeError, EC2ClientError) as error:
            self._answer(400, json.dumps({"message": repr(error)}).encode(), json_type)
            return None
        if when.tzinfo is None or when > utcnow().replace(tzinfo=timezone.utc):
            self._answer(400, json.dumps({"message": f"{key} must be in the past, with its offset"}).encode(),
                         json_type)
            return None
        return found, when.astimezone(timezone.utc)

    def _launch_time(self, body):
        found = self._past(body, "launch_time", lambda backend, r: backend.get_instance(r["instance_id"]))
        if found:
            instance, when = found
            # moto keeps naive UTC datetimes.
            instance.launch_time = when.replace(tzinfo=None)
            self._answer(204, b"")

    def _deprecation_time(self, body):
        found = self._past(body, "deprecation_time", lambda backend, r: backend.amis[r["image_id"]])
        if found:
            image, when = found
            image.deprecation_time = when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
            self._answer(204, b"")

    def _command_output(self, body):
        if self.command != "POST":
            self._answer(405, b"", [("Allow", "POST")])
            return
        from .patches import command_output

        try:
            request = json.loads(body)
            contains, stdout = request["contains"], request["stdout"]
            if not (isinstance(contains, str) and contains and isinstance(stdout, str)):
                raise ValueError("contains (not empty) and stdout are strings")
        except (ValueError, KeyError, TypeError) as error:
            message = json.dumps({"message": repr(error)}).encode()
            self._answer(400, message, [("Content-Type", "application/json")])
            return
        command_output.register(request.get("account", ACCOUNT), request.get("region", REGION), contains, stdout)
        self._answer(204, b"")

    def _invoke(self, function, event, call):
        # A name, or an ARN ...:function:NAME[:QUALIFIER].
        name = function.split(":function:")[-1].split(":")[0]
        binary = self.server.functions / name
        if not binary.is_file():
            message = json.dumps({"Type": "User", "message": f"Function not found: {function}"}).encode()
            self._answer(404, message, [("x-amzn-ErrorType", "ResourceNotFoundException")])
            return
        env = dict(self.server.function_env, AWS_LAMBDA_FUNCTION_NAME=name,
                   AWS_ACCESS_KEY_ID=f"kiln-function-{name}")
        answer = local_lambda.invoke([str(binary)], env, event or b"{}")
        call["cpu"] = answer.cpu
        headers = [("Content-Type", "application/json"), ("X-Amz-Executed-Version", "$LATEST")]
        fault = self.server.fault(name, event)
        if fault:
            # The function ran and did its work; then it "crashed": what it
            # launched or made must still be found and cleaned up.
            answer.error = True
            answer.body = json.dumps({"errorType": fault, "errorMessage": f"injected after {name} ran"}).encode()
        if answer.error:
            headers.append(("X-Amz-Function-Error", "Unhandled"))
        self._answer(200, answer.body, headers)

    def _moto_response(self, body):
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "content-length", "transfer-encoding", "connection")}
        reused = self.moto is not None
        if not reused:
            self.moto = http.client.HTTPConnection("127.0.0.1", self.server.moto_port, timeout=300)
        try:
            self.moto.request(self.command, self.path, body=body, headers=headers)
            return self.moto.getresponse()
        except (ConnectionError, http.client.BadStatusLine):
            self.moto.close()
            self.moto = None
            if not reused:
                raise
        # moto had closed the kept-alive connection: once more, on a new one.
        return self._moto_response(body)

    def _forward(self, body):
        response = self._moto_response(body)
        data = response.read()
        if response.will_close:
            self.moto.close()
            self.moto = None
        skip = ("content-length", "transfer-encoding", "connection", "server", "date")
        headers = [(k, v) for k, v in response.getheaders() if k.lower() not in skip]
        # HEAD answers the length of what GET would, with no body.
        length = response.getheader("Content-Length") if self.command == "HEAD" else None
        self._answer(response.status, data, headers, length=length or None)
        return response.status

    def finish(self):
        super().finish()
        if self.moto is not None:
            self.moto.close()
