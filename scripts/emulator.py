"""Runs moto server seeded for kiln, with four small patches: ENA, the
execution start time as Step Functions gives it, AssumeRole of a role that
does not exist, and DescribeInstances pages.

Seeds:
  * Canonical-owned (099720109477) Ubuntu 24.04 images, amd64 and arm64, the
    newest and the one before, all with ENA support, and an old Ubuntu 14.04
    image from before ENA (none);
  * the Canonical-style source parameter at SOURCE_PARAMETER (the emulator
    reserves /aws/..., so the path differs from the real one: point kiln at it
    with KILN_SOURCE_PARAMETER);
  * the builder's IAM role and instance profile `kiln-builder` with
    AmazonSSMManagedInstanceCore (unless --no-builder-profile: the stack of
    infra/template.yaml creates its own);
  * a second account, MEMBER_ACCOUNT, with the role MEMBER_ROLE that an audit
    across accounts assumes.

With --functions DIR the emulator also runs the build state machine for real:
Step Functions executes definitions, and a proxy in front of moto (moto's
executor calls http://localhost:$MOTO_PORT, which is the proxy) answers Lambda
Invoke by running the function binary from DIR through the Lambda Runtime API
(scripts/local_lambda.py), with real Lambda's answer to a function error (200
and X-Amz-Function-Error: Unhandled), and passes everything else to moto.
With --pipeline FILE it creates that state machine, each ${NameFunction}
placeholder naming the function binary name-in-kebab-case.

The ENA patch: moto does not model ENA at all. Real AWS reports `enaSupport`
on images and instances; instances take it from their image, and
CreateImage/CopyImage images inherit it from their instance or source. The
patch adds exactly that, starting from the seed JSON's `ena_support`, so
kiln's real ENA check runs unchanged against the emulator. RegisterImage is
not patched (moto drops its EnaSupport parameter): registered images have none.

The start time patch: in a state machine, `$$.Execution.StartTime` is an ISO
8601 string (`2026-11-26T02:30:00.123Z`); moto passes a Python datetime, which
its own DescribeExecution then fails to serialize. The patch makes it the
string AWS gives.

The AssumeRole patch: moto lets any role ARN be assumed, even one that does
not exist; AWS answers AccessDenied. The patch refuses a role its account
does not have, so an audit's "role that cannot be assumed" is real.

The pages patch: moto counts DescribeInstances' MaxResults in reservations;
AWS counts instances (a page of MaxResults 1000 holds at most 1000
instances, whatever the reservations). The patch pages by instances, never
splitting a reservation, so the audit's call count is checked as on AWS.
"""

import argparse
import http.client
import json
import os
import re
import signal
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local_lambda  # noqa: E402

REGION = "us-east-1"
CANONICAL = "099720109477"
SOURCE_PARAMETER = (
    "/kiln-emulator/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
)
INSTANCE_PROFILE = "kiln-builder"
ACCOUNT = "123456789012"
MEMBER_ACCOUNT = "210987654321"
MEMBER_ROLE = "kiln-audit"
INVOKE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations")

IMAGES = [
    # (id, architecture, release, serial, current, ENA)
    ("ami-0a1b2c3d4e5f60001", "x86_64", "noble-24.04", "20261118", True, True),
    ("ami-0a1b2c3d4e5f60002", "x86_64", "noble-24.04", "20261021", False, True),
    ("ami-0a1b2c3d4e5f60003", "arm64", "noble-24.04", "20261118", True, True),
    ("ami-0a1b2c3d4e5f60004", "x86_64", "trusty-14.04", "20160114", False, False),
]


def seed_images():
    images = []
    for ami_id, arch, release, serial, _, ena in IMAGES:
        deb_arch = "amd64" if arch == "x86_64" else "arm64"
        images.append(
            {
                "ami_id": ami_id,
                "name": f"ubuntu/images/hvm-ssd-gp3/ubuntu-{release}-{deb_arch}-server-{serial}",
                "owner_id": CANONICAL,
                "architecture": arch,
                "virtualization_type": "hvm",
                "root_device_type": "ebs",
                "root_device_name": "/dev/sda1",
                "state": "available",
                "public": True,
                "description": f"Canonical, Ubuntu, {release}, {deb_arch} image",
                "creation_date": f"{serial[:4]}-{serial[4:6]}-{serial[6:]}T00:00:00.000Z",
                "region_name": REGION,
                "ena_support": ena,
            }
        )
    return images


