"""RunInstances of images it cannot launch (run_instances.py), against the
shared emulator (emulator.py), in an account of its own so the region holds
the test's instances only."""

import unittest
import uuid

from botocore.exceptions import ClientError

from .emulator import CURRENT, TRUSTY, EmulatorTestCase

ENA_REQUIRED = (
    "Enhanced networking with the Elastic Network Adapter (ENA) is required for the '{}' instance type."
    " Ensure that you are using an AMI that is enabled for ENA."
)


class RunInstancesTest(EmulatorTestCase):
    def setUp(self):
        self.account = str(uuid.uuid4().int)[:12]
        self.ec2 = self.client("ec2", account=self.account)

    def launch(self, **kwargs):
        return self.ec2.run_instances(MinCount=1, MaxCount=1, **kwargs)["Instances"][0]

    def refused(self, code, **kwargs):
        with self.assertRaises(ClientError) as refused:
            self.launch(**kwargs)
        self.assertEqual(refused.exception.response["Error"]["Code"], code)
        return refused.exception.response["Error"]["Message"]

    def images_launched(self):
        reservations = self.ec2.describe_instances()["Reservations"]
        return sorted((i["ImageId"], i["InstanceType"]) for r in reservations for i in r["Instances"])

    def test_a_type_that_requires_ena_is_refused_on_an_image_without(self):
        trusty, current = self.image(TRUSTY), self.image(CURRENT)
        for instance_type in ("t3.small", "m5.large", "c6i.large"):
            with self.subTest(instance_type):
                message = self.refused("InvalidParameterCombination", ImageId=trusty, InstanceType=instance_type)
                self.assertEqual(message, ENA_REQUIRED.format(instance_type))
        self.ec2.create_launch_template(
            LaunchTemplateName="trusty", LaunchTemplateData={"ImageId": trusty, "InstanceType": "t3a.small"}
        )
        message = self.refused("InvalidParameterCombination", LaunchTemplate={"LaunchTemplateName": "trusty"})
        self.assertEqual(message, ENA_REQUIRED.format("t3a.small"))
        self.assertEqual(self.images_launched(), [])
        self.launch(ImageId=trusty, InstanceType="t2.micro")
        self.launch(ImageId=trusty)
        self.launch(ImageId=current, InstanceType="t3.small")
        self.assertEqual(
            self.images_launched(), sorted([(trusty, "t2.micro"), (trusty, "m1.small"), (current, "t3.small")])
        )

    def test_an_image_that_does_not_exist_is_refused(self):
        instance_id = self.launch(ImageId=self.image(CURRENT), InstanceType="t3.small")["InstanceId"]
        deregistered = self.ec2.create_image(InstanceId=instance_id, Name="deregistered")["ImageId"]
        self.ec2.deregister_image(ImageId=deregistered)
        for image_id in ("ami-0123456789abcdef0", deregistered):
            with self.subTest(image_id):
                message = self.refused("InvalidAMIID.NotFound", ImageId=image_id, InstanceType="t3.small")
                self.assertIn(image_id, message)
        self.refused("InvalidAMIID.Malformed", ImageId="bogus")
        self.assertEqual(self.images_launched(), [(self.image(CURRENT), "t3.small")])

    def pointer(self, ssm, name, image_id):
        """Puts an `aws:ec2:image` parameter and reads it until validated (image_parameters.py)."""
        ssm.put_parameter(Name=name, Value=image_id, Type="String", DataType="aws:ec2:image")
        with self.assertRaises(ClientError):
            ssm.get_parameter(Name=name)
        self.assertEqual(ssm.get_parameter(Name=name)["Parameter"]["Value"], image_id)

    def test_an_image_id_from_a_parameter_is_resolved_at_launch(self):
        ssm = self.client("ssm", account=self.account)
        current, trusty = self.image(CURRENT), self.image(TRUSTY)
        self.pointer(ssm, "/kiln/base/prod", current)
        ssm.put_parameter(Name="/kiln/base/text", Value=current, Type="String")
        self.ec2.create_launch_template(
            LaunchTemplateName="pointer",
            LaunchTemplateData={"ImageId": "resolve:ssm:/kiln/base/prod", "InstanceType": "t3.small"},
        )
        self.launch(LaunchTemplate={"LaunchTemplateName": "pointer"})
        self.launch(ImageId="resolve:ssm:/kiln/base/prod:1", InstanceType="t2.micro")
        self.assertEqual(self.images_launched(), sorted([(current, "t3.small"), (current, "t2.micro")]))
        message = self.refused("SsmInvalidParameter", ImageId="resolve:ssm:/kiln/base/text")
        self.assertIn("aws:ec2:image", message)
        for missing in ("/kiln/base/none", "/kiln/base/prod:7"):
            with self.subTest(missing):
                self.refused("SsmInvalidParameter", ImageId="resolve:ssm:" + missing)
        self.pointer(ssm, "/kiln/base/old", trusty)
        self.refused("InvalidParameterCombination", ImageId="resolve:ssm:/kiln/base/old", InstanceType="t3.small")
        self.assertEqual(len(self.images_launched()), 2)


if __name__ == "__main__":
    unittest.main()
