"""kiln's SAM template, offline: translate it to plain CloudFormation, and
create it as a stack in the local emulator.

  infra.py translate [TEMPLATE]           print the CloudFormation JSON
  infra.py deploy ENDPOINT [TEMPLATE] [STACK [REGION]]
                                          create the stack in the emulator at
                                          ENDPOINT; print its resources (JSON)
  infra.py policies [NAME=VALUE ...]      print each function's role policy
                                          statements, every intrinsic function
                                          resolved as CloudFormation would for a
                                          stack `kiln` in us-east-1 of account
                                          123456789012 with those parameters

Translation is what `sam deploy` does after `sam build`: local code and
definition paths become S3 locations (here placeholders, since nothing is
uploaded), the state machine definition is inlined from
statemachine/pipeline.asl.json, and aws-sam-translator turns the
AWS::Serverless resources into plain ones. Runs with the infra tools' Python
(`make infra-tools`), which has aws-sam-translator and boto3.
"""

import json
import os
import sys
import time
from pathlib import Path

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra/template.yaml"
ARTIFACTS = "kiln-artifacts"
STACK = "kiln"
REGION = "us-east-1"


class NoManagedPolicies:
    """The template names managed policies by ARN only: nothing to look up."""

    def load(self):
        return {}


def package(template, template_dir):
    """Local paths to S3 locations, as `sam build && sam deploy` would."""
    globals_function = template.get("Globals", {}).get("Function", {})
    if "CodeUri" in globals_function:
        globals_function["CodeUri"] = f"s3://{ARTIFACTS}/functions.zip"
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            properties["CodeUri"] = f"s3://{ARTIFACTS}/{name}.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            properties["ContentUri"] = f"s3://{ARTIFACTS}/{name}.zip"
        elif resource["Type"] == "AWS::Serverless::StateMachine" and "DefinitionUri" in properties:
            path = template_dir / properties.pop("DefinitionUri")
            properties["Definition"] = json.loads(path.read_text())
    return template


def translate(path):
    # The translator reads the region from the environment, for ARNs.
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    template = package(yaml_parse(Path(path).read_text()), Path(path).parent)
    return transform(template, {}, NoManagedPolicies())


def artifacts(cfn):
    """Every S3 key the translated template's functions and layers point at."""
    keys = set()
    for resource in cfn["Resources"].values():
        code = resource.get("Properties", {}).get("Code") or resource.get("Properties", {}).get("Content")
        if isinstance(code, dict) and code.get("S3Bucket") == ARTIFACTS:
            keys.add(code["S3Key"])
    return sorted(keys)


def deploy(endpoint, path, stack=STACK, region=REGION):
    import io
    import zipfile

    import boto3

    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
    )
    cfn = translate(path)
    s3 = session.client("s3", endpoint_url=endpoint)
    where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    try:
        s3.create_bucket(Bucket=ARTIFACTS, **where)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass  # a stack deployed before, in another region
    for key in artifacts(cfn):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("bootstrap", "#!/bin/sh\n")
        s3.put_object(Bucket=ARTIFACTS, Key=key, Body=buffer.getvalue())
    stacks = session.client("cloudformation", endpoint_url=endpoint)
    try:
        stacks.create_stack(
            StackName=stack,
            TemplateBody=json.dumps(cfn),
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
    except stacks.exceptions.ClientError as error:
        # The emulator refuses at once what AWS fails the stack for (a
        # resource of a fixed name that exists already).
        print(json.dumps({"status": "CREATE_FAILED", "reason": str(error), "resources": {}}))
        return
    for _ in range(300):
        status = stacks.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        if not status.endswith("IN_PROGRESS"):
            break
        time.sleep(0.1)
    summaries = stacks.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    print(json.dumps({
        "status": status,
        "resources": {r.get("LogicalResourceId", "?"): {"type": r.get("ResourceType"),
                                                         "id": r.get("PhysicalResourceId")}
                      for r in summaries},
        "template": cfn,
    }))


def main():
    args = sys.argv[1:]
    if args[:1] == ["translate"]:
        print(json.dumps(translate(args[1] if len(args) > 1 else TEMPLATE), indent=2))
    elif args[:1] == ["deploy"] and len(args) >= 2:
        deploy(args[1], *(args[2:3] or [TEMPLATE]), *args[3:5])
    elif args[:1] == ["policies"]:
        import infra_policies

        parameters = dict(arg.split("=", 1) for arg in args[1:])
        print(json.dumps(infra_policies.roles(translate(TEMPLATE), parameters), indent=2))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