def patch_ena():
    """Teach moto ENA, as AWS behaves (see the module docstring)."""
    from moto.ec2.models.amis import Ami
    from moto.ec2.models.instances import Instance

    ami_init = Ami.__init__

    def ami_with_ena(self, *args, ena_support=None, **kwargs):
        ami_init(self, *args, **kwargs)
        if ena_support is None:
            origin = kwargs.get("instance") or kwargs.get("source_ami")
            ena_support = getattr(origin, "ena_support", False)
        self.ena_support = bool(ena_support)

    Ami.__init__ = ami_with_ena

    instance_init = Instance.__init__

    def instance_with_ena(self, ec2_backend, image_id, *args, **kwargs):
        instance_init(self, ec2_backend, image_id, *args, **kwargs)
        image = ec2_backend.amis.get(self.image_id)
        self.ena_support = bool(getattr(image, "ena_support", False))

    Instance.__init__ = instance_with_ena


def patch_start_time():
    """Give `$$.Execution.StartTime` as AWS does (see the module docstring)."""
    from datetime import datetime, timezone

    from moto.stepfunctions.parser.backend import execution_worker

    execution_data = execution_worker.ExecutionData

    def with_iso_start(**fields):
        start = fields.get("StartTime")
        if isinstance(start, datetime):
            start = start.astimezone(timezone.utc).isoformat(timespec="milliseconds")
            fields["StartTime"] = start.replace("+00:00", "Z")
        return execution_data(**fields)

    execution_worker.ExecutionData = with_iso_start


def patch_assume_role():
    """Refuse to assume a role that does not exist (see the module docstring)."""
    import warnings

    from moto.iam.models import iam_backends
    from moto.sts.exceptions import STSClientError
    from moto.sts.models import STSBackend

    assume_role = STSBackend.assume_role

    def assume_existing_role(self, region_name, role_session_name, role_arn, *args, **kwargs):
        parts = role_arn.split(":")
        account, resource = (parts[4], parts[5]) if len(parts) == 6 else ("", "")
        name = resource.removeprefix("role/").rsplit("/", 1)[-1]
        roles = iam_backends[account]["global"].roles.values() if account.isdigit() else []
        if not resource.startswith("role/") or all(r.name != name for r in roles):
            raise STSClientError(
                "AccessDenied", f"Not authorized to perform sts:AssumeRole on resource: {role_arn}"
            )
        return assume_role(self, region_name, role_session_name, role_arn, *args, **kwargs)

    STSBackend.assume_role = assume_existing_role
    # STS models no AccessDenied shape; moto still answers it as AWS does.
    warnings.filterwarnings("ignore", message=".*AccessDenied does not match an error shape")


def patch_instance_pages():
    """Page DescribeInstances by instances (see the module docstring)."""
    from moto.core.responses import ActionResult
    from moto.ec2.responses.instances import InstanceResponse

    describe = InstanceResponse.describe_instances

    def describe_by_instances(self):
        if "MaxResults" not in self.data or "InstanceId.1" in self.data:
            return describe(self)
        self.error_on_dryrun()
        reservations = self.ec2_backend.describe_instances(
            filters=self._filters_from_querystring()
        )
        ids = [reservation.id for reservation in reservations]
        token = self._get_param("NextToken")
        start = ids.index(token) + 1 if token in ids else 0
        limit = int(self._get_param("MaxResults"))
        page, count = [], 0
        for reservation in reservations[start:]:
            if page and count + len(reservation.instances) > limit:
                break
            page.append(reservation)
            count += len(reservation.instances)
        more = start + len(page) < len(reservations)
        return ActionResult({"Reservations": page, "NextToken": page[-1].id if more else None})

    InstanceResponse.describe_instances = describe_by_instances


def trust(principal):
    """A role trust policy letting `principal` assume the role."""
    statement = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def seed_member_account(session, endpoint):
    """The member account's audit role, created as that account."""
    iam = session.client("iam", endpoint_url=endpoint)
    iam.meta.events.register(
        "before-sign.iam.*",
        lambda request, **_: request.headers.add_header("x-moto-account-id", MEMBER_ACCOUNT),
    )
    iam.create_role(
        RoleName=MEMBER_ROLE, AssumeRolePolicyDocument=trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"})
    )
    return f"arn:aws:iam::{MEMBER_ACCOUNT}:role/{MEMBER_ROLE}"


