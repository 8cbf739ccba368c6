"""The emulator, end to end: what it seeds and patches checked with boto3
against the shared emulator (emulator.py), from the emulator's own venv:

    .venv/bin/python -m unittest discover -s scripts/kiln_emulator/tests -t scripts
"""

import json
import unittest

from .emulator import ARM, CANONICAL, CURRENT, PREVIOUS, TRUSTY, EmulatorTestCase


class EmulatorTest(EmulatorTestCase):
    def test_source_parameter_names_the_current_image(self):
        parameter = self.client("ssm").get_parameter(Name=self.info["source_parameter"])["Parameter"]
        self.assertEqual(parameter["Value"], self.image(CURRENT))
        self.assertEqual(self.info["source_ami"], self.image(CURRENT))

    def test_canonical_images_have_ena_except_trusty(self):
        images = self.client("ec2").describe_images(Owners=[CANONICAL])["Images"]
        self.assertEqual(
            {image["ImageId"]: image.get("EnaSupport") for image in images},
            {self.image(name): name != TRUSTY for name in (CURRENT, PREVIOUS, ARM, TRUSTY)},
        )

    def test_instances_and_their_images_take_ena_from_their_image(self):
        ec2 = self.client("ec2")
        for name, ena in ((CURRENT, True), (TRUSTY, False)):
            with self.subTest(name):
                launched = ec2.run_instances(ImageId=self.image(name), MinCount=1, MaxCount=1)
                instance_id = launched["Instances"][0]["InstanceId"]
                reservation = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]
                self.assertIs(reservation["Instances"][0].get("EnaSupport"), ena)
                image_id = ec2.create_image(InstanceId=instance_id, Name=f"from-{name}")["ImageId"]
                self.assertIs(ec2.describe_images(ImageIds=[image_id])["Images"][0].get("EnaSupport"), ena)

    def test_launch_template_version_starts_from_its_source_version(self):
        ec2 = self.client("ec2")
        ec2.create_launch_template(
            LaunchTemplateName="sourced",
            LaunchTemplateData={"ImageId": self.image(CURRENT), "InstanceType": "t3.micro"},
        )
        ec2.create_launch_template_version(
            LaunchTemplateName="sourced", SourceVersion="1", LaunchTemplateData={"InstanceType": "t3.large"}
        )
        version = ec2.describe_launch_template_versions(LaunchTemplateName="sourced", Versions=["2"])
        self.assertEqual(
            version["LaunchTemplateVersions"][0]["LaunchTemplateData"],
            {"ImageId": self.image(CURRENT), "InstanceType": "t3.large"},
        )

    def test_lambda_proxy_runs_the_function_and_injects_faults(self):
        lambda_ = self.client("lambda", self.info["lambda_proxy"])
        answer = lambda_.invoke(FunctionName="echo", Payload=json.dumps({"action": "build"}))
        self.assertNotIn("FunctionError", answer)
        self.assertEqual(json.load(answer["Payload"]), {"event": {"action": "build"}, "name": "echo"})
        arn = f"arn:aws:lambda:{self.info['region']}:{self.info['account']}:function:echo"
        crashed = lambda_.invoke(FunctionName=arn, Payload=json.dumps({"action": "crash"}))
        self.assertEqual(crashed["FunctionError"], "Unhandled")
        self.assertEqual(json.load(crashed["Payload"])["errorType"], "Injected")
        with self.assertRaises(lambda_.exceptions.ResourceNotFoundException):
            lambda_.invoke(FunctionName="missing")

    def test_pipeline_names_its_functions_and_release_machine(self):
        sfn = self.client("stepfunctions")
        self.assertTrue(self.info["state_machine_arn"].endswith(":stateMachine:kiln-build"))
        self.assertTrue(self.info["release_state_machine_arn"].endswith(":stateMachine:kiln-release"))
        definition = sfn.describe_state_machine(stateMachineArn=self.info["state_machine_arn"])["definition"]
        self.assertNotIn("${", definition)
        self.assertIn(":function:resolve-source", definition)
        self.assertIn(self.info["release_state_machine_arn"], definition)

    def test_start_execution_task_with_the_api_names_and_the_start_time(self):
        sfn = self.client("stepfunctions")
        role = f"arn:aws:iam::{self.info['account']}:role/kiln-states"
        child = sfn.create_state_machine(
            name="child", roleArn=role,
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}),
        )["stateMachineArn"]
        # ResultPath null, as the pipeline's: moto cannot serialize the task's
        # result (its StartDate) in DescribeExecution.
        start = {
            "Type": "Task", "Resource": "arn:aws:states:::states:startExecution",
            "Parameters": {
                "StateMachineArn": child, "Name": "started", "Input": {"at.$": "$$.Execution.StartTime"}
            },
            "ResultPath": None, "End": True,
        }
        parent = sfn.create_state_machine(
            name="parent", roleArn=role, definition=json.dumps({"StartAt": "Start", "States": {"Start": start}})
        )["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=parent)["executionArn"]
        ended = self.wait_for(
            lambda: (d := sfn.describe_execution(executionArn=execution))["status"] != "RUNNING" and d
        )
        self.assertEqual(ended["status"], "SUCCEEDED", ended.get("cause"))
        started = self.wait_for(lambda: sfn.list_executions(stateMachineArn=child)["executions"])
        self.assertEqual([e["name"] for e in started], ["started"])
        at = json.loads(sfn.describe_execution(executionArn=started[0]["executionArn"])["input"])["at"]
        self.assertRegex(at, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


if __name__ == "__main__":
    unittest.main()
