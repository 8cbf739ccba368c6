"""Inspector ListFindings: moto answers from a queue of results filled
through `POST /moto-api/static/inspector2/findings-results` (one list of
findings per result): each distinct request (its filter, page size, token
and sort) takes the next queued result and keeps it, whatever the filter
says, with no page token ever. So the same request made twice always
answers the same, and a filter that should leave a finding out does not.

On AWS, ListFindings answers the findings Inspector holds at that moment
that match every criterion of `filterCriteria`; a criterion's list holds 1
to 10 filters; `maxResults` is 1 to 100; a response with more findings to
come carries `nextToken`, and a request's invalid parameters (a token it
did not hand out among them) are a ValidationException.

The patch keeps moto's queue and reads each queued result as a snapshot of
the findings Inspector holds, in order: a listing's first page (a request
without `nextToken`) takes the next snapshot when one is queued, else keeps
the last one taken (none: no findings), and its later pages read the same
snapshot. It applies the string criteria kiln's tests need (awsAccountId,
vulnerabilityId, findingStatus, resourceType, ec2InstanceImageId,
severity, findingType; EQUALS, PREFIX and NOT_EQUALS, a finding matching a
criterion when it matches one of its EQUALS or PREFIX filters, if any, and
none of its NOT_EQUALS ones); any other criterion or `sortCriteria` is
refused as not emulated (501), so no test passes on a filter the emulator
ignores. Pages hold `maxResults` findings (100 when omitted, the
documentation naming no default).

AWS documentation:
  * Amazon Inspector API Reference, ListFindings (maxResults 1 to 100,
    nextToken, ValidationException):
    https://docs.aws.amazon.com/inspector/v2/APIReference/API_ListFindings.html
  * Amazon Inspector API Reference, FilterCriteria (each criterion 1 to 10
    filters) and StringFilter (EQUALS, PREFIX, NOT_EQUALS):
    https://docs.aws.amazon.com/inspector/v2/APIReference/API_FilterCriteria.html
    https://docs.aws.amazon.com/inspector/v2/APIReference/API_StringFilter.html
  * Amazon Inspector User Guide, "Understanding findings" (ACTIVE,
    SUPPRESSED and CLOSED findings; a terminated instance's findings are
    closed, then deleted after 3 days):
    https://docs.aws.amazon.com/inspector/latest/user/findings-understanding.html
"""

import json

from moto.core.exceptions import JsonRESTError
from moto.inspector2.responses import Inspector2Response

MAX_RESULTS = 100
MAX_FILTERS = 10
COMPARISONS = ("EQUALS", "PREFIX", "NOT_EQUALS")


def _instance_image(finding):
    return [((r.get("details") or {}).get("awsEc2Instance") or {}).get("imageId") for r in finding.get("resources", [])]


# Each emulated criterion: the finding's values it compares.
FIELDS = {
    "awsAccountId": lambda f: [f.get("awsAccountId")],
    "vulnerabilityId": lambda f: [(f.get("packageVulnerabilityDetails") or {}).get("vulnerabilityId")],
    "findingStatus": lambda f: [f.get("status")],
    "resourceType": lambda f: [r.get("type") for r in f.get("resources", [])],
    "ec2InstanceImageId": _instance_image,
    "severity": lambda f: [f.get("severity")],
    "findingType": lambda f: [f.get("type")],
}


class ValidationException(JsonRESTError):
    def __init__(self, message):
        super().__init__("ValidationException", message)


class NotEmulated(JsonRESTError):
    code = 501

    def __init__(self, message):
        super().__init__("NotImplemented", message)


def _one_matches(value, flt):
    wanted = flt["value"]
    if flt["comparison"] == "PREFIX":
        return value is not None and value.startswith(wanted)
    return value == wanted


def matches(finding, criteria):
    """Whether `finding` matches every criterion of `criteria`."""
    for name, filters in criteria.items():
        values = FIELDS[name](finding)
        positive = [f for f in filters if f["comparison"] != "NOT_EQUALS"]
        if positive and not any(_one_matches(v, f) for v in values for f in positive):
            return False
        negative = [f for f in filters if f["comparison"] == "NOT_EQUALS"]
        if any(_one_matches(v, f) for v in values for f in negative):
            return False
    return True


def check(criteria, max_results, sort_criteria):
    """AWS's refusals of the request, and the patch's own."""
    if sort_criteria:
        raise NotEmulated("sortCriteria is not emulated")
    if max_results is not None and not 1 <= int(max_results) <= MAX_RESULTS:
        raise ValidationException(f"maxResults must be 1 to {MAX_RESULTS}")
    for name, filters in (criteria or {}).items():
        if name not in FIELDS:
            raise NotEmulated(f"the {name} criterion is not emulated")
        if not 1 <= len(filters) <= MAX_FILTERS:
            raise ValidationException(f"filterCriteria.{name} must hold 1 to {MAX_FILTERS} filters")
        for flt in filters:
            if flt.get("comparison") not in COMPARISONS or not isinstance(flt.get("value"), str):
                raise ValidationException(f"filterCriteria.{name}: each filter has a comparison and a value")


def list_findings(self):
    criteria = self._get_param("filterCriteria") or {}
    max_results = self._get_param("maxResults")
    token = self._get_param("nextToken")
    check(criteria, max_results, self._get_param("sortCriteria"))
    backend = self.inspector2_backend
    if not hasattr(backend, "kiln_snapshots"):
        backend.kiln_snapshots = []
    snapshots = backend.kiln_snapshots
    if token is None:
        if backend.findings_queue:
            snapshots.append(backend.findings_queue.pop(0))
        snapshot, start = len(snapshots) - 1, 0
    else:
        try:
            snapshot, start = (int(part) for part in token.split(":"))
            if not 0 <= snapshot < len(snapshots) or not 0 < start < len(snapshots[snapshot]):
                raise ValueError(token)
        except ValueError:
            raise ValidationException("nextToken is invalid") from None
    findings = snapshots[snapshot] if snapshot >= 0 else []
    page = int(max_results or MAX_RESULTS)
    matching = [(i, f) for i, f in enumerate(findings) if i >= start and matches(f, criteria)]
    answer = {"findings": [f for _, f in matching[:page]]}
    if len(matching) > page:
        answer["nextToken"] = f"{snapshot}:{matching[page][0]}"
    return json.dumps(answer)


def apply():
    Inspector2Response.list_findings = list_findings
