"""DescribeInstances pages: moto counts DescribeInstances' MaxResults in
reservations, never splits one, accepts any MaxResults, and answers a
NextToken it never gave with a 500. AWS counts MaxResults in
instances, accepts 5 to 1000 and refuses MaxResults with InstanceIds; its
documentation gives MaxResults as a maximum and NextToken as the sign that
more follow, and says nothing of how reservations fall across pages, nor
that a page before the last is full: the patch takes the strictest reading.

It pages by instances, deterministically: a page is the next
MaxResults instances of the region (reservation by reservation, as launched),
and the request's filters are applied to that page, so a page may come back
short, or empty, with a NextToken; a reservation that does not fit is split,
appearing on both pages with the instances each holds. A caller that assumes
whole reservations per page, or full pages, is caught. MaxResults outside
5..1000 is InvalidParameterValue (AWS's message for too small a value, and
the same wording for too large a one); MaxResults with InstanceIds is
InvalidParameterCombination (moto's own check); a NextToken the
emulator did not hand out is InvalidPaginationToken (the EC2 common error for
"The specified pagination token is not valid or is expired."). Without
MaxResults moto still pages by 100 reservations, with a reservation id as its
token; any other token is refused the same way.

moto never pages DescribeImages or DescribeSnapshots (every item comes back
at once, MaxResults is ignored), so it never hands out their tokens: the
patch refuses any NextToken there too, rather than answer the first page.

AWS documentation:
  * Amazon EC2 API Reference, DescribeInstances (MaxResults: "You cannot
    specify this parameter and the instance IDs parameter in the same
    request"; NextToken):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html
  * Amazon EC2 Developer Guide, Pagination in the Amazon EC2 API:
    https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-pagination.html
  * Amazon EC2 API Reference, Error codes for the Amazon EC2 API
    (InvalidPaginationToken, InvalidParameterCombination,
    InvalidParameterValue):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
  * Amazon EC2 API Reference, DescribeImages and DescribeSnapshots
    (NextToken):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeImages.html
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeSnapshots.html
"""

import base64
import binascii

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError, InvalidParameterValue
from moto.ec2.responses.amis import AmisResponse
from moto.ec2.responses.elastic_block_store import ElasticBlockStore
from moto.ec2.responses.instances import InstanceResponse
from moto.ec2.utils import filter_reservations

MIN_RESULTS, MAX_RESULTS = 5, 1000


class InvalidPaginationToken(EC2ClientError):
    def __init__(self):
        super().__init__("InvalidPaginationToken", "The specified pagination token is not valid or is expired.")


def token_for(instance_id):
    return base64.urlsafe_b64encode(instance_id.encode()).decode()


def instance_after(token):
    """The instance id a token of ours names, or None."""
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def page_limit(value):
    try:
        limit = int(value)
    except ValueError:
        raise InvalidParameterValue(f"Value ( {value} ) for parameter maxResults is invalid.")
    if limit < MIN_RESULTS:
        raise InvalidParameterValue(
            f"Value ( {limit} ) for parameter maxResults is invalid. Expecting a value greater than {MIN_RESULTS}."
        )
    if limit > MAX_RESULTS:
        raise InvalidParameterValue(
            f"Value ( {limit} ) for parameter maxResults is invalid. Expecting a value less than {MAX_RESULTS}."
        )
    return limit


def page_of(self, limit, token):
    """The reservations of the next `limit` instances after `token`, filtered."""
    scanned = [(r, i) for r in self.ec2_backend.all_reservations() for i in r.instances]
    ids = [instance.id for _, instance in scanned]
    start = 0
    if token:
        after = instance_after(token)
        if after not in ids:
            raise InvalidPaginationToken()
        start = ids.index(after) + 1
    window = scanned[start : start + limit]
    pieces = []
    for reservation, instance in window:
        if not pieces or pieces[-1][0] is not reservation:
            pieces.append((reservation, []))
        pieces[-1][1].append(instance)
    for reservation, instances in pieces:  # copies: all_reservations copies each
        reservation.instances = instances
    page = filter_reservations([r for r, _ in pieces], self._filters_from_querystring())
    more = start + len(window) < len(scanned)
    return page, token_for(window[-1][1].id) if more else None


def apply():
    """Page DescribeInstances by instances; refuse tokens not handed out."""
    describe = InstanceResponse.describe_instances

    def describe_by_instances(self):
        token = self._get_param("NextToken")
        if "InstanceId.1" in self.data:
            return describe(self)
        if "MaxResults" not in self.data:
            reservations = self.ec2_backend.describe_instances(filters=self._filters_from_querystring())
            if token and token not in [r.id for r in reservations]:
                raise InvalidPaginationToken()
            return describe(self)
        limit = page_limit(self._get_param("MaxResults"))
        self.error_on_dryrun()
        page, next_token = page_of(self, limit, token)
        return ActionResult({"Reservations": page, "NextToken": next_token})

    InstanceResponse.describe_instances = describe_by_instances

    def refusing_tokens(describe_all):
        def describe_without_pages(self):
            if self._get_param("NextToken"):
                raise InvalidPaginationToken()
            return describe_all(self)

        return describe_without_pages

    AmisResponse.describe_images = refusing_tokens(AmisResponse.describe_images)
    ElasticBlockStore.describe_snapshots = refusing_tokens(ElasticBlockStore.describe_snapshots)
