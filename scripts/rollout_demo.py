"""The rollout half of the demo (scripts/demo), against the running emulator.

  seed              the prod gate alarm (OK) and three Auto Scaling groups of
                    two instances on Canonical's image, opted in by tags:
                    `staging-web` follows staging; `web-canary` (wave 0) and
                    `web` (wave 1) follow prod; and in the distribution region
                    (AWAY), the alarm too and `web-eu` (prod), on a copy of
                    Canonical's image there
  fire-on-canary    waits for the next launch template version of
                    `web-canary` (a release started its wave), then sets the
                    alarm to ALARM, as a bad image would
  wait              waits until no release of the recipe runs

The AWS_* environment points at the emulator (`source .emulator/env`).
"""

import json
import os
import sys
import time

import boto3

RECIPE = "ubuntu-base"
ALARM = "demo-web-5xx"
AWAY = "eu-west-1"
GROUPS = [("staging-web", "staging", None), ("web-canary", "prod", "0"), ("web", "prod", "1")]
AWAY_GROUPS = [("web-eu", "prod", "1")]


def seed(session):
    ssm = session.client("ssm")
    image = ssm.get_parameter(Name=os.environ["KILN_SOURCE_PARAMETER"])["Parameter"]["Value"]
    groups(session, image, GROUPS)
    away = boto3.Session(region_name=AWAY)
    ec2 = away.client("ec2")
    copied = ec2.copy_image(SourceImageId=image, SourceRegion=session.region_name, Name="demo-ubuntu")["ImageId"]
    while ec2.describe_images(ImageIds=[copied])["Images"][0]["State"] != "available":
        time.sleep(0.1)
    groups(away, copied, AWAY_GROUPS)


def groups(session, image, wanted):
    """The gate alarm (OK) and `wanted` groups on `image`, in the session's region."""
    ec2 = session.client("ec2")
    session.client("cloudwatch").put_metric_alarm(
        AlarmName=ALARM, Namespace="Demo", MetricName="5xx", Statistic="Sum", Period=60,
        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    set_alarm(session, "OK")
    for name, channel, wave in wanted:
        template = ec2.create_launch_template(
            LaunchTemplateName=name,
            LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"},
            TagSpecifications=[{"ResourceType": "launch-template",
                                "Tags": [{"Key": "kiln:recipe", "Value": RECIPE}]}],
        )["LaunchTemplate"]["LaunchTemplateId"]
        tags = {"kiln:recipe": RECIPE, "kiln:channel": channel, **({"kiln:wave": wave} if wave else {})}
        session.client("autoscaling").create_auto_scaling_group(
            AutoScalingGroupName=name, MinSize=1, MaxSize=4, DesiredCapacity=2,
            AvailabilityZones=[f"{session.region_name}a"],
            LaunchTemplate={"LaunchTemplateId": template, "Version": "1"},
            Tags=[{"Key": k, "Value": v, "ResourceId": name, "ResourceType": "auto-scaling-group",
                   "PropagateAtLaunch": False} for k, v in tags.items()],
        )


def set_alarm(session, state):
    session.client("cloudwatch").set_alarm_state(
        AlarmName=ALARM, StateValue=state, StateReason="the demo")


def fire_on_canary(session):
    ec2 = session.client("ec2")

    def versions():
        found = ec2.describe_launch_template_versions(LaunchTemplateName="web-canary")
        return len(found["LaunchTemplateVersions"])

    before = versions()
    deadline = time.time() + 600
    while versions() == before:
        if time.time() > deadline:
            sys.exit("no release reached the prod canary in 10 minutes")
        time.sleep(0.1)
    set_alarm(session, "ALARM")
    print(f"  {ALARM} is in ALARM while web-canary rolls")


def wait(session):
    sfn = session.client("stepfunctions")
    machine = os.environ["KILN_RELEASE_STATE_MACHINE_ARN"]
    deadline = time.time() + 600
    while True:
        running = sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"]
        mine = [e for e in running
                if json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])
                .get("recipe") == RECIPE]
        if not mine:
            return
        if time.time() > deadline:
            sys.exit("a release still runs after 10 minutes")
        time.sleep(0.5)


def main():
    session = boto3.Session(region_name=os.environ["AWS_REGION"])
    {"seed": seed, "fire-on-canary": fire_on_canary, "wait": wait}[sys.argv[1]](session)


if __name__ == "__main__":
    main()
