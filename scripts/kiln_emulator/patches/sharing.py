"""Shared images: moto keeps each account's images to itself. An image its
owner shares (ModifyImageAttribute LaunchPermission) is still invisible to
the account it is shared with, which can neither describe nor launch it; and
moto's flat form of ModifyImageAttribute (OperationType with UserId.N,
UserGroup.N, OrganizationArn.N, OrganizationalUnitArn.N) keeps only the
first group, organization and OU it is given.

AWS documents:

  * DescribeImages: "The images available to you include public images,
    private images that you own, and private images owned by other AWS
    accounts for which you have explicit launch permissions." Asked by id, a
    shared image is answered; asked with Owners, an image shared with you by
    one of those owners is too; ExecutableUsers=self answers the images
    shared with your account, its organization or its OUs.
  * A launch permission names an account (UserId), all accounts (Group
    `all`), an organization (OrganizationArn) or an organizational unit
    (OrganizationalUnitArn): every account of the organization, or under the
    OU at any depth, may launch the image.
  * The flat form takes lists: every item of each list is granted (or
    removed).

The patch answers, in an account's DescribeImages (and so its RunInstances,
which moto validates through it), the images of other accounts in the same
region that grant it launch permission: by account id, by `all`, or through
moto's AWS Organizations model (the organization, or any OU above the
account). It reads the flat form's lists whole.

AWS documentation:
  * Amazon EC2 API Reference, DescribeImages (images available to you,
    Owners, ExecutableUsers):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeImages.html
  * Amazon EC2 API Reference, ModifyImageAttribute (OperationType, UserId.N,
    UserGroup.N, OrganizationArn.N, OrganizationalUnitArn.N, LaunchPermission):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifyImageAttribute.html
  * Amazon EC2 User Guide, Share an AMI with organizations and OUs ("all of
    the children accounts gain access to the AMI"):
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/share-amis-with-organizations-and-OUs.html
"""

from moto.core.responses import EmptyResult
from moto.ec2.exceptions import InvalidAMIIdError
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import AmiBackend
from moto.ec2.responses.amis import AmisResponse
from moto.organizations.models import organizations_backends
from moto.ec2.utils import generic_filter


def _memberships(account_id):
    """The organization ARN and the ARNs of every OU above `account_id`."""
    for manager in list(organizations_backends.keys()):
        for backend in organizations_backends[manager].values():
            org = getattr(backend, "org", None)
            account = next((a for a in getattr(backend, "accounts", []) if a.id == account_id), None)
            if org is None or account is None:
                continue
            found = {org.arn}
            units = {ou.id: ou for ou in backend.ou}
            parent = units.get(account.parent_id)
            while parent is not None:
                found.add(parent.arn)
                parent = units.get(getattr(parent, "parent_id", None))
            return found
    return set()


def _grants(image, account_id, memberships):
    """Whether `image` lets `account_id` (in `memberships`) launch it."""
    for permission in image.launch_permissions:
        if permission.get("UserId") == account_id or permission.get("Group") == "all":
            return True
        if permission.get("OrganizationArn") in memberships:
            return True
        if permission.get("OrganizationalUnitArn") in memberships:
            return True
    return False


def shared_with(backend):
    """The images other accounts of `backend`'s region share with its account."""
    account_id = backend.account_id
    memberships = None
    found = []
    for owner in list(ec2_backends.keys()):
        if owner == account_id or backend.region_name not in ec2_backends[owner]:
            continue
        for image in list(ec2_backends[owner][backend.region_name].amis.values()):
            if image.owner_id == account_id or not image.launch_permissions:
                continue
            if memberships is None:
                memberships = _memberships(account_id)
            if _grants(image, account_id, memberships):
                found.append(image)
    return found


def apply():
    """Let shared images be seen and launched, and read the flat form whole."""
    describe = AmiBackend.describe_images

    def describe_images(self, ami_ids=None, filters=None, exec_users=None, owners=None):
        shared = shared_with(self)
        if ami_ids:
            theirs = [image for image in shared if image.id in ami_ids]
            mine = [i for i in ami_ids if i not in {image.id for image in theirs}]
            if not mine:
                return theirs
            try:
                return describe(self, ami_ids=mine, filters=filters, exec_users=exec_users, owners=owners) + theirs
            except InvalidAMIIdError:
                if theirs:
                    raise InvalidAMIIdError(mine) from None
                raise
        images = describe(self, ami_ids=ami_ids, filters=filters, exec_users=exec_users, owners=owners)
        if owners:
            wanted = {self.account_id if o == "self" else o for o in owners}
            shared = [image for image in shared if image.owner_id in wanted]
        if exec_users and not {"self", self.account_id} & set(exec_users):
            shared = []
        if filters:
            shared = generic_filter(filters, shared)
        return images + [image for image in shared if image not in images]

    AmiBackend.describe_images = describe_images

    original = AmisResponse.modify_image_attribute

    def modify_image_attribute(self):
        operation = self._get_param("OperationType")
        if operation not in ("add", "remove"):
            return original(self)
        self.error_on_dryrun()
        permissions = [{"Group": g} for g in self._get_param("UserGroups", [])]
        permissions += [{"UserId": u} for u in self._get_param("UserIds", [])]
        permissions += [{"OrganizationArn": o} for o in self._get_param("OrganizationArns", [])]
        permissions += [{"OrganizationalUnitArn": o} for o in self._get_param("OrganizationalUnitArns", [])]
        self.ec2_backend.modify_image_attribute(
            ami_id=self._get_param("ImageId"),
            launch_permissions_to_add=permissions if operation == "add" else [],
            launch_permissions_to_remove=permissions if operation == "remove" else [],
        )
        return EmptyResult()

    AmisResponse.modify_image_attribute = modify_image_attribute
