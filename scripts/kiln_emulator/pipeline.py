"""`serve --pipeline FILE`: the state machine in FILE, created in the emulator
with each ${NameFunction} placeholder naming the function binary
name-in-kebab-case, and the release machine beside it when it starts
releases."""

import json
import re
from pathlib import Path

from . import ACCOUNT, REGION


def substitute(definition, substitutions):
    """Each ${Name} of `substitutions` in `definition` replaced; the others kept."""
    return re.sub(r"\$\{(\w+)\}", lambda m: substitutions.get(m.group(1), m.group(0)), definition)


def function_arn(placeholder):
    """`ResolveSourceFunction` -> the ARN of function `resolve-source`."""
    name = re.sub(r"(?<!^)([A-Z])", r"-\1", placeholder[: -len("Function")]).lower()
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


BUILD_MACHINE = "kiln-build"
RELEASE_MACHINE = "kiln-release"


def create_pipeline(endpoint, path):
    """Creates the state machine in `path` and, when it starts releases, the
    release machine beside it (release.asl.json), named as a stack `kiln` of
    infra/template.yaml names them (`<stack>-build`, `<stack>-release`), so
    their ARNs are the ones the template grants. Returns {name: ARN}."""
    import boto3

    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    role = session.client("iam", endpoint_url=endpoint).create_role(
        RoleName="kiln-states",
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
                RELEASE_MACHINE, Path(definition_path).with_name("release.asl.json"))
        machines[name] = sfn.create_state_machine(
            name=name, definition=substitute(definition, substitutions), roleArn=role, type="STANDARD"
        )["stateMachineArn"]
        return machines[name]

    create(BUILD_MACHINE, path)
    return machines
