"""AssumeRole of a role that does not exist: moto lets any role ARN be
assumed, even one that does not exist; AWS answers AccessDenied. The patch
refuses a role its account does not have, so an audit's "role that cannot be
assumed" is real.

AWS documentation:
  * AWS Security Token Service API Reference, AssumeRole:
    https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html
"""

import warnings

from moto.iam.models import iam_backends
from moto.sts.exceptions import STSClientError
from moto.sts.models import STSBackend


def apply():
    """Refuse to assume a role that does not exist."""
    assume_role = STSBackend.assume_role

    def assume_existing_role(self, region_name, role_session_name, role_arn, *args, **kwargs):
        parts = role_arn.split(":")
        account, resource = (parts[4], parts[5]) if len(parts) == 6 else ("", "")
        name = resource.removeprefix("role/").rsplit("/", 1)[-1]
        roles = iam_backends[account]["global"].roles.values() if account.isdigit() else []
        if not resource.startswith("role/") or all(r.name != name for r in roles):
            raise STSClientError(
                "AccessDenied", f"Not authorized to perform sts:AssumeRole on resource: {role_arn}"
            )
        return assume_role(self, region_name, role_session_name, role_arn, *args, **kwargs)

    STSBackend.assume_role = assume_existing_role
    # STS models no AccessDenied shape; moto still answers it as AWS does.
    warnings.filterwarnings("ignore", message=".*AccessDenied does not match an error shape")
