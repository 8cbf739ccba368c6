"""The emulator the test modules share: `python -m kiln_emulator serve` in a
subprocess (stdin piped, so it stops when the tests end), started once, on
first use, with two tiny functions and the pipeline; its ready line read.
EmulatorTestCase gives each test boto3 clients of it (key `testing`)."""

import atexit
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import boto3

SCRIPTS = Path(__file__).resolve().parents[2]
CANONICAL = "099720109477"
CURRENT = "noble-24.04-x86_64-20261118"
PREVIOUS = "noble-24.04-x86_64-20261021"
ARM = "noble-24.04-arm64-20261118"
TRUSTY = "trusty-14.04-x86_64-20160114"

RUNTIME = """#!{python}
import json, os, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
with urllib.request.urlopen(api + "next") as event:
    request_id = event.headers["Lambda-Runtime-Aws-Request-Id"]
    event = json.load(event)
{handler}
urllib.request.urlopen(api + request_id + "/response", data=json.dumps(answer).encode()).read()
"""
FUNCTIONS = {
    # Lambda custom runtimes. echo answers its one event with the event and its name.
    "echo": """answer = {"event": event, "name": os.environ["AWS_LAMBDA_FUNCTION_NAME"]}""",
    # caller makes its AWS calls as a kiln function does: from the environment
    # (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...; boto3 reads no AWS_REGION).
    "caller": """import boto3
session = boto3.Session(region_name=os.environ["AWS_REGION"])
parameter = session.client("ssm").get_parameter(Name=event["name"])["Parameter"]
identity = session.client("sts").get_caller_identity()
answer = {"value": parameter["Value"], "account": identity["Account"],
          "key": os.environ["AWS_ACCESS_KEY_ID"], "endpoint": os.environ["AWS_ENDPOINT_URL"]}""",
}

_shared = {}


def shared():
    """The ready line of the shared emulator, started on first call."""
    if not _shared:
        functions = tempfile.TemporaryDirectory()
        for name, handler in FUNCTIONS.items():
            path = Path(functions.name, name)
            path.write_text(RUNTIME.format(python=sys.executable, handler=handler))
            path.chmod(0o755)
        emulator = subprocess.Popen(
            [
                sys.executable, "-m", "kiln_emulator", "serve", "--port", "0",
                "--functions", functions.name, "--fault", "echo:crash:Injected",
                "--pipeline", str(SCRIPTS.parent / "statemachine/pipeline.asl.json"),
            ],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONPATH=str(SCRIPTS)),
        )

        def stop():
            emulator.stdin.close()
            emulator.wait(30)
            emulator.stdout.close()
            functions.cleanup()

        atexit.register(stop)
        _shared["info"] = json.loads(emulator.stdout.readline())
    return _shared["info"]


class EmulatorTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.info = shared()
        cls.session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=cls.info["region"]
        )

    def client(self, service, endpoint=None, account=None):
        """A client of the emulator; with `account`, acting as that account
        (moto's x-moto-account-id), so a test can have a region to itself."""
        client = self.session.client(service, endpoint_url=endpoint or self.info["endpoint"])
        if account:
            client.meta.events.register(
                f"before-sign.{client.meta.service_model.service_id.hyphenize()}.*",
                lambda request, **_: request.headers.add_header("x-moto-account-id", account),
            )
        return client

    def image(self, name):
        return self.info["images"][name]

    def wait_for(self, probe):
        deadline = time.monotonic() + 30
        while not (result := probe()):
            self.assertLess(time.monotonic(), deadline, "timed out")
            time.sleep(0.2)
        return result
