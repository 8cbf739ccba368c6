"""Shared images (sharing.py) against the shared emulator (emulator.py): an
image of one account, shared with another by account id or through an OU of
AWS Organizations, in accounts of their own per test."""

import unittest
import uuid

from botocore.exceptions import ClientError

from .emulator import CURRENT, EmulatorTestCase


def account():
    return str(uuid.uuid4().int)[:12]


class SharingTest(EmulatorTestCase):
    def setUp(self):
        self.owner, self.member, self.stranger = account(), account(), account()
        ec2 = self.client("ec2", account=self.owner)
        instance = ec2.run_instances(ImageId=self.image(CURRENT), MinCount=1, MaxCount=1)
        self.image_id = ec2.create_image(InstanceId=instance["Instances"][0]["InstanceId"], Name="kiln/web/1")[
            "ImageId"
        ]
        self.ec2 = ec2

    def share(self, **permission):
        self.ec2.modify_image_attribute(ImageId=self.image_id, LaunchPermission={"Add": [permission]})

    def visible(self, account_id, **kwargs):
        images = self.client("ec2", account=account_id).describe_images(**kwargs)["Images"]
        return [image["ImageId"] for image in images]

    def test_an_image_shared_with_an_account_is_seen_and_launched_there_and_nowhere_else(self):
        with self.assertRaises(ClientError) as unshared:
            self.visible(self.member, ImageIds=[self.image_id])
        self.assertEqual(unshared.exception.response["Error"]["Code"], "InvalidAMIID.NotFound")

        self.share(UserId=self.member)

        self.assertEqual(self.visible(self.member, ImageIds=[self.image_id]), [self.image_id])
        self.assertIn(self.image_id, self.visible(self.member, Owners=[self.owner]))
        self.assertIn(self.image_id, self.visible(self.member, ExecutableUsers=["self"]))
        self.assertNotIn(self.image_id, self.visible(self.member, Owners=["self"]))
        member = self.client("ec2", account=self.member)
        launched = member.run_instances(ImageId=self.image_id, MinCount=1, MaxCount=1)["Instances"][0]
        self.assertEqual(launched["ImageId"], self.image_id)
        self.assertNotIn(self.image_id, self.visible(self.stranger, Owners=[self.owner]))
        with self.assertRaises(ClientError):
            self.visible(self.stranger, ImageIds=[self.image_id])

    def test_an_image_shared_with_an_ou_is_seen_by_the_accounts_under_it_at_any_depth(self):
        organizations = self.client("organizations", account=self.owner)
        organizations.create_organization(FeatureSet="ALL")
        root = organizations.list_roots()["Roots"][0]["Id"]
        top = organizations.create_organizational_unit(ParentId=root, Name="workloads")["OrganizationalUnit"]
        nested = organizations.create_organizational_unit(ParentId=top["Id"], Name="prod")["OrganizationalUnit"]
        created = organizations.create_account(AccountName="web", Email="web@example.com")
        member = organizations.describe_create_account_status(
            CreateAccountRequestId=created["CreateAccountStatus"]["Id"]
        )["CreateAccountStatus"]["AccountId"]
        organizations.move_account(AccountId=member, SourceParentId=root, DestinationParentId=nested["Id"])

        self.share(OrganizationalUnitArn=top["Arn"])

        self.assertEqual(self.visible(member, ImageIds=[self.image_id]), [self.image_id])
        with self.assertRaises(ClientError):
            self.visible(self.stranger, ImageIds=[self.image_id])

    def test_the_flat_form_grants_every_item_of_its_lists(self):
        units = [f"arn:aws:organizations::{self.owner}:ou/o-abcdefghij/ou-ab12-{n}cdefgh" for n in (1, 2)]
        self.ec2.modify_image_attribute(
            ImageId=self.image_id, OperationType="add", UserIds=[self.member, self.stranger],
            OrganizationalUnitArns=units,
        )
        granted = self.ec2.describe_image_attribute(ImageId=self.image_id, Attribute="launchPermission")[
            "LaunchPermissions"
        ]
        self.assertCountEqual(
            granted,
            [{"UserId": self.member}, {"UserId": self.stranger}]
            + [{"OrganizationalUnitArn": unit} for unit in units],
        )


if __name__ == "__main__":
    unittest.main()
