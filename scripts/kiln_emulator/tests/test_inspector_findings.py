"""Inspector's ListFindings (patches/inspector_findings.py): queued results
read as successive snapshots, AWS's filter criteria applied, pages and
their tokens, and AWS's refusals; against the shared emulator, each test
in an account of its own."""

import json
import urllib.request
import uuid

from botocore.exceptions import ClientError

from .emulator import EmulatorTestCase

IMAGE = "ami-0123456789abcdef0"


def finding(instance, cve, status="ACTIVE", image=IMAGE, account="123456789012"):
    """A finding in the shape ListFindings answers (timestamps in epoch seconds)."""
    return {
        "findingArn": f"arn:aws:inspector2:us-east-1:{account}:finding/{uuid.uuid4().hex}",
        "awsAccountId": account, "type": "PACKAGE_VULNERABILITY", "description": "d", "severity": "HIGH",
        "status": status, "firstObservedAt": 1_800_000_000, "lastObservedAt": 1_800_000_000,
        "updatedAt": 1_800_000_000, "title": f"{cve} - openssh-server",
        "packageVulnerabilityDetails": {"vulnerabilityId": cve, "source": "UBUNTU_CVE",
                                        "vulnerablePackages": [{"name": "openssh-server", "version": "9.6p1"}]},
        "resources": [{"type": "AWS_EC2_INSTANCE", "id": instance, "region": "us-east-1",
                       "details": {"awsEc2Instance": {"imageId": image}}}],
    }


def equals(*values):
    return [{"comparison": "EQUALS", "value": v} for v in values]


class ListFindingsTest(EmulatorTestCase):
    def setUp(self):
        self.account = str(uuid.uuid4().int)[:12]
        self.inspector = self.client("inspector2", account=self.account)

    def queue(self, *snapshots):
        request = urllib.request.Request(
            f"{self.info['endpoint']}/moto-api/static/inspector2/findings-results", method="POST",
            data=json.dumps({"results": list(snapshots), "account_id": self.account,
                             "region": self.info["region"]}).encode())
        with urllib.request.urlopen(request) as answer:
            self.assertEqual(answer.status, 201)

    def ids(self, **request):
        return [f["resources"][0]["id"] for f in self.inspector.list_findings(**request)["findings"]]

    def test_each_listing_takes_the_next_snapshot_and_the_last_one_stays(self):
        self.assertEqual(self.ids(), [], "nothing queued: no findings")
        self.queue([finding("i-1", "CVE-1"), finding("i-2", "CVE-1")], [finding("i-2", "CVE-1")],
                   [finding("i-2", "CVE-1", status="CLOSED")])
        same = {"filterCriteria": {"vulnerabilityId": equals("CVE-1"), "findingStatus": equals("ACTIVE")}}
        self.assertEqual(self.ids(**same), ["i-1", "i-2"])
        self.assertEqual(self.ids(**same), ["i-2"], "the same request reads the next snapshot")
        self.assertEqual(self.ids(**same), [])
        self.assertEqual(self.ids(**same), [], "the last snapshot stays")
        self.assertEqual(self.ids(), ["i-2"])

    def test_every_criterion_must_match_and_one_of_its_filters(self):
        self.queue([finding("i-1", "CVE-1"), finding("i-2", "CVE-2"), finding("i-3", "CVE-3", status="CLOSED"),
                    finding("i-4", "CVE-1", image="ami-0ffffffffffffffff"), finding("i-5", "CVE-1", status="SUPPRESSED")])
        criteria = {"vulnerabilityId": equals("CVE-1", "CVE-3"), "findingStatus": equals("ACTIVE", "CLOSED"),
                    "resourceType": equals("AWS_EC2_INSTANCE")}
        self.assertEqual(self.ids(filterCriteria=criteria), ["i-1", "i-3", "i-4"])
        criteria["ec2InstanceImageId"] = [{"comparison": "NOT_EQUALS", "value": "ami-0ffffffffffffffff"}]
        self.assertEqual(self.ids(filterCriteria=criteria), ["i-1", "i-3"])
        prefixed = {"vulnerabilityId": [{"comparison": "PREFIX", "value": "CVE-"}],
                    "findingStatus": [{"comparison": "NOT_EQUALS", "value": "ACTIVE"}]}
        self.assertEqual(self.ids(filterCriteria=prefixed), ["i-3", "i-5"])

    def test_pages_follow_their_token_in_their_own_snapshot(self):
        self.queue([finding(f"i-{n}", "CVE-1") for n in range(5)], [])
        first = self.inspector.list_findings(maxResults=2)
        self.assertEqual([f["resources"][0]["id"] for f in first["findings"]], ["i-0", "i-1"])
        rest = self.inspector.list_findings(maxResults=2, nextToken=first["nextToken"])
        self.assertEqual([f["resources"][0]["id"] for f in rest["findings"]], ["i-2", "i-3"])
        last = self.inspector.list_findings(maxResults=2, nextToken=rest["nextToken"])
        self.assertEqual([f["resources"][0]["id"] for f in last["findings"]], ["i-4"])
        self.assertNotIn("nextToken", last)
        paged = self.inspector.get_paginator("list_findings").paginate(PaginationConfig={"PageSize": 2})
        self.assertEqual(sum(len(p["findings"]) for p in paged), 0, "the next listing read the empty snapshot")

    def test_bad_requests_are_refused_as_aws_refuses_them_and_the_rest_is_not_emulated(self):
        self.queue([finding("i-1", "CVE-1")])
        for request in ({"maxResults": 101}, {"nextToken": "7:1"}, {"nextToken": "not a token"},
                        {"filterCriteria": {"vulnerabilityId": equals(*(f"CVE-{n}" for n in range(11)))}}):
            with self.assertRaises(ClientError) as refused:
                self.inspector.list_findings(**request)
            self.assertEqual(refused.exception.response["Error"]["Code"], "ValidationException", request)
        for request in ({"filterCriteria": {"vendorSeverity": equals("HIGH")}},
                        {"sortCriteria": {"field": "SEVERITY", "sortOrder": "DESC"}}):
            with self.assertRaises(ClientError) as refused:
                self.inspector.list_findings(**request)
            self.assertEqual(refused.exception.response["ResponseMetadata"]["HTTPStatusCode"], 501, request)
