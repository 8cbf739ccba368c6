"""An image's lifecycle: deregistration protection, deprecation, disabled
images, and when an image last launched. moto 5.2.5 implements neither
deregistration protection nor deprecation (NotImplementedError), its
DisableImage and EnableImage only flip the state (a disabled image still
launches, stays shared and is listed by default), and it reports no
LastLaunchedTime.

AWS documents, and the patch does:

  * EnableImageDeregistrationProtection (ImageId, WithCooldown): "the AMI
    can't be deregistered by any user, regardless of their IAM permissions";
    DescribeImages reports DeregistrationProtection `enabled-with-cooldown` or
    `enabled-without-cooldown` (the values AWS CLI's examples show), else
    `disabled`. DisableImageDeregistrationProtection turns it off; with the
    cooldown, "the AMI can't be deregistered for 24 hours" after that.
    DeregisterImage of a protected image fails. The documentation names no
    error code for it: the patch answers OperationNotPermitted. During a
    cooldown it reports `disabled` (no other value is documented) and still
    refuses the deregistration.
  * EnableImageDeprecation (ImageId, DeprecateAt): seconds are rounded to the
    nearest minute; "You can't specify a date in the past. The upper limit
    for DeprecateAt is 10 years from now" (InvalidParameterValue; no code is
    documented). DescribeImages reports DeprecationTime. An owner sees its
    deprecated images always; another account sees them only asked by id or
    with IncludeDeprecated. DisableImageDeprecation removes the time. A copy
    starts with neither protection nor deprecation.
  * DisableImage: "Sets the AMI state to disabled and removes all launch
    permissions ... A disabled AMI can't be used for instance launches. A
    disabled AMI can't be shared ... does not appear in DescribeImages API
    calls by default" (IncludeDisabled shows it). "Only the AMI owner can
    disable an AMI." EnableImage makes it available again; "accounts ... that
    lost access to the AMI when it was disabled do not regain access
    automatically". Launching a disabled image fails (InvalidAMIID.Unavailable,
    the code moto uses for an image that is no longer available); sharing one
    fails (OperationNotPermitted).
  * LastLaunchedTime: when an instance last launched from the image. AWS
    reports it up to 24 hours late; the patch reports it at once, a moment
    AWS's report reaches within the day (kiln counts it as use only over
    days).

AWS documentation:
  * Amazon EC2 User Guide, Protect an Amazon EC2 AMI from deregistration:
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ami-deregistration-protection.html
  * Amazon EC2 API Reference, EnableImageDeregistrationProtection,
    DisableImageDeregistrationProtection, EnableImageDeprecation (DeprecateAt),
    DisableImageDeprecation, DisableImage, EnableImage, DescribeImages
    (IncludeDisabled, IncludeDeprecated), Image (DeregistrationProtection,
    DeprecationTime, LastLaunchedTime):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_EnableImageDeprecation.html
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DisableImage.html
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeImages.html
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Image.html
  * Amazon EC2 User Guide, Disable an Amazon EC2 AMI, and Deprecate an
    Amazon EC2 AMI:
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/disable-an-ami.html
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ami-deprecate.html
"""

from datetime import datetime, timedelta, timezone

from moto.core.responses import ActionResult
from moto.ec2.exceptions import (
    EC2ClientError,
    InvalidAMIIdError,
    MalformedAMIIdError,
    OperationNotPermitted,
    UnvailableAMIIdError,
)
from moto.ec2.models.amis import Ami
from moto.ec2.models.instances import InstanceBackend
from moto.ec2.responses.amis import AmisResponse

COOLDOWN = timedelta(hours=24)
LONGEST_DEPRECATION = timedelta(days=3652)
WITH_COOLDOWN = "enabled-with-cooldown"
WITHOUT_COOLDOWN = "enabled-without-cooldown"
DISABLED = "disabled"


def now():
    return datetime.now(timezone.utc)


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def invalid(message):
    return EC2ClientError("InvalidParameterValue", message)


def own_image(response):
    """The caller's image the request names (only an owner may change one)."""
    image_id = response._get_param("ImageId") or ""
    if not image_id.startswith("ami-"):
        raise MalformedAMIIdError([image_id])
    backend = response.ec2_backend
    if image_id in backend.deleted_amis:
        raise UnvailableAMIIdError(image_id)
    image = backend.amis.get(image_id)
    if image is None or image.owner_id != backend.account_id:
        raise InvalidAMIIdError(image_id)
    return image


def protected(image):
    """Why `image` cannot be deregistered now, or None."""
    if image.deregistration_protection != DISABLED:
        return "deregistration protection is enabled"
    if image.protected_until and now() < image.protected_until:
        return f"deregistration protection's cooldown lasts until {iso(image.protected_until)}"
    return None


