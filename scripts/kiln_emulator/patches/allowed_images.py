"""Allowed AMIs: moto 5.2.5 does not implement the account setting at all
(EnableAllowedImagesSettings, DisableAllowedImagesSettings,
ReplaceImageCriteriaInAllowedImagesSettings and GetAllowedImagesSettings
answer NotImplementedError), so nothing stops an account launching any
image shared with it.

AWS documents, and the patch does, per account and region:

  * The setting starts `disabled` with no criteria, managed by the account
    (`ManagedBy: account`). EnableAllowedImagesSettings takes `enabled` or
    `audit-mode`; DisableAllowedImagesSettings sets `disabled`;
    ReplaceImageCriteriaInAllowedImagesSettings replaces the criteria;
    GetAllowedImagesSettings answers the state, the criteria and ManagedBy.
  * The criteria's limits: "up to 10 ImageCriterion", each with up to 200
    ImageProviders, 50 ImageNames, 50 MarketplaceProductCodes; an image name
    is 1-128 characters (at least 3 with `?`) of letters, digits, spaces and
    ( ) [ ] . / - ' @ _ * ?; `none` stands alone among the providers. A
    request beyond them is refused (InvalidParameterValue) and changes
    nothing.
  * An image is allowed when it matches every condition of at least one
    criterion: its owner among the providers (an account id, or `none` for
    the account's own), its name matching one of the names (`*` any run of
    characters, `?` one), created at most MaximumDaysSinceCreated days ago,
    deprecated at most MaximumDaysSinceDeprecated days ago (or not
    deprecated). "The Allowed AMIs feature does not restrict the AMIs owned
    by your account": the account's own images are always allowed.
  * `enabled`: "only AMIs matching these criteria are discoverable and can
    be used by your account to launch instances": DescribeImages leaves the
    others out, RunInstances of one fails as an unknown image
    (InvalidAMIID.NotFound: AWS documents no code of its own), and instances
    already running are untouched. `audit-mode` restricts nothing;
    DescribeImages reports each image's `ImageAllowed` in both modes.
  * A declarative policy of the organization overrides the account's
    setting; the emulator has none (ManagedBy is always `account`).

AWS documentation:
  * Amazon EC2 User Guide, Control the discovery and use of AMIs in Amazon
    EC2 with Allowed AMIs:
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-allowed-amis.html
  * Amazon EC2 API Reference, EnableAllowedImagesSettings,
    ReplaceImageCriteriaInAllowedImagesSettings, GetAllowedImagesSettings,
    ImageCriterionRequest (the limits), Image (ImageAllowed):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_EnableAllowedImagesSettings.html
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ImageCriterionRequest.html
"""

import fnmatch
import re
from datetime import datetime, timedelta, timezone

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError, InvalidAMIIdError
from moto.ec2.models.amis import Ami
from moto.ec2.models.instances import InstanceBackend
from moto.ec2.responses.amis import AmisResponse

MAX_CRITERIA = 10
MAX_PROVIDERS = 200
MAX_NAMES = 50
MAX_PRODUCT_CODES = 50
NAME = re.compile(r"^[A-Za-z0-9()\[\]./\-'@_*? ]{1,128}$")
STATES = ("enabled", "audit-mode")

# (account, region) -> {"state": ..., "criteria": [...]}
SETTINGS = {}


def settings(backend):
    return SETTINGS.setdefault((backend.account_id, backend.region_name), {"state": "disabled", "criteria": []})


def invalid(message):
    return EC2ClientError("InvalidParameterValue", message)


