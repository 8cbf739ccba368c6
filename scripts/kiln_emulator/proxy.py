"""The Lambda proxy of `serve --functions DIR`: moto's Step Functions executor
makes its service calls to it (MOTO_PORT). It answers Lambda Invoke by running
the function binary DIR/NAME for the event through the Lambda Runtime API
(local_lambda.py, beside this package in scripts/, so importable whenever the
package is), as real Lambda answers: 200, and X-Amz-Function-Error: Unhandled
when the function answered an error. Every other call goes to moto.

`--fault FUNCTION[:ACTION]:ERROR` is for tests: FUNCTION runs and does its
work, then answers the function error ERROR instead of its own answer (only
for events whose "action" is ACTION, when given).
"""

import http.client
import json
import re
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import local_lambda

INVOKE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations")


class LambdaProxy(ThreadingHTTPServer):
    """Lambda Invoke runs a local function binary; every other call goes to moto."""

    daemon_threads = True

    def __init__(self, functions, moto_port, function_env, faults):
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.functions = Path(functions)
        self.moto_port = moto_port
        self.function_env = function_env
        self.faults = faults

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


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status, body, headers=()):
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        body = self._body()
        invoke = INVOKE_PATH.match(self.path) if self.command == "POST" else None
        if invoke:
            self._invoke(urllib.parse.unquote(invoke.group(1)), body)
        else:
            self._forward(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    def _invoke(self, function, event):
        # A name, or an ARN ...:function:NAME[:QUALIFIER].
        name = function.split(":function:")[-1].split(":")[0]
        binary = self.server.functions / name
        if not binary.is_file():
            message = json.dumps({"Type": "User", "message": f"Function not found: {function}"}).encode()
            self._answer(404, message, [("x-amzn-ErrorType", "ResourceNotFoundException")])
            return
        env = dict(self.server.function_env, AWS_LAMBDA_FUNCTION_NAME=name)
        answer = local_lambda.invoke([str(binary)], env, event or b"{}")
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

    def _forward(self, body):
        connection = http.client.HTTPConnection("127.0.0.1", self.server.moto_port, timeout=300)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        skip = ("content-length", "transfer-encoding", "connection", "server", "date")
        self._answer(response.status, data, [(k, v) for k, v in response.getheaders() if k.lower() not in skip])
        connection.close()
