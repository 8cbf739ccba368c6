"""CopyImage (copy_image.py) against the shared emulator (emulator.py), in
an account of its own per test: an image made in us-east-1 copied to
eu-west-1."""

import unittest
import uuid

from botocore.exceptions import ClientError

from .emulator import CURRENT, EmulatorTestCase

HOME, AWAY = "us-east-1", "eu-west-1"


class CopyImageTest(EmulatorTestCase):
    def setUp(self):
        self.account = str(uuid.uuid4().int)[:12]
        self.home = self.client_in("ec2", HOME)
        self.away = self.client_in("ec2", AWAY)
        instance = self.home.run_instances(ImageId=self.image(CURRENT), MinCount=1, MaxCount=1)
        self.source = self.home.create_image(
            InstanceId=instance["Instances"][0]["InstanceId"], Name="kiln/web/1",
            TagSpecifications=[{"ResourceType": "image", "Tags": [
                {"Key": "kiln:recipe", "Value": "web"}, {"Key": "kiln:stage", "Value": "tested"}]}],
        )["ImageId"]

    def client_in(self, service, region):
        client = self.session.client(service, endpoint_url=self.info["endpoint"], region_name=region)
        client.meta.events.register(
            f"before-sign.{client.meta.service_model.service_id.hyphenize()}.*",
            lambda request, **_: request.headers.add_header("x-moto-account-id", self.account),
        )
        return client

    def copy(self, **kwargs):
        return self.away.copy_image(SourceImageId=self.source, SourceRegion=HOME, Name="kiln/web/1", **kwargs)

    def described(self, image_id):
        return self.away.describe_images(ImageIds=[image_id])["Images"][0]

    def key(self, region=AWAY):
        return self.client_in("kms", region).create_key()["KeyMetadata"]["Arn"]

    def test_a_copy_is_pending_then_available_encrypted_tagged_and_knows_its_source(self):
        key = self.key()
        copied = self.copy(
            Encrypted=True, KmsKeyId=key, CopyImageTags=True,
            TagSpecifications=[
                {"ResourceType": "image", "Tags": [{"Key": "kiln:stage", "Value": "copy"},
                                                   {"Key": "kiln:source-image", "Value": self.source}]},
                {"ResourceType": "snapshot", "Tags": [{"Key": "kiln:recipe", "Value": "web"}]},
            ],
        )["ImageId"]
        first = self.described(copied)
        self.assertEqual(first["State"], "pending")
        image = self.described(copied)
        self.assertEqual(image["State"], "available")
        self.assertEqual((image["SourceImageId"], image["SourceImageRegion"]), (self.source, HOME))
        tags = {t["Key"]: t["Value"] for t in image["Tags"]}
        self.assertEqual(tags, {"kiln:recipe": "web", "kiln:stage": "copy", "kiln:source-image": self.source})
        ebs = image["BlockDeviceMappings"][0]["Ebs"]
        self.assertEqual((ebs["Encrypted"], ebs["KmsKeyId"]), (True, key))
        snapshot = self.away.describe_snapshots(SnapshotIds=[ebs["SnapshotId"]])["Snapshots"][0]
        self.assertEqual((snapshot["Encrypted"], snapshot["KmsKeyId"]), (True, key))
        self.assertEqual({t["Key"]: t["Value"] for t in snapshot["Tags"]}, {"kiln:recipe": "web"})
        self.assertNotIn(copied, [i["ImageId"] for i in self.home.describe_images(Owners=["self"])["Images"]])

    def test_without_copy_image_tags_no_tag_is_copied(self):
        copied = self.copy()["ImageId"]
        self.assertEqual(self.described(copied).get("Tags", []), [])

    def test_a_client_token_answers_the_first_copy_and_refuses_other_parameters(self):
        token = str(uuid.uuid4())
        first = self.copy(ClientToken=token)["ImageId"]
        self.assertEqual(self.copy(ClientToken=token)["ImageId"], first)
        mine = [i["ImageId"] for i in self.away.describe_images(Owners=["self"])["Images"]]
        self.assertEqual(mine, [first])
        with self.assertRaises(ClientError) as refused:
            self.copy(ClientToken=token, Description="another")
        self.assertEqual(refused.exception.response["Error"]["Code"], "IdempotentParameterMismatch")

    def test_a_key_without_encrypted_or_a_tag_of_another_type_is_refused_and_nothing_is_made(self):
        for kwargs, code in (
            ({"KmsKeyId": self.key()}, "InvalidParameterCombination"),
            ({"TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "a", "Value": "b"}]}]},
             "InvalidParameterValue"),
        ):
            with self.subTest(code), self.assertRaises(ClientError) as refused:
                self.copy(**kwargs)
            self.assertEqual(refused.exception.response["Error"]["Code"], code)
        self.assertEqual(self.away.describe_images(Owners=["self"])["Images"], [])

    def test_a_key_not_in_the_destination_region_makes_the_copy_fail(self):
        copied = self.copy(Encrypted=True, KmsKeyId=self.key(HOME))["ImageId"]
        self.assertEqual(self.described(copied)["State"], "pending")
        image = self.described(copied)
        self.assertEqual(image["State"], "failed")
        self.assertEqual(image["StateReason"]["Code"], "InvalidKmsKey")


if __name__ == "__main__":
    unittest.main()
