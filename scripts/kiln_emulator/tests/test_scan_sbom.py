"""Inspector's ScanSbom (patches/scan_sbom.py): versions compared as dpkg
compares them, the report in AWS's CycloneDX 1.5 shape from registered
advisories, and AWS's refusals; against the shared emulator (emulator.py)."""

import json
import unittest
import urllib.request
import uuid

from botocore.exceptions import ClientError

from ..patches.scan_sbom import compare
from .emulator import EmulatorTestCase


class CompareTest(unittest.TestCase):
    def test_versions_order_as_dpkg_orders_them(self):
        # Debian Policy 5.6.12: epochs first, '~' before anything, letters
        # before other characters, numbers by value, the revision last.
        ordered = ["1.0~rc1", "1.0", "1.0-1", "1.0-1ubuntu1", "1.0-1ubuntu1.1", "1.0a", "1.0+b1", "1.01.1",
                   "1.2", "1.10", "1:0.1"]
        for lower, higher in zip(ordered, ordered[1:]):
            self.assertEqual(compare(lower, higher), -1, (lower, higher))
            self.assertEqual(compare(higher, lower), 1, (higher, lower))
        self.assertEqual(compare("2.39-0ubuntu8.3", "2.39-0ubuntu8.3"), 0)
        self.assertEqual(compare("0:1.0", "1.0"), 0)


def component(name, version, epoch=None):
    qualifiers = "arch=amd64&distro=noble" + (f"&epoch={epoch}" if epoch else "")
    purl = f"pkg:deb/ubuntu/{name}@{version}?{qualifiers}"
    return {"bom-ref": purl, "type": "application", "name": name, "version": version, "purl": purl}


def sbom(*components):
    return {"bomFormat": "CycloneDX", "specVersion": "1.5",
            "components": [{"bom-ref": "os", "type": "operating-system", "name": "ubuntu", "version": "24.04"},
                           *components]}


class ScanSbomTest(EmulatorTestCase):
    def setUp(self):
        self.scan = self.client("inspector-scan")
        self.package = f"pkg-{uuid.uuid4().hex[:8]}"

    def advise(self, **advisory):
        request = urllib.request.Request(
            f"{self.info['endpoint']}/moto-api/kiln/advisories", method="POST",
            data=json.dumps({"package": self.package, "severity": "high", **advisory}).encode())
        with urllib.request.urlopen(request) as answer:
            return answer.status

    def test_a_version_below_the_fix_is_reported_in_cyclonedx_with_inspectors_properties(self):
        self.assertEqual(self.advise(id="CVE-2099-0001", fixed="1:2.0-1", severity="critical", cvss=9.8,
                                     exploit_available=True), 204)
        self.advise(id="CVE-2099-0002", fixed="1.5-1")  # fixed in an older version
        report = self.scan.scan_sbom(sbom=sbom(component(self.package, "1.9-1", epoch=1)),
                                     outputFormat="CYCLONE_DX_1_5")["sbom"]
        self.assertEqual((report["bomFormat"], report["specVersion"]), ("CycloneDX", "1.5"))
        ours = [c for c in report["components"] if c["name"] == self.package]
        self.assertEqual(len(ours), 1)
        ref = ours[0]["bom-ref"]
        self.assertRegex(ref, r"^comp-\d+$")
        found = [v for v in report["vulnerabilities"] if v["affects"] == [{"ref": ref}]]
        self.assertEqual([v["id"] for v in found], ["CVE-2099-0001"])
        self.assertEqual(found[0]["ratings"][0]["severity"], "critical")
        properties = {p["name"]: p["value"] for p in found[0]["properties"]}
        self.assertEqual(properties["amazon:inspector:sbom_scanner:exploit_available"], "true")
        self.assertEqual(properties[f"amazon:inspector:sbom_scanner:fixed_version:{ref}"], "1:2.0-1")

    def test_no_fix_affects_every_version_and_introduced_bounds_it_from_below(self):
        self.advise(id="CVE-2099-0003", fixed=None, severity="medium")
        self.advise(id="CVE-2099-0004", fixed="3.0", introduced="2.0")
        report = self.scan.scan_sbom(sbom=sbom(component(self.package, "1.0")))["sbom"]
        self.assertEqual(sorted(v["id"] for v in report["vulnerabilities"]), ["CVE-2099-0003"])

    def test_more_than_5000_components_or_another_format_is_a_validation_exception(self):
        too_many = sbom(*(component(f"p{i}", "1.0") for i in range(5000)))
        for document in (too_many, {**sbom(), "specVersion": "1.4"}):
            with self.assertRaises(ClientError) as refused:
                self.scan.scan_sbom(sbom=document)
            self.assertEqual(refused.exception.response["Error"]["Code"], "ValidationException")
