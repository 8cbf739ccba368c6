"""The organization's fleet audit through its two paths, side by side: one
audit-fleet invocation (the single Lambda) and the audit state machine
(Plan -> Distributed Map -> Fold), on one seeded organization in the
emulator, alternating, N times each. Both must find exactly the seeded
counts in every account and region, or the benchmark fails.

The organization: the emulator's account (the management account) and nine
accounts made through Organizations, each with the role CreateAccount makes
(OrganizationAccountAccessRole); in each account and each of two regions 500
instances in five services of 100 (one reservation each): in us-east-1 three
services on recipe web's promoted image (the management account shares it)
and two on Canonical's, in us-west-2 all five on Canonical's.

Measured per run: the wall time (invoke to answer; StartExecution to the
execution's end, polled every 0.1 s), the calls the functions made (the
emulator's Lambda proxy records every call; the functions' own, not the
state machine's), the Lambda invocations, and the functions' own CPU (user +
system of each function process, which the proxy records per invocation:
the emulator's time is not in it). Then an estimate for 500 accounts x 17
regions on each path (bench/estimate.py).

Usage: .venv/bin/python bench/org_audit.py --kiln target/release/kiln
       --functions target/release [--runs N] [--save FILE]
"""

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import botocore.config

import estimate
import fleet

ROOT = Path(__file__).resolve().parent.parent
ROLE = "OrganizationAccountAccessRole"
REGIONS = ["us-east-1", "us-west-2"]
MEMBERS = 9
PER_REGION = 500
SERVICE = 100
CURRENT_SERVICES = 3  # in us-east-1; the rest of each region runs Canonical's image
BUCKET = "kiln-bench-audit"
# The benchmark's own calls (starting and polling) are made with this key,
# so that the functions' calls can be told from them.
OWN_KEY = "bench"


def start_emulator(functions):
    process = subprocess.Popen(
        [str(ROOT / "scripts/emulator"), "serve", "--functions", str(functions),
         "--recipe-root", str(ROOT / "images"),
         "--audit-machine", str(ROOT / "statemachine/audit.asl.json"),
         "--function-env", f"KILN_AUDIT_BUCKET={BUCKET}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    return process, json.loads(process.stdout.readline())


def session(region, key="testing", secret="testing", token=None):
    return boto3.Session(aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
                         region_name=region)


def launch(ec2, image, services, prefix):
    for k in range(services):
        ec2.run_instances(
            ImageId=image, InstanceType="t3.micro", MinCount=SERVICE, MaxCount=SERVICE,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [
                {"Key": "Service", "Value": f"{prefix}-{k}"}]}],
        )


