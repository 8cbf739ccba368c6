"""What a Run Command prints. moto's commands succeed at once with no output:
StandardOutputContent is empty and nothing is written to the output bucket,
even when SendCommand names one. AWS gives the first 24,000 characters of
the plugin's stdout in GetCommandInvocation's StandardOutputContent and,
when SendCommand names an output bucket, the agent uploads the whole of it
to `<OutputS3KeyPrefix>/<command id>/<instance id>/awsrunShellScript/
0.awsrunShellScript/stdout` and StandardOutputUrl names it.

Nothing runs on an emulated instance, so a test says what a command prints:
`register(account, region, contains, stdout)` (the Lambda proxy's
`POST /_kiln/command-output`) makes every command sent afterwards in that
account and region whose command lines contain `contains` print `stdout`
(the latest registration that matches wins). The patch then answers as AWS
does: the first 24,000 characters in StandardOutputContent, the whole in the
output bucket at the agent's key (when the bucket exists), its URL in
StandardOutputUrl. Commands no registration matches print nothing, as
before.

AWS documentation:
  * AWS Systems Manager API Reference, GetCommandInvocation
    (StandardOutputContent: "The first 24,000 characters written by the
    plugin to stdout"; StandardOutputUrl: "The URL for the complete text
    written by the plugin to stdout in Amazon S3"):
    https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetCommandInvocation.html
  * AWS Systems Manager API Reference, CommandPlugin (OutputS3KeyPrefix; the
    plugin's folder `awsrunShellScript` under the instance's):
    https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_CommandPlugin.html
  * The key's command id and `0.awsrunShellScript` folder: the SSM agent's
    source (github.com/aws/amazon-ssm-agent, agent/plugins/runscript), which
    the API reference's example abbreviates.
"""

import threading

from moto.s3.models import s3_backends
from moto.ssm.models import SimpleSystemManagerBackend

# GetCommandInvocation's StandardOutputContent holds this much of stdout.
INLINE_LIMIT = 24000
PLUGIN_FOLDER = "awsrunShellScript/0.awsrunShellScript"

_outputs = {}
_lock = threading.Lock()


def register(account, region, contains, stdout):
    """Commands sent from now on in `account`/`region` whose lines contain
    `contains` print `stdout`."""
    with _lock:
        _outputs.setdefault((account, region), []).append((contains, stdout))


def printed(account, region, lines):
    """What a command of these lines prints (None: nothing registered)."""
    text = "\n".join(lines)
    with _lock:
        registered = list(_outputs.get((account, region), []))
    return next((stdout for contains, stdout in reversed(registered) if contains in text), None)


def key(command, instance_id):
    """The agent's key of `command`'s stdout on `instance_id`."""
    prefix = command.output_s3_key_prefix.strip("/")
    parts = [prefix] if prefix else []
    return "/".join(parts + [command.command_id, instance_id, PLUGIN_FOLDER, "stdout"])


def apply():
    """Give registered commands their output, inline and in the bucket."""
    send_command = SimpleSystemManagerBackend.send_command

    def with_output(self, *args, **kwargs):
        command = send_command(self, *args, **kwargs)
        stdout = printed(self.account_id, self.region_name, command.parameters.get("commands", []))
        if stdout is None:
            return command
        bucket = command.output_s3_bucket_name
        # Buckets share one namespace: the backend of the account owning it.
        owner = s3_backends.bucket_accounts.get(bucket) if bucket else None
        for invocation in command.invocations:
            invocation["StandardOutputContent"] = stdout[:INLINE_LIMIT]
            if owner:
                partition, account = owner
                object_key = key(command, invocation["InstanceId"])
                s3_backends[account][partition].put_object(bucket, object_key, stdout.encode())
                region = command.output_s3_region or self.region_name
                invocation["StandardOutputUrl"] = f"https://s3.{region}.amazonaws.com/{bucket}/{object_key}"
        return command

    SimpleSystemManagerBackend.send_command = with_output
