"""Each function's IAM policy statements in kiln's translated template, with
every intrinsic function resolved as CloudFormation resolves it for a stack
`kiln` in us-east-1 of account 123456789012: what tests/integration/iam.rs
checks the calls each function makes against.

Resources resolve to names and ARNs of the shape AWS gives them (a role's ARN
is arn:aws:iam::ACCOUNT:role/NAME, a bucket's arn:aws:s3:::NAME, ...), with
each physical name STACK-LOGICALID in lower case. `AWS::NoValue` removes
the property or list item it stands for, as CloudFormation documents
(Pseudo parameters reference, AWS::NoValue).
"""

import re

STACK = "kiln"
REGION = "us-east-1"
ACCOUNT = "123456789012"
PSEUDO = {
    "AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
    "AWS::StackName": STACK, "AWS::URLSuffix": "amazonaws.com",
}
NO_VALUE = object()


def physical(logical):
    return f"{STACK}-{logical}".lower()


def arn(cfn, logical):
    kind = cfn["Resources"][logical]["Type"]
    name = physical(logical)
    service, _, rest = kind.removeprefix("AWS::").partition("::")
    return {
        "IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{name}",
        "IAM::InstanceProfile": f"arn:aws:iam::{ACCOUNT}:instance-profile/{name}",
        "S3::Bucket": f"arn:aws:s3:::{name}",
        "SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
        "Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
        "Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*",
        "StepFunctions::StateMachine": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}",
    }.get(f"{service}::{rest}", f"arn:aws:{service.lower()}:{REGION}:{ACCOUNT}:{rest.lower()}/{name}")


def ref(cfn, parameters, name):
    if name in PSEUDO:
        return PSEUDO[name]
    if name == "AWS::NoValue":
        return NO_VALUE
    if name in cfn.get("Parameters", {}):
        spec = cfn["Parameters"][name]
        value = parameters.get(name, spec.get("Default", ""))
        return [v for v in value.split(",") if v] if spec["Type"] == "CommaDelimitedList" else value
    kind = cfn["Resources"][name]["Type"]
    # What Ref gives for the resource types kiln's template refers to.
    if kind == "AWS::StepFunctions::StateMachine":
        return arn(cfn, name)
    if kind == "AWS::SQS::Queue":
        return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical(name)}"
    return physical(name)


def condition(cfn, parameters, name):
    return bool(resolve(cfn, parameters, cfn["Conditions"][name]))


def resolve(cfn, parameters, value):
    """The value with every intrinsic function resolved."""
    if isinstance(value, list):
        items = [resolve(cfn, parameters, v) for v in value]
        return [v for v in items if v is not NO_VALUE]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, arg), = value.items()
        if key == "Ref":
            return ref(cfn, parameters, arg)
        if key == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            assert attribute == "Arn", attribute
            return arn(cfn, logical)
        if key == "Fn::Sub":
            template, names = (arg, {}) if isinstance(arg, str) else arg
            names = {k: resolve(cfn, parameters, v) for k, v in names.items()}

            def one(match):
                name = match.group(1)
                if name in names:
                    return str(names[name])
                if name.endswith(".Arn"):
                    return arn(cfn, name[:-4])
                return str(ref(cfn, parameters, name))

            return re.sub(r"\$\{([\w:.]+)\}", one, template)
        if key == "Fn::Join":
            separator, items = arg
            return separator.join(str(i) for i in resolve(cfn, parameters, items))
        if key == "Fn::If":
            name, yes, no = arg
            return resolve(cfn, parameters, yes if condition(cfn, parameters, name) else no)
        if key == "Fn::Equals":
            left, right = resolve(cfn, parameters, arg)
            return left == right
        if key == "Fn::Not":
            return not resolve(cfn, parameters, arg[0])
        if key == "Condition":
            return condition(cfn, parameters, arg)
    items = {k: resolve(cfn, parameters, v) for k, v in value.items()}
    return {k: v for k, v in items.items() if v is not NO_VALUE}


def role(cfn, parameters, logical):
    """A role's inline statements and managed policies."""
    properties = resolve(cfn, parameters, cfn["Resources"][logical]["Properties"])
    return {
        "role": logical,
        "managed": properties.get("ManagedPolicyArns", []),
        "statements": [
            statement
            for policy in properties.get("Policies", [])
            for statement in policy["PolicyDocument"]["Statement"]
        ],
    }


def roles(cfn, parameters):
    """{"functions": {binary: role}, "roles": {logical id: role}}: every
    function's role, and every other role."""
    functions, others = {}, {}
    for logical, resource in cfn["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function":
            # SAM keeps the function's Metadata, where the template names its binary.
            binary = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary", logical)
            functions[binary] = role(cfn, parameters, resource["Properties"]["Role"]["Fn::GetAtt"][0])
        elif resource["Type"] == "AWS::IAM::Role":
            others[logical] = role(cfn, parameters, logical)
    return {"functions": functions, "roles": others}
