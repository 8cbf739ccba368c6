"""DescribeRegions: moto answers every region it knows, of every partition
(aws, aws-cn, aws-us-gov), and ignores AllRegions, so regions not enabled
for the account (opt-in regions, `not-opted-in`) come back either way.

AWS answers the regions of one partition, the one the request is sent in:
an account, its credentials and its endpoints belong to one partition, and
nothing crosses partitions (CopyImage refuses cross-partition copies). Of
those, it answers the regions enabled for the account, or all of them with
AllRegions; regions named in RegionNames are answered whether enabled or
not. The patch answers so, with the partition of the request's region.

AWS documentation:
  * Amazon EC2 API Reference, DescribeRegions ("Describes the Regions that
    are enabled for your account, or all Regions"; AllRegions: "including
    Regions that are disabled for your account"; RegionNames: "any Regions,
    whether they are enabled and disabled"):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeRegions.html
  * AWS General Reference, AWS partitions and Regions (a partition is a
    group of Regions; each account is scoped to one partition):
    https://docs.aws.amazon.com/whitepapers/latest/aws-fault-isolation-boundaries/partitions.html
  * Amazon EC2 API Reference, CopyImage ("does not support ... Cross-partition
    copies"):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CopyImage.html
"""

from moto.core.responses import ActionResult
from moto.ec2.responses.availability_zones_and_regions import AvailabilityZonesAndRegions
from moto.utilities.utils import get_partition

NOT_ENABLED = "not-opted-in"


def apply():
    """Answer DescribeRegions for the request's partition, honouring AllRegions."""

    def describe_regions(self):
        self.error_on_dryrun()
        names = self._get_param("RegionNames", [])
        everything = self._get_bool_param("AllRegions", False)
        partition = get_partition(self.region)
        regions = [
            region
            for region in self.ec2_backend.describe_regions(names)
            if get_partition(region.name) == partition
            and (names or everything or region.opt_in_status != NOT_ENABLED)
        ]
        return ActionResult({"Regions": regions})

    AvailabilityZonesAndRegions.describe_regions = describe_regions
