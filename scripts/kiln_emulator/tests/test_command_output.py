"""What Run Commands print (patches/command_output.py, the proxy's
POST /_kiln/command-output): the first 24,000 characters inline, the whole
in the output bucket at the agent's key; against the shared emulator
(emulator.py), each test in an account of its own."""

import json
import urllib.error
import urllib.request
import uuid

from .emulator import CURRENT, EmulatorTestCase


class CommandOutputTest(EmulatorTestCase):
    def setUp(self):
        self.account = str(uuid.uuid4().int)[:12]
        self.ssm = self.client("ssm", account=self.account)
        self.s3 = self.client("s3", account=self.account)
        ec2 = self.client("ec2", account=self.account)
        self.instance = ec2.run_instances(ImageId=self.image(CURRENT), InstanceType="t3.micro", MinCount=1,
                                          MaxCount=1)["Instances"][0]["InstanceId"]

    def register(self, **body):
        request = urllib.request.Request(
            f"{self.info['lambda_proxy']}/_kiln/command-output", method="POST",
            data=json.dumps({"account": self.account, **body}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as answer:
            return answer.status

    def send(self, line, **output):
        command = self.ssm.send_command(InstanceIds=[self.instance], DocumentName="AWS-RunShellScript",
                                        Parameters={"commands": ["set -u", line]}, **output)["Command"]
        invocation = self.ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=self.instance)
        return command["CommandId"], invocation

    def test_a_long_output_is_cut_inline_and_whole_in_the_bucket(self):
        stdout = "".join(f"package-{i}\t1.{i}\n" for i in range(3000))
        self.assertGreater(len(stdout), 24000)
        self.assertEqual(self.register(contains="dpkg-query -W", stdout=stdout), 204)
        bucket = f"output-{uuid.uuid4()}"
        self.s3.create_bucket(Bucket=bucket)
        command, invocation = self.send("dpkg-query -W -f '${Package}'", OutputS3BucketName=bucket,
                                        OutputS3KeyPrefix="kiln/builds/r/b/packages")
        self.assertEqual(invocation["StandardOutputContent"], stdout[:24000])
        key = f"kiln/builds/r/b/packages/{command}/{self.instance}/awsrunShellScript/0.awsrunShellScript/stdout"
        self.assertEqual(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode(), stdout)
        self.assertTrue(invocation["StandardOutputUrl"].endswith(f"/{bucket}/{key}"), invocation["StandardOutputUrl"])

    def test_other_commands_and_other_accounts_print_nothing(self):
        self.register(contains="cat /etc/os-release", stdout="ID=ubuntu\n")
        _, other = self.send("echo hello")
        self.assertEqual(other["StandardOutputContent"], "")
        _, inline = self.send("cat /etc/os-release")
        self.assertEqual((inline["StandardOutputContent"], inline["StandardOutputUrl"]), ("ID=ubuntu\n", ""))
        ssm = self.client("ssm")  # the emulator's own account
        elsewhere = ssm.send_command(InstanceIds=[self.instance], DocumentName="AWS-RunShellScript",
                                     Parameters={"commands": ["cat /etc/os-release"]})["Command"]["CommandId"]
        invocation = ssm.get_command_invocation(CommandId=elsewhere, InstanceId=self.instance)
        self.assertEqual(invocation["StandardOutputContent"], "")

    def test_the_latest_registration_wins_and_bad_ones_are_refused(self):
        self.register(contains="list", stdout="first\n")
        self.register(contains="list", stdout="second\n")
        self.assertEqual(self.send("list packages")[1]["StandardOutputContent"], "second\n")
        for body in ({"contains": "", "stdout": "x"}, {"stdout": "x"}, {"contains": "x", "stdout": 1}):
            with self.subTest(body=body), self.assertRaises(urllib.error.HTTPError) as refused:
                self.register(**body)
            self.assertEqual(refused.exception.code, 400)
