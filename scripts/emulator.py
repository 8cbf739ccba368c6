"""Runs moto server seeded for kiln, with seven small patches: ENA, the
execution start time as Step Functions gives it, AssumeRole of a role that
does not exist, DescribeInstances pages, a launch template version's
SourceVersion, Auto Scaling instance refreshes, and the parameters of the
Step Functions `states:startExecution` integration.

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
placeholder naming the function binary name-in-kebab-case; when it starts
releases (${ReleaseStateMachine}), the release machine beside it
(release.asl.json) is created first.

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

The source version patch: moto's CreateLaunchTemplateVersion ignores
SourceVersion and makes the version of the request's LaunchTemplateData
alone. On AWS the new version starts as a copy of the source version's data
(a number, `$Latest` or `$Default`), and the request's data overrides it, key
by top-level key. The patch does that.

The instance refresh patch: moto's Auto Scaling has no instance refreshes
(StartInstanceRefresh, DescribeInstanceRefreshes, CancelInstanceRefresh and
RollbackInstanceRefresh answer 500). The patch adds them, with AWS's shapes
and errors, per account and region, advancing deterministically: each
DescribeInstanceRefreshes of a group first moves its active refresh one step.
Pending goes InProgress at 0%, then 50%, then Successful at 100%: the group
takes the desired launch template and version, and every InService instance
is replaced by one launched from it. While InProgress, an alarm of
Preferences.AlarmSpecification in state ALARM (CloudWatch SetAlarmState)
ends the refresh: RollbackSuccessful with AutoRollback (the group keeps its
configuration and instances), otherwise Failed. Cancelling goes Cancelled,
RollbackInProgress goes RollbackSuccessful. As on AWS, a second refresh while
one is active is InstanceRefreshInProgress, Cancel and Rollback without an
active refresh are ActiveInstanceRefreshNotFound, and AutoRollback (or a
Rollback) needs a desired launch template version other than `$Latest` or
`$Default`. Strategy, MixedInstancesPolicy and the other preferences are
echoed back but not acted on; BakeTime never shows Baking.

The start execution patch: a state machine starts another with
`arn:aws:states:::states:startExecution` and the API's own parameter names
(`StateMachineArn`, `Name`, `Input`), as AWS documents. moto's executor hands
them to boto3 unchanged, whose Step Functions model spells them
`stateMachineArn`, `name`, `input`, so every such task failed
(States.Runtime 'StateMachineArn'). The patch renames each parameter to its
model member, matching case-insensitively.
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


def patch_launch_template_source_version():
    """Start a launch template version from SourceVersion (see the module docstring)."""
    import copy

    from moto.ec2.responses.launch_templates import LaunchTemplates

    create_version = LaunchTemplates.create_launch_template_version

    def from_source_version(self):
        source = self._get_param("SourceVersion")
        if source is not None:
            template_id = self._get_param("LaunchTemplateId")
            template = (
                self.ec2_backend.get_launch_template(template_id)
                if template_id
                else self.ec2_backend.get_launch_template_by_name(self._get_param("LaunchTemplateName"))
            )
            data = copy.deepcopy(template.get_version(source).data)
            self.params["LaunchTemplateData"] = {**data, **self._get_param("LaunchTemplateData", {})}
        return create_version(self)

    LaunchTemplates.create_launch_template_version = from_source_version


def patch_start_execution_parameters():
    """Name `states:startExecution` parameters as boto3 does (see the module docstring)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_sfn as sfn,
    )

    normalise = sfn.StateTaskServiceSfn._normalise_parameters

    def with_model_names(self, parameters, boto_service_name=None, service_action_name=None):
        normalise(self, parameters, boto_service_name, service_action_name)
        if self._get_boto_service_action() != "start_execution":
            return
        import botocore.session

        shape = botocore.session.get_session().get_service_model("stepfunctions").operation_model(
            "StartExecution").input_shape
        members = {name.lower(): name for name in shape.members}
        for key in list(parameters):
            member = members.get(key.lower())
            if member and member != key:
                parameters[member] = parameters.pop(key)

    sfn.StateTaskServiceSfn._normalise_parameters = with_model_names