def checked(criteria):
    """The criteria of a Replace request, refused beyond AWS's limits."""
    if len(criteria) > MAX_CRITERIA:
        raise invalid(f"ImageCriteria can include up to {MAX_CRITERIA} ImageCriterion.")
    kept = []
    for criterion in criteria:
        providers = criterion.get("ImageProviders", [])
        names = criterion.get("ImageNames", [])
        codes = criterion.get("MarketplaceProductCodes", [])
        if len(providers) > MAX_PROVIDERS or len(names) > MAX_NAMES or len(codes) > MAX_PRODUCT_CODES:
            raise invalid("An ImageCriterion includes up to 200 ImageProviders, 50 ImageNames and 50"
                          " MarketplaceProductCodes.")
        if "none" in providers and len(providers) > 1:
            raise invalid("When none is specified, no other values can be specified.")
        for name in names:
            if not NAME.match(name) or ("?" in name and len(name) < 3):
                raise invalid(f"Invalid image name: {name}")
        kept.append({key: value for key, value in criterion.items() if value not in (None, [], {})})
    return kept


def days_since(moment):
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - moment) / timedelta(days=1)


def matches(image, criterion, account):
    providers = criterion.get("ImageProviders")
    if providers:
        owners = {account if p == "none" else p for p in providers}
        if image.owner_id not in owners:
            return False
    names = criterion.get("ImageNames")
    if names and not any(fnmatch.fnmatchcase(image.name or "", n) for n in names):
        return False
    created = criterion.get("CreationDateCondition", {}).get("MaximumDaysSinceCreated")
    if created is not None and days_since(image.creation_date) > int(created):
        return False
    deprecated = criterion.get("DeprecationTimeCondition", {}).get("MaximumDaysSinceDeprecated")
    when = getattr(image, "deprecation_time", None)
    if deprecated is not None and when and days_since(when) > int(deprecated):
        return False
    return True


def allowed(backend, image):
    """Whether `image` is allowed in `backend`'s account and region by its criteria."""
    if image.owner_id == backend.account_id:
        return True
    account = backend.account_id
    return any(matches(image, criterion, account) for criterion in settings(backend)["criteria"])


def enable(self):
    state = self._get_param("AllowedImagesSettingsState")
    if state not in STATES:
        raise invalid(f"AllowedImagesSettingsState must be one of {', '.join(STATES)}.")
    self.error_on_dryrun()
    settings(self.ec2_backend)["state"] = state
    return ActionResult({"AllowedImagesSettingsState": state})


def disable(self):
    self.error_on_dryrun()
    settings(self.ec2_backend)["state"] = "disabled"
    return ActionResult({"AllowedImagesSettingsState": "disabled"})


def replace(self):
    criteria = checked(self._get_param("ImageCriteria", []))
    self.error_on_dryrun()
    settings(self.ec2_backend)["criteria"] = criteria
    return ActionResult({"ReturnValue": True})


def get(self):
    self.error_on_dryrun()
    current = settings(self.ec2_backend)
    return ActionResult({"State": current["state"], "ImageCriteria": current["criteria"], "ManagedBy": "account"})


def apply():
    """Keep each account's Allowed AMIs setting and enforce it on images."""
    AmisResponse.enable_allowed_images_settings = enable
    AmisResponse.disable_allowed_images_settings = disable
    AmisResponse.replace_image_criteria_in_allowed_images_settings = replace
    AmisResponse.get_allowed_images_settings = get

    describe = AmisResponse.describe_images

    def describe_allowed(self):
        answer = dict(describe(self).result)
        backend = self.ec2_backend
        state = settings(backend)["state"]
        for image in answer["Images"]:
            image.image_allowed = None if state == "disabled" else allowed(backend, image)
        if state == "enabled":
            answer["Images"] = [image for image in answer["Images"] if image.image_allowed]
        return ActionResult(answer)

    AmisResponse.describe_images = describe_allowed

    run_instances = InstanceBackend.run_instances

    def run_allowed(self, image_id, *args, **kwargs):
        found = self.describe_images(ami_ids=[image_id]) if str(image_id).startswith("ami-") else []
        if found and settings(self)["state"] == "enabled" and not allowed(self, found[0]):
            raise InvalidAMIIdError(image_id)
        return run_instances(self, image_id, *args, **kwargs)

    InstanceBackend.run_instances = run_allowed

    ami_init = Ami.__init__

    def with_allowed(self, *args, **kwargs):
        ami_init(self, *args, **kwargs)
        self.image_allowed = None

    Ami.__init__ = with_allowed