def enable_protection(self):
    image = own_image(self)
    self.error_on_dryrun()
    image.deregistration_protection = WITH_COOLDOWN if self._get_bool_param("WithCooldown") else WITHOUT_COOLDOWN
    image.protected_until = None
    return ActionResult({"Return": image.deregistration_protection})


def disable_protection(self):
    image = own_image(self)
    self.error_on_dryrun()
    if image.deregistration_protection == WITH_COOLDOWN:
        image.protected_until = now() + COOLDOWN
    image.deregistration_protection = DISABLED
    return ActionResult({"Return": DISABLED})


def deprecation_time(value):
    """DeprecateAt as AWS keeps it: in UTC, rounded to the nearest minute."""
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    rounded = moment.replace(second=0, microsecond=0)
    return rounded + timedelta(minutes=1) if moment.second >= 30 else rounded


def enable_deprecation(self):
    image = own_image(self)
    raw = self._get_param("DeprecateAt")
    try:
        moment = deprecation_time(raw)
    except (TypeError, ValueError):
        raise invalid(f"Invalid DeprecateAt: {raw}") from None
    if moment < now():
        raise invalid("DeprecateAt can't be a date in the past.")
    if moment > now() + LONGEST_DEPRECATION:
        raise invalid("DeprecateAt can be at most 10 years from now.")
    self.error_on_dryrun()
    image.deprecation_time = iso(moment)
    return ActionResult({"Return": True})


def disable_deprecation(self):
    image = own_image(self)
    self.error_on_dryrun()
    image.deprecation_time = None
    return ActionResult({"Return": True})


def disable_image(self):
    image = own_image(self)
    self.error_on_dryrun()
    image.state = "disabled"
    image.launch_permissions = []
    return ActionResult({"Return": True})


def enable_image(self):
    image = own_image(self)
    self.error_on_dryrun()
    image.state = "available"
    return ActionResult({"Return": True})


def deprecated(image):
    return image.deprecation_time is not None and image.deprecation_time <= iso(now())


def visible(self, images):
    """What DescribeImages shows of `images`, as the request asks."""
    if not self._get_bool_param("IncludeDisabled", False):
        images = [image for image in images if image.state != "disabled"]
    if not self._get_param("ImageIds") and not self._get_bool_param("IncludeDeprecated", False):
        account = self.ec2_backend.account_id
        images = [image for image in images if image.owner_id == account or not deprecated(image)]
    return images


def apply():
    """Teach moto protection, deprecation, disabled images and last launches."""
    ami_init = Ami.__init__

    def with_lifecycle(self, *args, **kwargs):
        ami_init(self, *args, **kwargs)
        self.deregistration_protection = DISABLED
        self.protected_until = None
        self.deprecation_time = None
        self.last_launched_time = None

    Ami.__init__ = with_lifecycle

    deregister = AmisResponse.deregister_image

    def deregister_unprotected(self):
        image = self.ec2_backend.amis.get(self._get_param("ImageId"))
        why = image is not None and protected(image)
        if why:
            raise OperationNotPermitted(f"The image {image.id} can't be deregistered: {why}.")
        return deregister(self)

    AmisResponse.deregister_image = deregister_unprotected
    describe = AmisResponse.describe_images

    def describe_visible(self):
        answer = dict(describe(self).result)
        answer["Images"] = visible(self, answer["Images"])
        return ActionResult(answer)

    AmisResponse.describe_images = describe_visible
    AmisResponse.enable_image_deregistration_protection = enable_protection
    AmisResponse.disable_image_deregistration_protection = disable_protection
    AmisResponse.enable_image_deprecation = enable_deprecation
    AmisResponse.disable_image_deprecation = disable_deprecation
    AmisResponse.disable_image = disable_image
    AmisResponse.enable_image = enable_image

    modify = AmisResponse.modify_image_attribute

    def modify_unless_disabled(self):
        image = self.ec2_backend.amis.get(self._get_param("ImageId"))
        shares = self._get_param("OperationType") == "add" or self._get_param("LaunchPermission", {}).get("Add")
        if image is not None and image.state == "disabled" and shares:
            raise OperationNotPermitted(f"The image {image.id} is disabled: a disabled AMI can't be shared.")
        return modify(self)

    AmisResponse.modify_image_attribute = modify_unless_disabled

    run_instances = InstanceBackend.run_instances

    def run_enabled(self, image_id, *args, **kwargs):
        # An Auto Scaling launch passes resolve:ssm: unresolved (run_instances.py).
        found = self.describe_images(ami_ids=[image_id]) if str(image_id).startswith("ami-") else []
        if found and found[0].state == "disabled":
            raise UnvailableAMIIdError(image_id)
        reservation = run_instances(self, image_id, *args, **kwargs)
        if found:
            found[0].last_launched_time = iso(now())
        return reservation

    InstanceBackend.run_instances = run_enabled