def patch_instance_refresh():
    """Model Auto Scaling instance refreshes (see the module docstring)."""
    import uuid

    from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
    from moto.autoscaling.models import AutoScalingBackend
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.ec2.exceptions import EC2ClientError

    active = ("Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking")
    defaults = {
        "MinHealthyPercentage": 90, "SkipMatching": False, "AutoRollback": False,
        "ScaleInProtectedInstances": "Ignore", "StandbyInstances": "Ignore",
    }

    backend_init = AutoScalingBackend.__init__

    def with_refreshes(self, *args, **kwargs):
        backend_init(self, *args, **kwargs)
        self.instance_refreshes = {}  # a group's id -> its refreshes, newest first

    def group_refreshes(self, name):
        if name not in self.autoscaling_groups:
            raise ValidationError(f"AutoScalingGroup name not found - AutoScalingGroup '{name}' not found")
        group = self.autoscaling_groups[name]
        return group, self.instance_refreshes.setdefault(group._id, [])

    def active_refresh(self, name):
        group, refreshes = group_refreshes(self, name)
        refresh = next((r for r in refreshes if r["Status"] in active), None)
        if refresh is None:
            raise AutoscalingClientError(
                "ActiveInstanceRefreshNotFound",
                f"No in progress or pending Instance Refresh found for Auto Scaling group {name}",
            )
        return group, refresh

    def reversible(desired):
        """AWS rolls back only to a desired configuration of a fixed version."""
        spec = (desired or {}).get("LaunchTemplate")
        return bool(desired) and not (spec and spec.get("Version", "$Default") in ("$Latest", "$Default"))

    def start_instance_refresh(self, name, strategy, desired, preferences):
        group, refreshes = group_refreshes(self, name)
        if any(r["Status"] in active for r in refreshes):
            raise AutoscalingClientError(
                "InstanceRefreshInProgress",
                "An Instance Refresh is already in progress and blocks the execution of this Instance Refresh.",
            )
        spec = (desired or {}).get("LaunchTemplate")
        if spec and bool(spec.get("LaunchTemplateId")) == bool(spec.get("LaunchTemplateName")):
            raise ValidationError("Valid requests must contain either launchTemplateId or LaunchTemplateName")
        if spec:
            try:
                template = (
                    self.ec2_backend.get_launch_template(spec["LaunchTemplateId"])
                    if spec.get("LaunchTemplateId")
                    else self.ec2_backend.get_launch_template_by_name(spec["LaunchTemplateName"])
                )
                template.get_version(spec.get("Version", "$Default"))
            except EC2ClientError as error:
                raise ValidationError(error.message)
        preferences = {**defaults, **(preferences or {})}
        if preferences["AutoRollback"] and not reversible(desired):
            raise ValidationError(
                "AutoRollback needs a DesiredConfiguration whose launch template version is"
                " neither $Latest nor $Default."
            )
        refresh = {
            "InstanceRefreshId": str(uuid.uuid4()), "AutoScalingGroupName": name, "Status": "Pending",
            "StartTime": utcnow(), "PercentageComplete": 0, "InstancesToUpdate": len(group.instance_states),
            "Preferences": preferences, "DesiredConfiguration": desired, "Strategy": strategy or "Rolling",
        }
        refreshes.insert(0, refresh)
        return refresh["InstanceRefreshId"]

    def roll_back(group, refresh, status, reason):
        """The instances replaced so far go back to the group's configuration."""
        refresh["Status"] = status
        refresh["RollbackDetails"] = {
            "RollbackReason": reason, "RollbackStartTime": utcnow(),
            "PercentageCompleteOnRollback": refresh["PercentageComplete"],
            "InstancesToUpdateOnRollback": max(len(group.instance_states) - refresh["InstancesToUpdate"], 0),
        }

    def in_alarm(self, refresh):
        alarms = cloudwatch_backends[self.account_id][self.region_name].alarms
        names = refresh["Preferences"].get("AlarmSpecification", {}).get("Alarms", [])
        return next((n for n in names if n in alarms and alarms[n].state_value == "ALARM"), None)

    def advance(self, group, refresh):
        """One deterministic step of an active refresh."""
        status, total = refresh["Status"], refresh["InstancesToUpdate"]
        alarm = status == "InProgress" and in_alarm(self, refresh)
        if status == "Pending":
            refresh["Status"] = "InProgress"
        elif alarm:
            reason = f"The instance refresh failed because alarm {alarm} went into ALARM state."
            if refresh["Preferences"]["AutoRollback"]:
                roll_back(group, refresh, "RollbackSuccessful", reason)
                reason = f"{reason} The Auto Scaling group was rolled back to its previous configuration."
            else:
                refresh["Status"] = "Failed"
            refresh.update(StatusReason=reason, EndTime=utcnow())
        elif status == "InProgress" and refresh["PercentageComplete"] < 50:
            refresh.update(PercentageComplete=50, InstancesToUpdate=total - total // 2)
        elif status == "InProgress":
            spec = (refresh["DesiredConfiguration"] or {}).get("LaunchTemplate")
            if spec:
                group._set_launch_configuration(None, spec, None)
            replaced = [state.instance.id for state in group.active_instances()]
            if replaced:
                self.ec2_backend.terminate_instances(replaced)
                self.notify_terminate_instances(replaced)  # launches their replacements
            refresh.update(Status="Successful", PercentageComplete=100, InstancesToUpdate=0, EndTime=utcnow())
        else:  # Cancelling, RollbackInProgress
            ended = "Cancelled" if status == "Cancelling" else "RollbackSuccessful"
            refresh.update(Status=ended, EndTime=utcnow())

    def describe_instance_refreshes(self, name, ids):
        group, refreshes = group_refreshes(self, name)
        for refresh in refreshes:
            if refresh["Status"] in active:
                advance(self, group, refresh)
        return [r for r in refreshes if not ids or r["InstanceRefreshId"] in ids]

    def cancel_instance_refresh(self, name):
        _, refresh = active_refresh(self, name)
        refresh["Status"] = "Cancelling"
        return refresh["InstanceRefreshId"]

    def rollback_instance_refresh(self, name):
        group, refresh = active_refresh(self, name)
        if not reversible(refresh["DesiredConfiguration"]):
            raise AutoscalingClientError(
                "IrreversibleInstanceRefresh",
                "The instance refresh has no desired configuration of a fixed launch template version"
                " to roll back from.",
            )
        roll_back(group, refresh, "RollbackInProgress", "Rollback initiated by user.")
        return refresh["InstanceRefreshId"]

    AutoScalingBackend.__init__ = with_refreshes
    AutoScalingBackend.start_instance_refresh = start_instance_refresh
    AutoScalingBackend.describe_instance_refreshes = describe_instance_refreshes
    AutoScalingBackend.cancel_instance_refresh = cancel_instance_refresh
    AutoScalingBackend.rollback_instance_refresh = rollback_instance_refresh

    def start(self):
        refresh_id = self.autoscaling_backend.start_instance_refresh(
            self._get_param("AutoScalingGroupName"), self._get_param("Strategy"),
            self._get_param("DesiredConfiguration"), self._get_param("Preferences"),
        )
        return ActionResult({"InstanceRefreshId": refresh_id})

    def describe(self):
        refreshes = self.autoscaling_backend.describe_instance_refreshes(
            self._get_param("AutoScalingGroupName"), self._get_param("InstanceRefreshIds", [])
        )
        ids = [r["InstanceRefreshId"] for r in refreshes]
        token = self._get_param("NextToken")
        if token and token not in ids:
            raise AutoscalingClientError("InvalidNextToken", "The token is not valid.")
        start = ids.index(token) + 1 if token else 0
        page = refreshes[start : start + (self._get_int_param("MaxRecords") or 50)]
        more = start + len(page) < len(refreshes)
        next_token = page[-1]["InstanceRefreshId"] if more else None
        return ActionResult({"InstanceRefreshes": page, "NextToken": next_token})

    def cancel(self):
        name = self._get_param("AutoScalingGroupName")
        return ActionResult({"InstanceRefreshId": self.autoscaling_backend.cancel_instance_refresh(name)})

    def rollback(self):
        name = self._get_param("AutoScalingGroupName")
        return ActionResult({"InstanceRefreshId": self.autoscaling_backend.rollback_instance_refresh(name)})

    AutoScalingResponse.start_instance_refresh = start
    AutoScalingResponse.describe_instance_refreshes = describe
    AutoScalingResponse.cancel_instance_refresh = cancel
    AutoScalingResponse.rollback_instance_refresh = rollback


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
    """Creates the state machine in `path` and, when it starts releases, the
    release machine beside it (release.asl.json). Returns {name: ARN}."""
    import boto3

    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    role = session.client("iam", endpoint_url=endpoint).create_role(
        RoleName="kiln-pipeline",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
    )["Role"]["Arn"]
    sfn = session.client("stepfunctions", endpoint_url=endpoint)
    machines = {}

    def create(name, definition_path):
        definition = Path(definition_path).read_text()
        names = set(re.findall(r"\$\{(\w+)\}", definition))
        substitutions = {name: function_arn(name) for name in names if name.endswith("Function")}
        substitutions["EventBusName"] = "default"
        if "ReleaseStateMachine" in names:
            substitutions["ReleaseStateMachine"] = create(
                "kiln-release", Path(definition_path).with_name("release.asl.json"))
        machines[name] = sfn.create_state_machine(
            name=name, definition=substitute(definition, substitutions), roleArn=role, type="STANDARD"
        )["stateMachineArn"]
        return machines[name]

    create("kiln-pipeline", path)
    return machines


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
    patch_launch_template_source_version()
    patch_instance_refresh()
    patch_start_execution_parameters()
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
            machines = create_pipeline(endpoint, args.pipeline)
            info["state_machine_arn"] = machines["kiln-pipeline"]
            if "kiln-release" in machines:
                info["release_state_machine_arn"] = machines["kiln-release"]
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
    if "release_state_machine_arn" in info:
        lines["KILN_RELEASE_STATE_MACHINE_ARN"] = info["release_state_machine_arn"]
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
