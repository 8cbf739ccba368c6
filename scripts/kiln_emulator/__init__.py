"""kiln's local AWS emulator: moto server, seeded for kiln and patched where
moto differs from AWS in what kiln does (fourteen patches, in patches/: ENA,
the execution start time as Step Functions gives it, AssumeRole by the
role's trust policy, DescribeInstances pages (and tokens it did not hand
out), a launch template version's SourceVersion, Auto Scaling instance
refreshes (progressive, with AWS's rollback rules), the parameters of the
Step Functions `states:startExecution` integration, CreateImage's snapshot
tags, an image's ImdsSupport, RunInstances of a missing or non-ENA image,
the asynchronous validation of `aws:ec2:image` parameters, CloudWatch
alarm history, DescribeRegions by partition and opt-in, and CopyImage
(encryption, tags, idempotency, pending until copied, its source)).

Seeds (seed.py):
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
(proxy.py, with scripts/local_lambda.py), with real Lambda's answer to a
function error (200 and X-Amz-Function-Error: Unhandled), and passes
everything else to moto. The functions make their AWS calls through the
proxy too, each with the access key id kiln-function-NAME, and the proxy
records every call it is sent (calls.py): GET /_kiln/calls on it answers
them, DELETE empties them. One test hook changes state, standing in for
time a test cannot wait out: POST /_kiln/launch-time dates an instance's
launch (proxy.py). With --pipeline FILE it creates that state machine
(pipeline.py), each ${NameFunction} placeholder naming the function binary
name-in-kebab-case; when it starts releases (${ReleaseStateMachine}), the
release machine beside it (release.asl.json) is created first.

Run it as `python -m kiln_emulator serve|env` with scripts/ on PYTHONPATH, as
scripts/emulator does (cli.py).
"""

REGION = "us-east-1"
ACCOUNT = "123456789012"
CANONICAL = "099720109477"
SOURCE_PARAMETER = (
    "/kiln-emulator/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
)
INSTANCE_PROFILE = "kiln-builder"
MEMBER_ACCOUNT = "210987654321"
MEMBER_ROLE = "kiln-audit"
