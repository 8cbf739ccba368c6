"""CopyImage: moto copies an image at once (available on return), reads only
SourceImageId, SourceRegion, Name and Description, and makes a bare image
(root device `standard`, an unencrypted snapshot, no tags, no record of its
source). AWS documents more, and a distribution of images depends on it:

  * Name is required.
  * Encrypted and KmsKeyId: the copy's snapshots are encrypted (with the key
    named, or the AWS managed EBS key); a key needs Encrypted true ("If you
    specify a KMS key, you must also set the encrypted state to true"); a
    copy of an encrypted image is encrypted.
  * TagSpecification.N: `image` tags the new AMI, `snapshot` its new
    snapshots; any other ResourceType fails the request.
  * CopyImageTags: the source's user-defined tags go to the copy (tags with
    the `aws:` prefix never do). On a key both it and TagSpecification.N
    name, the documentation says nothing; the patch gives
    TagSpecification.N's value.
  * The key "must exist in the destination Region", and AWS checks it
    asynchronously: with a key that is not there (or not enabled) the call
    "can appear to complete, but eventually fails". Here the copy ends
    `failed` (StateReason names the key; AWS documents no code, so the
    patch's is `InvalidKmsKey`) where it would have become available; a key
    that is there is recorded by its ARN, as DescribeImages reports it.
  * ClientToken makes the request idempotent: the same token with the same
    parameters answers the first copy's id, with others
    IdempotentParameterMismatch.
  * The copy is `pending` until its snapshots are copied, then `available`:
    here it turns available on the second DescribeImages that answers it
    (the first read after the call still sees it pending).
  * DescribeImages reports a copy's SourceImageId and SourceImageRegion, and
    the copy keeps its source's root device (type and name) and boot mode.

The patch does all that, in the backend of the destination region (the one
the request is sent to, as AWS requires: "The copy operation must be
initiated in the destination Region").

AWS documentation:
  * Amazon EC2 API Reference, CopyImage (Name required; Encrypted, KmsKeyId,
    TagSpecification.N, CopyImageTags, ClientToken):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CopyImage.html
  * Amazon EC2 API Reference, Image (sourceImageId, sourceImageRegion, state
    `pending` | `available` | ...):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Image.html
  * Amazon EC2 User Guide, Ensuring idempotency in Amazon EC2 API requests
    (IdempotentParameterMismatch):
    https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html
  * Amazon EC2 User Guide, Copy an Amazon EC2 AMI (encryption of copies;
    user-defined tags copied only with CopyImageTags):
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/CopyingAMIs.html
"""

import json

from moto.core.responses import ActionResult
from moto.ec2.exceptions import (
    EC2ClientError,
    InvalidParameterCombination,
    InvalidTaggableResourceType,
    MissingParameterError,
)
from moto.ec2.models.amis import Ami, AmiBackend
from moto.ec2.responses.amis import AmisResponse

# DescribeImages answers a copy `pending` this many times before `available`.
PENDING_READS = 1


class IdempotentParameterMismatch(EC2ClientError):
    def __init__(self, token):
        super().__init__(
            "IdempotentParameterMismatch",
            f"Client token {token} was used with different parameters in an earlier request.",
        )


def apply():
    """Copy images as AWS documents."""

    def copy_image(self):
        self.error_on_dryrun()
        source_id = self._get_param("SourceImageId")
        source_region = self._get_param("SourceRegion")
        name = self._get_param("Name")
        if not name:
            raise MissingParameterError("Name")
        encrypted = self._get_bool_param("Encrypted", False)
        key = self._get_param("KmsKeyId")
        if key and not encrypted:
            raise InvalidParameterCombination(
                "KmsKeyId requires Encrypted to be true: a key encrypts the copy's snapshots"
            )
        tags = self._parse_tag_specification()  # {ResourceType: {Key: Value}}
        for resource_type in tags:
            if resource_type not in ("image", "snapshot"):
                raise InvalidTaggableResourceType(resource_type)
        request = {
            "source": [source_id, source_region], "name": name,
            "description": self._get_param("Description"), "encrypted": encrypted, "key": key,
            "tags": tags,
            "copy_tags": self._get_bool_param("CopyImageTags", False),
        }
        backend = self.ec2_backend
        tokens = backend.__dict__.setdefault("kiln_copy_tokens", {})
        token = self._get_param("ClientToken")
        if token and token in tokens:
            earlier, image_id = tokens[token]
            if earlier != json.dumps(request, sort_keys=True):
                raise IdempotentParameterMismatch(token)
            return ActionResult({"ImageId": image_id})
        image = backend.copy_image(source_id, source_region, name, request["description"])
        source = _source(backend, source_id, source_region)
        image.state = "pending"
        image.kiln_pending_reads = PENDING_READS
        image.source_image_id, image.source_image_region = source_id, source_region
        image.root_device_type, image.root_device_name = source.root_device_type, source.root_device_name
        image.boot_mode = source.boot_mode
        snapshot = image.ebs_snapshot
        snapshot.encrypted = encrypted or source.ebs_snapshot.encrypted
        snapshot.kms_key_id = key if encrypted else source.ebs_snapshot.kms_key_id
        if request["copy_tags"]:
            image.add_tags({t["key"]: t["value"] for t in source.get_tags() if not t["key"].startswith("aws:")})
        if key:
            found = _key(backend, self.region, key)
            if found is None:
                image.kiln_failure = f"KMS key {key} is not an enabled key in {self.region}"
            snapshot.kms_key_id = found or key
        image.add_tags(tags.get("image", {}))
        snapshot.add_tags(tags.get("snapshot", {}))
        if token:
            tokens[token] = (json.dumps(request, sort_keys=True), image.id)
        return ActionResult({"ImageId": image.id})

    AmisResponse.copy_image = copy_image

    describe_images = AmiBackend.describe_images

    def with_copies_becoming_available(self, *args, **kwargs):
        images = describe_images(self, *args, **kwargs)
        for image in images:
            pending = getattr(image, "kiln_pending_reads", 0)
            if pending:
                image.kiln_pending_reads = pending - 1
            elif image.state == "pending" and hasattr(image, "kiln_pending_reads"):
                failure = getattr(image, "kiln_failure", None)
                image.state = "failed" if failure else "available"
                if failure:
                    image.state_reason = {"Code": "InvalidKmsKey", "Message": failure}
        return images

    AmiBackend.describe_images = with_copies_becoming_available

    mappings = Ami.block_device_mappings

    def with_encryption(self):
        found = mappings.fget(self)
        snapshot = self.ebs_snapshot
        if snapshot.encrypted:
            for mapping in found:
                mapping["Ebs"]["Encrypted"] = True
                if snapshot.kms_key_id:
                    mapping["Ebs"]["KmsKeyId"] = snapshot.kms_key_id
        return found

    Ami.block_device_mappings = property(with_encryption)


def _key(backend, region, key):
    """The ARN of `key` (id, ARN, alias or alias ARN) when it is an enabled
    key of `region`, else None."""
    from moto.kms.exceptions import NotFoundException
    from moto.kms.models import kms_backends

    try:
        found = kms_backends[backend.account_id][region].describe_key(key)
    except (NotFoundException, KeyError):  # moto raises KeyError for an unknown id
        return None
    return found.arn if found.key_state == "Enabled" else None


def _source(backend, image_id, region):
    from moto.ec2.models import ec2_backends

    return ec2_backends[backend.account_id][region].describe_images(ami_ids=[image_id])[0]