def seed(kiln, endpoint):
    """Seeds the organization; returns {account: {region: instances}} and
    the instances per status the audit must find."""
    home = session(REGIONS[0])
    ec2 = home.client("ec2", endpoint_url=endpoint)
    source = next(i["ImageId"] for i in ec2.describe_images(Owners=[fleet.CANONICAL])["Images"]
                  if i["Architecture"] == "x86_64")
    current = fleet.kiln_image(ec2, source, "web", "web-org-1")
    fleet.promote(kiln, current, "organization benchmark")
    home.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)

    org = home.client("organizations", endpoint_url=endpoint)
    org.create_organization(FeatureSet="ALL")
    accounts = [home.client("sts", endpoint_url=endpoint).get_caller_identity()["Account"]]
    for i in range(MEMBERS):
        status = org.create_account(AccountName=f"bench-{i}", Email=f"bench-{i}@example.com", RoleName=ROLE)
        accounts.append(status["CreateAccountStatus"]["AccountId"])
    ec2.modify_image_attribute(ImageId=current, LaunchPermission={
        "Add": [{"UserId": account} for account in accounts[1:]]})

    seeded = {}
    for account in accounts:
        if account == accounts[0]:
            credentials = {"key": "testing", "secret": "testing"}
        else:
            assumed = home.client("sts", endpoint_url=endpoint).assume_role(
                RoleArn=f"arn:aws:iam::{account}:role/{ROLE}", RoleSessionName="bench-seed")["Credentials"]
            credentials = {"key": assumed["AccessKeyId"], "secret": assumed["SecretAccessKey"],
                           "token": assumed["SessionToken"]}
        for region in REGIONS:
            client = session(region, **credentials).client("ec2", endpoint_url=endpoint)
            canonical = next(i["ImageId"] for i in client.describe_images(Owners=[fleet.CANONICAL])["Images"]
                             if i["Architecture"] == "x86_64")
            on_current = CURRENT_SERVICES if region == REGIONS[0] else 0
            launch(client, current, on_current, "web")
            launch(client, canonical, PER_REGION // SERVICE - on_current, "edge")
            seeded.setdefault(account, {})[region] = PER_REGION
    current_total = len(accounts) * CURRENT_SERVICES * SERVICE
    statuses = {"current": current_total, "foreign": len(accounts) * len(REGIONS) * PER_REGION - current_total}
    return seeded, statuses


class Runner:
    def __init__(self, seeded_info):
        config = botocore.config.Config(read_timeout=900, retries={"max_attempts": 1})
        own = session(seeded_info["region"], key=OWN_KEY)
        self.proxy = seeded_info["lambda_proxy"]
        self.lambda_ = own.client("lambda", endpoint_url=self.proxy, config=config)
        self.sfn = own.client("stepfunctions", endpoint_url=seeded_info["endpoint"])
        self.s3 = own.client("s3", endpoint_url=seeded_info["endpoint"])
        self.machine = seeded_info["audit_state_machine_arn"]
        self.runs = 0

    def calls(self, clear):
        request = urllib.request.Request(f"{self.proxy}/_kiln/calls", method="DELETE" if clear else "GET")
        with urllib.request.urlopen(request) as answer:
            return json.loads(answer.read() or b"[]")

    def direct(self, request):
        started = time.perf_counter()
        answer = self.lambda_.invoke(FunctionName="audit-fleet", Payload=json.dumps(request))
        wall = time.perf_counter() - started
        if answer.get("FunctionError"):
            sys.exit(f"audit-fleet failed: {answer['Payload'].read()[-2000:]!r}")
        return wall

    def fanned(self, request):
        self.runs += 1
        started = time.perf_counter()
        execution = self.sfn.start_execution(stateMachineArn=self.machine, name=f"bench-{self.runs}",
                                             input=json.dumps(request))["executionArn"]
        while (described := self.sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
            time.sleep(0.1)
        wall = time.perf_counter() - started
        if described["status"] != "SUCCEEDED":
            sys.exit(f"the audit state machine ended {described['status']}: {described.get('cause')}")
        return wall

    def measure(self, path, request):
        """One audit through `path`: (wall s, each invocation's CPU s in
        order, the functions' calls by operation, the report)."""
        self.calls(clear=True)
        wall = getattr(self, path)(request)
        calls = self.calls(clear=False)
        cpu = [c["cpu"] for c in calls if c["action"] == "InvokeFunction"]
        # The functions' own calls: with their key, or with a role's credentials.
        made = collections.Counter(c["action"] for c in calls if c["action"] != "InvokeFunction"
                                   and (c["key"] or "").startswith(("kiln-function-", "ASIA")))
        report = json.loads(self.s3.get_object(Bucket=BUCKET, Key="kiln/audit/latest.json")["Body"].read())
        return wall, cpu, made, report


def check(report, seeded, statuses, path):
    found = {}
    for scope in report["scopes"]:
        found.setdefault(scope["account"], {})[scope["region"]] = scope["instances"]
    by_status = {s: n for s, n in report["summary"]["by_status"].items() if n}
    if found != seeded or by_status != statuses:
        sys.exit(f"{path}: counts differ from the seeded ones: {by_status} against {statuses}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kiln", required=True, type=Path)
    parser.add_argument("--functions", required=True, type=Path, help="the directory of the Lambda binaries")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--save", type=Path, help="also write what the estimate takes to this JSON file"
                        " (then `bench/estimate.py FILE` estimates again, with other assumptions)")
    args = parser.parse_args()

    emulator, info = start_emulator(args.functions)
    try:
        os.environ.update(AWS_ENDPOINT_URL=info["endpoint"], AWS_REGION=info["region"],
                          AWS_DEFAULT_REGION=info["region"], AWS_ACCESS_KEY_ID="testing",
                          AWS_SECRET_ACCESS_KEY="testing")
        started = time.perf_counter()
        seeded, statuses = seed(str(args.kiln), info["endpoint"])
        seeding = time.perf_counter() - started
        runner = Runner(info)
        request = {"organization": True, "role_name": ROLE, "regions": REGIONS}
        samples = {"direct": [], "fanned": []}
        for _ in range(args.runs):
            for path in samples:
                sample = runner.measure(path, request)
                check(sample[3], seeded, statuses, path)
                samples[path].append(sample)
    finally:
        emulator.stdin.close()
        emulator.wait(10)

    instances = sum(sum(regions.values()) for regions in seeded.values())
    print(f"organization: {len(seeded)} accounts x {len(REGIONS)} regions, {instances:,} instances,"
          f" seeded in {seeding:.1f} s; both paths found exactly the seeded counts {statuses}")
    print(f"{'path':<26} {'wall s':>8} {'own CPU s':>10} {'invocations':>12} {'calls':>6}"
          f" {'pages':>6} {'CPU ms/page':>12}")
    medians, measured = {}, {}
    for path, label in (("direct", "single Lambda"), ("fanned", "state machine (fan-out)")):
        runs = samples[path]
        # The run of median CPU stands for the path in the estimate.
        middle = sorted(runs, key=lambda r: sum(r[1]))[len(runs) // 2]
        medians[path] = (statistics.median(r[0] for r in runs), sum(middle[1]))
        calls = middle[2]
        measured[path] = estimate.Measured(cpu=middle[1], calls=dict(calls), accounts=len(seeded),
                                           regions=len(REGIONS))
        print(f"{label:<26} {medians[path][0]:>8.2f} {medians[path][1]:>10.3f} {len(middle[1]):>12}"
              f" {sum(calls.values()):>6} {calls['DescribeInstances']:>6}"
              f" {medians[path][1] / calls['DescribeInstances'] * 1000:>12.1f}"
              f"  {json.dumps(dict(sorted(calls.items())))}")
    (direct_wall, direct_cpu), (fanned_wall, fanned_cpu) = medians["direct"], medians["fanned"]
    print(f"ratio (state machine / single Lambda), medians of {args.runs}: wall {fanned_wall / direct_wall:.2f}x,"
          f" own CPU {fanned_cpu / direct_cpu:.2f}x")
    if args.save:
        args.save.write_text(json.dumps({path: vars(m) for path, m in measured.items()}, indent=1))
    estimate.report(measured["direct"], measured["fanned"])


if __name__ == "__main__":
    main()
