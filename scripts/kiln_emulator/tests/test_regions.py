"""DescribeRegions (regions.py) against the shared emulator (emulator.py):
the regions of the request's partition, enabled ones unless AllRegions."""

from .emulator import EmulatorTestCase


class DescribeRegionsTest(EmulatorTestCase):
    def regions(self, region="us-east-1", **kwargs):
        ec2 = self.session.client("ec2", endpoint_url=self.info["endpoint"], region_name=region)
        return {r["RegionName"]: r["OptInStatus"] for r in ec2.describe_regions(**kwargs)["Regions"]}

    def test_only_the_partition_of_the_request_is_answered(self):
        regions = self.regions(AllRegions=True)
        self.assertIn("eu-west-1", regions)
        self.assertIn("ap-east-1", regions)
        for other in ("cn-north-1", "cn-northwest-1", "us-gov-west-1", "us-gov-east-1"):
            self.assertNotIn(other, regions)
        china = self.regions("cn-north-1", AllRegions=True)
        self.assertEqual(sorted(china), ["cn-north-1", "cn-northwest-1"])

    def test_regions_not_enabled_come_only_with_all_regions_or_by_name(self):
        enabled = self.regions()
        everything = self.regions(AllRegions=True)
        self.assertEqual(everything["ap-east-1"], "not-opted-in")
        self.assertNotIn("ap-east-1", enabled)
        self.assertEqual(set(enabled), {n for n, s in everything.items() if s != "not-opted-in"})
        self.assertIn("us-east-1", enabled)
        self.assertEqual(self.regions(RegionNames=["ap-east-1"]), {"ap-east-1": "not-opted-in"})
