"""Pages (instance_pages.py): DescribeInstances by instances, reservations
split across pages, short and empty pages, its MaxResults rules, and tokens
the emulator did not hand out; against the shared emulator (emulator.py),
each test in an account of its own so the region holds its instances only."""

import unittest
import uuid

from botocore.exceptions import ClientError

from .emulator import ARM, CURRENT, EmulatorTestCase


def fresh_account():
    return str(uuid.uuid4().int)[:12]


class DescribeInstancesPagesTest(EmulatorTestCase):
    def setUp(self):
        self.ec2 = self.client("ec2", account=fresh_account())
        # Reservations of 5 (ARM), 3 (CURRENT) and 2 (ARM) instances, in that order.
        self.reservations = [
            self.ec2.run_instances(ImageId=self.image(name), MinCount=count, MaxCount=count)["ReservationId"]
            for name, count in ((ARM, 5), (CURRENT, 3), (ARM, 2))
        ]

    def pages(self, **kwargs):
        pages = self.ec2.get_paginator("describe_instances").paginate(**kwargs)
        return [[(r["ReservationId"], len(r["Instances"])) for r in page["Reservations"]] for page in pages]

    def test_a_reservation_that_does_not_fit_is_split_across_pages(self):
        first, second, third = self.reservations
        pages = self.pages(PaginationConfig={"PageSize": 6})
        self.assertEqual(pages, [[(first, 5), (second, 1)], [(second, 2), (third, 2)]])

    def test_filters_apply_to_each_page_so_pages_come_back_short_or_empty(self):
        image = [{"Name": "image-id", "Values": [self.image(CURRENT)]}]
        pages = self.pages(Filters=image, PaginationConfig={"PageSize": 5})
        self.assertEqual(pages, [[], [(self.reservations[1], 3)]])
        first = self.ec2.describe_instances(Filters=image, MaxResults=5)
        self.assertEqual((first["Reservations"], bool(first.get("NextToken"))), ([], True))

    def test_max_results_outside_5_to_1000_is_refused(self):
        for value in (4, 1001):
            with self.subTest(value), self.assertRaises(ClientError) as refused:
                self.ec2.describe_instances(MaxResults=value)
            self.assertEqual(refused.exception.response["Error"]["Code"], "InvalidParameterValue")
            self.assertIn(f"Value ( {value} ) for parameter maxResults is invalid", str(refused.exception))
        self.assertEqual(len(self.ec2.describe_instances(MaxResults=5)["Reservations"]), 1)

    def test_max_results_with_instance_ids_is_refused(self):
        instance = self.ec2.describe_instances()["Reservations"][0]["Instances"][0]["InstanceId"]
        with self.assertRaises(ClientError) as refused:
            self.ec2.describe_instances(InstanceIds=[instance], MaxResults=5)
        self.assertEqual(refused.exception.response["Error"]["Code"], "InvalidParameterCombination")

    def test_a_token_not_handed_out_is_an_error_not_the_first_page(self):
        handed_out = self.ec2.describe_instances(MaxResults=5)["NextToken"]
        for token in ("bogus", handed_out[:-2], self.reservations[0]):
            with self.subTest(token), self.assertRaises(ClientError) as refused:
                self.ec2.describe_instances(MaxResults=5, NextToken=token)
            self.assertEqual(refused.exception.response["Error"]["Code"], "InvalidPaginationToken")
        second = self.ec2.describe_instances(MaxResults=5, NextToken=handed_out)["Reservations"]
        self.assertEqual([r["ReservationId"] for r in second], self.reservations[1:])
        with self.assertRaises(ClientError) as refused:
            self.ec2.describe_instances(NextToken="bogus")
        self.assertEqual(refused.exception.response["Error"]["Code"], "InvalidPaginationToken")

    def test_images_and_snapshots_refuse_a_token_they_never_handed_out(self):
        self.assertTrue(self.ec2.describe_images(ImageIds=[self.image(ARM)])["Images"])
        for describe in (self.ec2.describe_images, self.ec2.describe_snapshots):
            with self.subTest(describe.__name__), self.assertRaises(ClientError) as refused:
                describe(NextToken="bogus")
            self.assertEqual(refused.exception.response["Error"]["Code"], "InvalidPaginationToken")


if __name__ == "__main__":
    unittest.main()
