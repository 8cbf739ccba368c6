"""DescribeInstances pages: moto counts DescribeInstances' MaxResults in
reservations; AWS counts instances (a page of MaxResults 1000 holds at most
1000 instances, whatever the reservations). The patch pages by instances,
never splitting a reservation, so the audit's call count is checked as on
AWS.

AWS documentation:
  * Amazon EC2 API Reference, DescribeInstances (MaxResults, NextToken):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html
  * Amazon EC2 Developer Guide, Pagination in the Amazon EC2 API:
    https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-pagination.html
"""

from moto.core.responses import ActionResult
from moto.ec2.responses.instances import InstanceResponse


def apply():
    """Page DescribeInstances by instances."""
    describe = InstanceResponse.describe_instances

    def describe_by_instances(self):
        if "MaxResults" not in self.data or "InstanceId.1" in self.data:
            return describe(self)
        self.error_on_dryrun()
        reservations = self.ec2_backend.describe_instances(
            filters=self._filters_from_querystring()
        )
        ids = [reservation.id for reservation in reservations]
        token = self._get_param("NextToken")
        start = ids.index(token) + 1 if token in ids else 0
        limit = int(self._get_param("MaxResults"))
        page, count = [], 0
        for reservation in reservations[start:]:
            if page and count + len(reservation.instances) > limit:
                break
            page.append(reservation)
            count += len(reservation.instances)
        more = start + len(page) < len(reservations)
        return ActionResult({"Reservations": page, "NextToken": page[-1].id if more else None})

    InstanceResponse.describe_instances = describe_by_instances
