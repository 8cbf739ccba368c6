"""Allowed AMIs (allowed_images.py) against the shared emulator
(emulator.py): a vendor's image shared with an account, the account's own
image, and the setting in each mode, in accounts of their own per test."""

import unittest
import uuid

from botocore.exceptions import ClientError

from .emulator import CURRENT, EmulatorTestCase


def account():
    return str(uuid.uuid4().int)[:12]


class AllowedImagesTest(EmulatorTestCase):
    def setUp(self):
        self.account, self.vendor = account(), account()
        self.ec2 = self.client("ec2", account=self.account)
        vendor = self.client("ec2", account=self.vendor)
        self.vendor_image = self.image_of(vendor, "vendor/app-1")
        vendor.modify_image_attribute(ImageId=self.vendor_image, LaunchPermission={"Add": [{"UserId": self.account}]})
        self.own_image = self.image_of(self.ec2, "team/own-1")

    def image_of(self, ec2, name):
        instance = ec2.run_instances(ImageId=self.image(CURRENT), MinCount=1, MaxCount=1)["Instances"][0]
        return ec2.create_image(InstanceId=instance["InstanceId"], Name=name)["ImageId"]

    def visible(self, image_id):
        return self.ec2.describe_images(ImageIds=[image_id])["Images"]

    def launch(self, image_id):
        return self.ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0]

    def test_the_setting_starts_disabled_and_keeps_what_it_is_given(self):
        self.assertEqual(self.ec2.get_allowed_images_settings()["State"], "disabled")
        criteria = [{"ImageProviders": [self.vendor], "ImageNames": ["vendor/*"],
                     "CreationDateCondition": {"MaximumDaysSinceCreated": 30}}]
        self.ec2.replace_image_criteria_in_allowed_images_settings(ImageCriteria=criteria)
        answer = self.ec2.enable_allowed_images_settings(AllowedImagesSettingsState="audit-mode")
        self.assertEqual(answer["AllowedImagesSettingsState"], "audit-mode")
        got = self.ec2.get_allowed_images_settings()
        self.assertEqual((got["State"], got["ManagedBy"]), ("audit-mode", "account"))
        self.assertEqual(got["ImageCriteria"], criteria)
        other = self.client("ec2", account=account()).get_allowed_images_settings()
        self.assertEqual(other["State"], "disabled", "the setting is the account's own")

    def test_audit_mode_restricts_nothing_and_says_what_enabled_would(self):
        self.ec2.replace_image_criteria_in_allowed_images_settings(ImageCriteria=[{"ImageProviders": ["amazon"]}])
        self.ec2.enable_allowed_images_settings(AllowedImagesSettingsState="audit-mode")
        self.assertIs(self.visible(self.vendor_image)[0]["ImageAllowed"], False)
        self.assertIs(self.visible(self.own_image)[0]["ImageAllowed"], True, "an account's own images are allowed")
        self.launch(self.vendor_image)

    def test_enabled_hides_and_refuses_what_no_criterion_allows_but_never_the_accounts_own(self):
        running = self.launch(self.vendor_image)["InstanceId"]
        self.ec2.replace_image_criteria_in_allowed_images_settings(
            ImageCriteria=[{"ImageProviders": [self.vendor], "ImageNames": ["vendor/other-*"]}])
        self.ec2.enable_allowed_images_settings(AllowedImagesSettingsState="enabled")
        self.assertEqual(self.visible(self.vendor_image), [])
        with self.assertRaises(ClientError) as refused:
            self.launch(self.vendor_image)
        self.assertEqual(refused.exception.response["Error"]["Code"], "InvalidAMIID.NotFound")
        self.launch(self.own_image)
        state = self.ec2.describe_instances(InstanceIds=[running])["Reservations"][0]["Instances"][0]["State"]
        self.assertEqual(state["Name"], "running", "instances already running are untouched")

        self.ec2.replace_image_criteria_in_allowed_images_settings(
            ImageCriteria=[{"ImageProviders": ["amazon"]}, {"ImageProviders": [self.vendor], "ImageNames": ["vendor/app-?"]}])
        self.assertEqual(len(self.visible(self.vendor_image)), 1, "one criterion matching is enough")
        self.ec2.disable_allowed_images_settings()
        self.assertNotIn("ImageAllowed", self.visible(self.vendor_image)[0])

    def test_criteria_beyond_the_limits_are_refused_and_change_nothing(self):
        for criteria in (
            [{"ImageProviders": ["amazon"]}] * 11,
            [{"ImageProviders": [account() for _ in range(201)]}],
            [{"ImageNames": [f"name-{i}" for i in range(51)]}],
            [{"ImageNames": ["a" * 129]}],
            [{"ImageNames": ["a?"]}],
            [{"ImageNames": ["bad:name"]}],
            [{"ImageProviders": ["none", self.vendor]}],
        ):
            with self.subTest(criteria=str(criteria)[:60]):
                with self.assertRaises(ClientError) as refused:
                    self.ec2.replace_image_criteria_in_allowed_images_settings(ImageCriteria=criteria)
                self.assertEqual(refused.exception.response["Error"]["Code"], "InvalidParameterValue")
        self.assertEqual(self.ec2.get_allowed_images_settings().get("ImageCriteria", []), [])


if __name__ == "__main__":
    unittest.main()
