"""The baseline: resolve-source as a Python 3 + boto3 Lambda, with the same
client setup (EC2 and SSM clients from the environment, built once at init)
and the same calls per event (GetParameter, DescribeImages of the source,
DescribeImages of kiln's own images with that fingerprint's tags).

It speaks the Lambda Runtime API itself, as a custom runtime would, so the
benchmark measures both sides the same way: spawn to the first
`GET /runtime/invocation/next`, then one handled event.
"""

import json
import os
import urllib.request

import boto3

API = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime"
PARAMETER = os.environ["KILN_SOURCE_PARAMETER"]

ec2 = boto3.client("ec2")
ssm = boto3.client("ssm")


def handler(event):
    ami = ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"]
    image = ec2.describe_images(ImageIds=[ami], IncludeDeprecated=True)["Images"][0]
    built = ec2.describe_images(
        Owners=["self"],
        Filters=[
            {"Name": "tag:kiln:recipe", "Values": [event["recipe"]]},
            {"Name": "state", "Values": ["available"]},
        ],
    )["Images"]
    return {"source_ami": ami, "source_name": image["Name"], "skip": bool(built)}


while True:
    with urllib.request.urlopen(f"{API}/invocation/next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(response.read())
    body = json.dumps(handler(event)).encode()
    urllib.request.urlopen(
        urllib.request.Request(f"{API}/invocation/{request_id}/response", data=body, method="POST")
    ).read()
