"""AssumeRole honours the role and its trust policy: moto lets any role ARN
be assumed, even one that does not exist, whatever its trust policy says. On
AWS the role must exist and its trust policy must allow the caller; otherwise
AccessDenied ("User: CALLER is not authorized to perform: sts:AssumeRole on
resource: ROLE", AWS's message).

The patch reads the role's trust policy (the role's account's IAM) and
evaluates it for the caller: the access key's account (moto attributes a key
it does not know to 123456789012) and, for a key moto issued, the IAM user or
the assumed role behind it. A statement applies when its Action matches
sts:AssumeRole (wildcards allowed) and its Principal names the caller: "*"
or {"AWS": "*"}; the caller's account, as its 12-digit id or
`arn:aws:iam::ACCOUNT:root`; the caller's own IAM user ARN; or the ARN of
the role (or role session) whose credentials the caller holds. Service and
federated principals never match a caller's own call. A Deny that applies
wins over any Allow; without an Allow that applies the call is denied.
Conditions: `StringEquals` on `sts:ExternalId` is compared with the request's
ExternalId; any other condition is not evaluated, so a statement with one
never allows (and, being a Deny, always denies); statements with
NotPrincipal or NotAction are treated the same way. The caller's own
permission to call sts:AssumeRole (its identity policies) is not checked, as
moto checks no identity policies.

AWS documentation:
  * AWS Security Token Service API Reference, AssumeRole (the trust policy
    "specifies who can assume the role"; ExternalId):
    https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html
  * IAM User Guide, AWS JSON policy elements: Principal (account principals,
    `arn:aws:iam::ACCOUNT:root`, IAM user and role principals, role session
    principals, service principals, "*"):
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html
  * IAM User Guide, How IAM roles differ from resource-based policies (the
    role trust policy) and Grant a user permissions to switch roles:
    https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_compare-resource-policies.html
    https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_permissions-to-switch.html
  * IAM User Guide, Policy evaluation logic (an explicit deny overrides an
    allow):
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
"""

import fnmatch
import json
import warnings

from moto.iam.models import iam_backends
from moto.sts.exceptions import STSClientError
from moto.sts.responses import TokenResponse
from moto.utilities.utils import PARTITION_NAMES


def as_list(value):
    return value if isinstance(value, list) else [value]


def trusted_role(role_arn):
    """The role `role_arn` names, or None."""
    parts = role_arn.split(":")
    if len(parts) != 6 or parts[2] != "iam" or not parts[4].isdigit() or not parts[5].startswith("role/"):
        return None
    if parts[1] not in PARTITION_NAMES:
        return None
    name = parts[5].rsplit("/", 1)[-1]
    roles = iam_backends[parts[4]][parts[1]].roles.values()
    return next((role for role in roles if role.name == name), None)


def caller_principals(self):
    """The caller: its account, and the ARNs a trust policy may name it by."""
    backend = self.backend
    key = self.get_access_key()
    assumed = backend.get_assumed_role_from_access_key(key)
    if assumed:
        return assumed.account_id, {assumed.role_arn, assumed.arn}, assumed.arn
    user = iam_backends[backend.account_id][self.partition].get_user_from_access_key_id(key)
    if user:
        return user.account_id, {user.arn}, user.arn
    return backend.account_id, set(), backend.get_caller_identity(key, self.region)[1]


def names_caller(principal, account, arns):
    if principal == "*":
        return True
    if not isinstance(principal, dict) or set(principal) - {"AWS", "Service", "Federated", "CanonicalUser"}:
        return False
    for value in as_list(principal.get("AWS", [])):
        if value in ("*", account, f"arn:aws:iam::{account}:root") or value in arns:
            return True
    return False


def conditions_hold(condition, external_id):
    """Whether a statement's conditions hold: True or False for `StringEquals`
    on `sts:ExternalId` alone, None (not evaluated) for any other."""
    held = True
    for operator, tests in (condition or {}).items():
        for key, values in tests.items():
            if operator != "StringEquals" or key.lower() != "sts:externalid":
                return None
            held = held and external_id in as_list(values)
    return held


def applies(statement, account, arns, external_id):
    """Whether `statement` is about this caller assuming the role (a
    statement the patch cannot evaluate applies when it denies)."""
    deny = statement.get("Effect") == "Deny"
    if "NotPrincipal" in statement or "NotAction" in statement:
        return deny
    actions = [a.lower() for a in as_list(statement.get("Action", []))]
    if not any(fnmatch.fnmatchcase("sts:assumerole", action) for action in actions):
        return False
    if not names_caller(statement.get("Principal"), account, arns):
        return False
    held = conditions_hold(statement.get("Condition"), external_id)
    return held is True or (deny and held is None)


def trusts(role, account, arns, external_id):
    policy = json.loads(role.assume_role_policy_document or "{}")
    statements = [s for s in as_list(policy.get("Statement", [])) if applies(s, account, arns, external_id)]
    effects = {statement.get("Effect") for statement in statements}
    return "Allow" in effects and "Deny" not in effects


def apply():
    """Refuse to assume a role that does not exist or does not trust the caller."""
    assume_role = TokenResponse.assume_role

    def assume_trusted_role(self):
        role_arn = self._get_param("RoleArn")
        account, arns, caller = caller_principals(self)
        role = trusted_role(role_arn)
        if role is None or not trusts(role, account, arns, self._get_param("ExternalId")):
            raise STSClientError(
                "AccessDenied", f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
            )
        return assume_role(self)

    TokenResponse.assume_role = assume_trusted_role
    # STS models no AccessDenied shape; moto still answers it as AWS does.
    warnings.filterwarnings("ignore", message=".*AccessDenied does not match an error shape")
