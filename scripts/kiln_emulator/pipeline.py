"""`serve --pipeline FILE`: the state machine in FILE, created in the emulator
with each ${NameFunction} placeholder naming the function binary
name-in-kebab-case, and the release machine beside it when it starts
releases. `serve --audit-machine FILE`: the audit state machine, in its
local form (`local_form`)."""

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


def placeholders(definition):
    """The ${Name} placeholders of `definition`, and the function ARN of each
    ${NameFunction} among them."""
    names = set(re.findall(r"\$\{(\w+)\}", definition))
    return names, {name: function_arn(name) for name in names if name.endswith("Function")}


def local_form(definition):
    """The Distributed Map of `definition` as moto 5.2.5 runs it, item for
    item the same as AWS would run it with batches of one account.

    moto's ASL grammar has no `ItemBatcher` (CreateStateMachine refuses the
    definition), and reads `ToleratedFailurePercentage` only as a decimal
    while ignoring it ("currently have no effect"). So each `ItemBatcher`
    becomes the `ItemSelector` that builds the very input AWS gives a batch's
    child execution, `{"Items": [item], "BatchInput": ...}` (AWS Step
    Functions Developer Guide, "ItemBatcher (Map)": the input of each child
    is an object with `Items` and `BatchInput`; "ItemSelector (Map)": `$` is
    the Map state's input and `$$.Map.Item.Value` the item), and the
    tolerance is left out: locally any failed child fails the map, which
    kiln's definition catches as it catches a failure beyond the tolerance.
    https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itembatcher.html
    https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemselector.html
    """

    def visit(value):
        if isinstance(value, list):
            return [visit(item) for item in value]
        if not isinstance(value, dict):
            return value
        state = {key: visit(item) for key, item in value.items()}
        batcher = state.pop("ItemBatcher", None)
        if batcher is not None:
            state["ItemSelector"] = {
                "Items.$": "States.Array($$.Map.Item.Value)",
                "BatchInput": batcher.get("BatchInput", {}),
            }
        if state.get("Type") == "Map":
            state.pop("ToleratedFailurePercentage", None)
        return state

    return json.dumps(visit(json.loads(definition)))


BUILD_MACHINE = "kiln-build"
AUDIT_MACHINE = "kiln-audit"
RELEASE_MACHINE = "kiln-release"


def states_role(session, endpoint):
    """The role the state machines run as."""
    iam = session.client("iam", endpoint_url=endpoint)
    try:
        return iam.get_role(RoleName="kiln-states")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        return iam.create_role(
            RoleName="kiln-states",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
        )["Role"]["Arn"]


def session():
    import boto3

    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)


def create_audit_machine(endpoint, path, bucket):
    """Creates the audit state machine in `path`, in its local form, reading
    and writing the audit bucket `bucket`. Returns its ARN."""
    definition = Path(path).read_text()
    _, substitutions = placeholders(definition)
    substitutions["AuditBucket"] = bucket
    sfn = session().client("stepfunctions", endpoint_url=endpoint)
    return sfn.create_state_machine(
        name=AUDIT_MACHINE, definition=local_form(substitute(definition, substitutions)),
        roleArn=states_role(session(), endpoint), type="STANDARD",
    )["stateMachineArn"]


def create_pipeline(endpoint, path):
    """Creates the state machine in `path` and, when it starts releases, the
    release machine beside it (release.asl.json), named as a stack `kiln` of
    infra/template.yaml names them (`<stack>-build`, `<stack>-release`), so
    their ARNs are the ones the template grants. Returns {name: ARN}."""
    role = states_role(session(), endpoint)
    sfn = session().client("stepfunctions", endpoint_url=endpoint)
    machines = {}

    def create(name, definition_path):
        definition = Path(definition_path).read_text()
        names, substitutions = placeholders(definition)
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