def seed(endpoint, builder_profile=True):
    import boto3

    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    ssm = session.client("ssm", endpoint_url=endpoint)
    current = next(i for i in IMAGES if i[1] == "x86_64" and i[4])
    ssm.put_parameter(
        Name=SOURCE_PARAMETER, Value=current[0], Type="String", DataType="aws:ec2:image"
    )
    if builder_profile:
        iam = session.client("iam", endpoint_url=endpoint)
        iam.create_role(
            RoleName=INSTANCE_PROFILE,
            AssumeRolePolicyDocument=trust({"Service": "ec2.amazonaws.com"}),
        )
        iam.attach_role_policy(
            RoleName=INSTANCE_PROFILE,
            PolicyArn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
        )
        iam.create_instance_profile(InstanceProfileName=INSTANCE_PROFILE)
        iam.add_role_to_instance_profile(InstanceProfileName=INSTANCE_PROFILE, RoleName=INSTANCE_PROFILE)
    member_role = seed_member_account(session, endpoint)
    return {
        "endpoint": endpoint,
        "region": REGION,
        "account": ACCOUNT,
        "member_role": member_role,
        "source_parameter": SOURCE_PARAMETER,
        "source_ami": current[0],
        "instance_profile": INSTANCE_PROFILE,
        "images": {f"{release}-{arch}-{serial}": ami for ami, arch, release, serial, *_ in IMAGES},
    }


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


def substitute(definition, substitutions):
    return re.sub(r"\$\{(\w+)\}", lambda m: substitutions.get(m.group(1), m.group(0)), definition)


def function_arn(placeholder):
    """`ResolveSourceFunction` -> the ARN of function `resolve-source`."""
    name = re.sub(r"(?<!^)([A-Z])", r"-\1", placeholder[: -len("Function")]).lower()
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def create_pipeline(endpoint, path):
    import boto3

    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    definition = Path(path).read_text()
    names = set(re.findall(r"\$\{(\w+)\}", definition))
    substitutions = {name: function_arn(name) for name in names if name.endswith("Function")}
    substitutions["EventBusName"] = "default"
    role = session.client("iam", endpoint_url=endpoint).create_role(
        RoleName="kiln-pipeline",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
    )["Role"]["Arn"]
    machine = session.client("stepfunctions", endpoint_url=endpoint).create_state_machine(
        name="kiln-pipeline", definition=substitute(definition, substitutions), roleArn=role, type="STANDARD"
    )
    return machine["stateMachineArn"]


def serve(args):
    seed_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(seed_images(), seed_file)
    seed_file.close()
    os.environ["MOTO_AMIS_PATH"] = seed_file.name
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    patch_ena()
    patch_start_time()
    patch_assume_role()
    patch_instance_pages()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    info = seed(endpoint, builder_profile=not args.no_builder_profile)
    os.unlink(seed_file.name)
    if args.functions:
        function_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "KILN_RECIPE_ROOT": str(Path(args.recipe_root).resolve()),
            "KILN_SOURCE_PARAMETER": SOURCE_PARAMETER,
        }
        faults = [tuple((fault.split(":") + ["", ""])[:3]) for fault in args.fault]
        faults = [(f, a, e) if e else (f, "", a) for f, a, e in faults]
        proxy = LambdaProxy(args.functions, port, function_env, faults)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        # moto's Step Functions executor makes its service calls to this port.
        os.environ["MOTO_PORT"] = str(proxy.server_address[1])
        urllib.request.urlopen(urllib.request.Request(
            f"{endpoint}/moto-api/config", method="POST",
            data=json.dumps({"stepfunctions": {"execute_state_machine": True},
                             "lambda": {"use_docker": False}}).encode(),
            headers={"Content-Type": "application/json"})).read()
        info["lambda_proxy"] = f"http://127.0.0.1:{proxy.server_address[1]}"
        if args.pipeline:
            info["state_machine_arn"] = create_pipeline(endpoint, args.pipeline)
    print(json.dumps(info), flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if not args.detach:
        # The parent holds our stdin: when it exits, however it exits, we stop.
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    server.stop()


def env():
    info = json.loads(sys.stdin.readline())
    lines = {
        "AWS_ENDPOINT_URL": info["endpoint"],
        "AWS_REGION": info["region"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "KILN_SOURCE_PARAMETER": info["source_parameter"],
    }
    if "state_machine_arn" in info:
        lines["KILN_STATE_MACHINE_ARN"] = info["state_machine_arn"]
    for key, value in lines.items():
        print(f"export {key}={value}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve")
    serve_parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve_parser.add_argument("--detach", action="store_true", help="ignore stdin")
    serve_parser.add_argument(
        "--no-builder-profile", action="store_true",
        help="do not seed the kiln-builder instance profile (a stack of infra/ creates it)",
    )
    serve_parser.add_argument("--functions", help="directory of Lambda binaries to run Step Functions with")
    serve_parser.add_argument("--recipe-root", default="images", help="KILN_RECIPE_ROOT for the functions")
    serve_parser.add_argument("--pipeline", help="state machine definition to create (needs --functions)")
    serve_parser.add_argument(
        "--fault", action="append", default=[], metavar="FUNCTION[:ACTION]:ERROR",
        help="tests: FUNCTION runs, then answers the function error ERROR instead (for events with ACTION)",
    )
    commands.add_parser("env")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args)
    else:
        env()


if __name__ == "__main__":
    main()
