"""Images kiln makes: CreateImage's snapshot tags (image_snapshot_tags.py) and
ImdsSupport (imds_support.py), against the shared emulator (emulator.py)."""

import unittest
import uuid

from botocore.exceptions import ClientError

from .emulator import CURRENT, EmulatorTestCase


def tags(resource):
    return {tag["Key"]: tag["Value"] for tag in resource.get("Tags", [])}


class ImageTest(EmulatorTestCase):
    def launch(self, **kwargs):
        ec2 = self.client("ec2")
        launched = ec2.run_instances(ImageId=kwargs.pop("ImageId", self.image(CURRENT)), MinCount=1, MaxCount=1,
                                     **kwargs)
        return launched["Instances"][0]

    def metadata_options(self, instance_id):
        reservation = self.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]
        return reservation["Instances"][0]["MetadataOptions"]

    def new_image(self):
        instance_id = self.launch()["InstanceId"]
        return self.client("ec2").create_image(InstanceId=instance_id, Name=f"image-{uuid.uuid4()}")["ImageId"]

    def test_create_image_tags_the_image_and_its_snapshots(self):
        ec2 = self.client("ec2")
        build = str(uuid.uuid4())
        instance_id = self.launch()["InstanceId"]
        image_id = ec2.create_image(
            InstanceId=instance_id, Name=f"tagged-{build}",
            TagSpecifications=[
                {"ResourceType": "image", "Tags": [{"Key": "kiln:build-id", "Value": build},
                                                   {"Key": "kiln:recipe", "Value": "base"}]},
                {"ResourceType": "snapshot", "Tags": [{"Key": "kiln:build-id", "Value": build}]},
            ],
        )["ImageId"]
        image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
        self.assertEqual(tags(image), {"kiln:build-id": build, "kiln:recipe": "base"})
        snapshots = ec2.describe_snapshots(Filters=[{"Name": "tag:kiln:build-id", "Values": [build]}])["Snapshots"]
        mapped = {m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m}
        self.assertTrue(mapped)
        self.assertEqual({s["SnapshotId"] for s in snapshots}, mapped)
        self.assertEqual([tags(s) for s in snapshots], [{"kiln:build-id": build}] * len(snapshots))

    def test_create_image_refuses_other_resource_types(self):
        ec2 = self.client("ec2")
        name = f"refused-{uuid.uuid4()}"
        with self.assertRaises(ClientError) as refused:
            ec2.create_image(
                InstanceId=self.launch()["InstanceId"], Name=name,
                TagSpecifications=[
                    {"ResourceType": "snapshot", "Tags": [{"Key": "k", "Value": "v"}]},
                    {"ResourceType": "instance", "Tags": [{"Key": "k", "Value": "v"}]},
                ],
            )
        self.assertEqual(refused.exception.response["Error"]["Code"], "InvalidParameterValue")
        self.assertEqual(ec2.describe_images(Filters=[{"Name": "name", "Values": [name]}])["Images"], [])

    def test_imds_support_v2_is_recorded_on_the_image_only(self):
        ec2 = self.client("ec2")
        image_id, other_id = self.new_image(), self.new_image()
        ec2.modify_image_attribute(ImageId=image_id, ImdsSupport={"Value": "v2.0"})
        # Again: accepted (AWS's documentation says nothing against it).
        ec2.modify_image_attribute(ImageId=image_id, ImdsSupport={"Value": "v2.0"})
        images = {i["ImageId"]: i for i in ec2.describe_images(ImageIds=[image_id, other_id])["Images"]}
        self.assertEqual(images[image_id]["ImdsSupport"], "v2.0")
        self.assertNotIn("ImdsSupport", images[other_id])
        attribute = ec2.describe_image_attribute(ImageId=image_id, Attribute="imdsSupport")
        self.assertEqual(attribute["ImdsSupport"], {"Value": "v2.0"})
        other = ec2.describe_image_attribute(ImageId=other_id, Attribute="imdsSupport")
        self.assertNotIn("Value", other.get("ImdsSupport", {}))

    def test_imds_support_other_than_v2_is_refused(self):
        ec2 = self.client("ec2")
        image_id = self.new_image()
        for value in ("v1.0", "v2"):
            with self.subTest(value), self.assertRaises(ClientError) as refused:
                ec2.modify_image_attribute(ImageId=image_id, ImdsSupport={"Value": value})
            self.assertEqual(refused.exception.response["Error"]["Code"], "InvalidParameterValue")
        self.assertNotIn("ImdsSupport", ec2.describe_images(ImageIds=[image_id])["Images"][0])

    def test_instances_of_an_imds_v2_image_require_tokens_unless_told(self):
        ec2 = self.client("ec2")
        image_id = self.new_image()
        ec2.modify_image_attribute(ImageId=image_id, ImdsSupport={"Value": "v2.0"})
        options = self.metadata_options(self.launch(ImageId=image_id)["InstanceId"])
        self.assertEqual((options["HttpTokens"], options["HttpPutResponseHopLimit"]), ("required", 2))
        told = self.launch(
            ImageId=image_id, MetadataOptions={"HttpTokens": "optional", "HttpPutResponseHopLimit": 1}
        )
        options = self.metadata_options(told["InstanceId"])
        self.assertEqual((options["HttpTokens"], options["HttpPutResponseHopLimit"]), ("optional", 1))
        # The seeded image has none: moto's defaults, as before.
        options = self.metadata_options(self.launch()["InstanceId"])
        self.assertEqual((options["HttpTokens"], options["HttpPutResponseHopLimit"]), ("optional", 1))

    def test_copy_image_keeps_imds_support(self):
        ec2 = self.client("ec2")
        image_id = self.new_image()
        # The other way to name it: Attribute and Value.
        ec2.modify_image_attribute(ImageId=image_id, Attribute="imdsSupport", Value="v2.0")
        copy_id = ec2.copy_image(SourceImageId=image_id, SourceRegion=self.info["region"], Name="copy")["ImageId"]
        self.assertEqual(ec2.describe_images(ImageIds=[copy_id])["Images"][0]["ImdsSupport"], "v2.0")


if __name__ == "__main__":
    unittest.main()
