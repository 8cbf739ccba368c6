"""An image's lifecycle (image_lifecycle.py) against the shared emulator
(emulator.py): deregistration protection, deprecation, disabled images and
the last launch, each test in an account of its own."""

import unittest
import uuid
from datetime import datetime, timedelta, timezone

from botocore.exceptions import ClientError

from .emulator import CURRENT, EmulatorTestCase


def account():
    return str(uuid.uuid4().int)[:12]


class LifecycleTest(EmulatorTestCase):
    def setUp(self):
        self.account = account()
        self.ec2 = self.client("ec2", account=self.account)
        instance = self.ec2.run_instances(ImageId=self.image(CURRENT), MinCount=1, MaxCount=1)["Instances"][0]
        self.image_id = self.ec2.create_image(InstanceId=instance["InstanceId"], Name=f"kiln/{uuid.uuid4()}")[
            "ImageId"
        ]

    def described(self, **kwargs):
        images = self.ec2.describe_images(ImageIds=[self.image_id], **kwargs)["Images"]
        return images[0] if images else None

    def refused(self, call, code, **kwargs):
        with self.assertRaises(ClientError) as refused:
            call(**kwargs)
        self.assertEqual(refused.exception.response["Error"]["Code"], code)

    def test_a_protected_image_cannot_be_deregistered_until_protection_is_off(self):
        self.assertEqual(self.described()["DeregistrationProtection"], "disabled")
        answer = self.ec2.enable_image_deregistration_protection(ImageId=self.image_id)
        self.assertEqual(answer["Return"], "enabled-without-cooldown")
        self.assertEqual(self.described()["DeregistrationProtection"], "enabled-without-cooldown")
        self.refused(self.ec2.deregister_image, "OperationNotPermitted", ImageId=self.image_id)
        self.assertIsNotNone(self.described())
        self.ec2.disable_image_deregistration_protection(ImageId=self.image_id)
        self.ec2.deregister_image(ImageId=self.image_id)
        self.assertIsNone(self.described())

    def test_the_cooldown_keeps_protection_for_a_day_after_it_is_turned_off(self):
        self.ec2.enable_image_deregistration_protection(ImageId=self.image_id, WithCooldown=True)
        self.assertEqual(self.described()["DeregistrationProtection"], "enabled-with-cooldown")
        self.ec2.disable_image_deregistration_protection(ImageId=self.image_id)
        self.assertEqual(self.described()["DeregistrationProtection"], "disabled")
        self.refused(self.ec2.deregister_image, "OperationNotPermitted", ImageId=self.image_id)

    def test_another_account_cannot_protect_or_disable_an_image(self):
        stranger = self.client("ec2", account=account())
        self.refused(stranger.enable_image_deregistration_protection, "InvalidAMIID.NotFound", ImageId=self.image_id)
        self.refused(stranger.disable_image, "InvalidAMIID.NotFound", ImageId=self.image_id)

    def test_deprecation_is_rounded_to_the_minute_and_never_in_the_past(self):
        soon = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
        at = soon.replace(second=40)
        self.ec2.enable_image_deprecation(ImageId=self.image_id, DeprecateAt=at)
        expected = (at.replace(second=0) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        self.assertEqual(self.described()["DeprecationTime"], expected)
        past = datetime.now(timezone.utc) - timedelta(hours=1)
        self.refused(self.ec2.enable_image_deprecation, "InvalidParameterValue", ImageId=self.image_id,
                     DeprecateAt=past)
        far = datetime.now(timezone.utc) + timedelta(days=3700)
        self.refused(self.ec2.enable_image_deprecation, "InvalidParameterValue", ImageId=self.image_id,
                     DeprecateAt=far)
        self.assertEqual(self.described()["DeprecationTime"], expected, "a refused call changes nothing")
        self.ec2.disable_image_deprecation(ImageId=self.image_id)
        self.assertNotIn("DeprecationTime", self.described())

    def test_a_disabled_image_is_hidden_unshared_and_unlaunchable_until_enabled(self):
        member = account()
        self.ec2.modify_image_attribute(ImageId=self.image_id, LaunchPermission={"Add": [{"UserId": member}]})
        self.ec2.disable_image(ImageId=self.image_id)

        self.assertIsNone(self.described())
        listed = self.ec2.describe_images(Owners=["self"])["Images"]
        self.assertNotIn(self.image_id, [i["ImageId"] for i in listed])
        self.assertEqual(self.described(IncludeDisabled=True)["State"], "disabled")
        attribute = self.ec2.describe_image_attribute(ImageId=self.image_id, Attribute="launchPermission")
        self.assertEqual(attribute["LaunchPermissions"], [])
        self.refused(self.ec2.run_instances, "InvalidAMIID.Unavailable", ImageId=self.image_id, MinCount=1,
                     MaxCount=1)
        self.refused(self.ec2.modify_image_attribute, "OperationNotPermitted", ImageId=self.image_id,
                     LaunchPermission={"Add": [{"UserId": member}]})
        snapshot = self.described(IncludeDisabled=True)["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        self.refused(self.ec2.delete_snapshot, "InvalidSnapshot.InUse", SnapshotId=snapshot)

        self.ec2.enable_image(ImageId=self.image_id)
        self.assertEqual(self.described()["State"], "available")
        attribute = self.ec2.describe_image_attribute(ImageId=self.image_id, Attribute="launchPermission")
        self.assertEqual(attribute["LaunchPermissions"], [], "access lost on disable is not given back")
        self.ec2.run_instances(ImageId=self.image_id, MinCount=1, MaxCount=1)

    def test_a_launch_records_the_images_last_launched_time(self):
        self.assertNotIn("LastLaunchedTime", self.described())
        before = datetime.now(timezone.utc).replace(microsecond=0)
        self.ec2.run_instances(ImageId=self.image_id, MinCount=1, MaxCount=1)
        launched = datetime.fromisoformat(self.described()["LastLaunchedTime"].replace("Z", "+00:00"))
        self.assertGreaterEqual(launched, before)


if __name__ == "__main__":
    unittest.main()
