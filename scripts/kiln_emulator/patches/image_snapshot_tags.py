"""CreateImage tags for snapshots: moto's CreateImage raises
NotImplementedError (a 500) for a TagSpecification of ResourceType
`snapshot`. AWS tags the AMI with the `image` specifications and every
snapshot CreateImage makes (of the root volume and of the other EBS volumes)
with the `snapshot` ones, the same tags on all of them; any other
ResourceType fails the request. The patch does that: the image keeps its
tags as before, every snapshot of the new image's block device mappings gets
the `snapshot` tags (so DescribeSnapshots shows them and `tag:KEY` filters
find them), and another ResourceType is refused (InvalidParameterValue)
before anything is made.

AWS documentation:
  * Amazon EC2 API Reference, CreateImage (TagSpecification.N: "You can tag
    the AMI, the snapshots, or both. ... If you specify other values for
    ResourceType, the request fails."):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateImage.html
"""

from moto.ec2.exceptions import InvalidTaggableResourceType
from moto.ec2.models.amis import AmiBackend


def apply():
    """Tag CreateImage's snapshots as AWS does."""
    create_image = AmiBackend.create_image

    def with_snapshot_tags(self, instance_id, name, description, tag_specifications):
        for specification in tag_specifications:
            if specification["ResourceType"] not in ("image", "snapshot"):
                raise InvalidTaggableResourceType(specification["ResourceType"])
        image_specifications = [s for s in tag_specifications if s["ResourceType"] == "image"]
        snapshot_tags = {
            tag["Key"]: tag["Value"]
            for specification in tag_specifications
            if specification["ResourceType"] == "snapshot"
            for tag in specification.get("Tags", [])
        }
        ami = create_image(self, instance_id, name, description, tag_specifications=image_specifications)
        for mapping in ami.block_device_mappings:
            snapshot_id = mapping.get("Ebs", {}).get("SnapshotId")
            if snapshot_id and snapshot_tags:
                self.get_snapshot(snapshot_id).add_tags(snapshot_tags)
        return ami

    AmiBackend.create_image = with_snapshot_tags
