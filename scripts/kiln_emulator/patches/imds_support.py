"""An image's ImdsSupport: moto accepts ModifyImageAttribute with
`ImdsSupport` and records nothing (and DescribeImageAttribute imdsSupport
fails). On AWS `v2.0` marks the image as requiring IMDSv2: instances
launched from it get HttpTokens `required` and HttpPutResponseHopLimit 2 by
default, and the setting cannot be undone. The patch records it on the
image: DescribeImages answers `ImdsSupport: v2.0` for it (nothing for the
others), DescribeImageAttribute imdsSupport answers it, a value other than
`v2.0` is refused (InvalidParameterValue; the documentation names no error
code), setting `v2.0` again is accepted (the documentation says nothing
against it). RunInstances from such an image gives HttpTokens `required`
and hop limit 2 unless the request's MetadataOptions names them (its values
win, option by option, as the HttpTokens default is documented).

CopyImage keeps it: AWS documents a copy as "an identical but distinct new
AMI" and lists what it does not copy (launch permissions, S3 bucket
permissions, tags unless asked), which does not include imdsSupport; and
ModifyImageAttribute says the only way to "reset" it is a new AMI from the
underlying snapshot. CreateImage (an image of an instance) and RegisterImage
are not patched: their images have none, as in moto, since the documentation
found says nothing of CreateImage, and nothing in kiln registers images.

AWS documentation:
  * Amazon EC2 API Reference, ModifyImageAttribute (ImdsSupport: "Set to
    v2.0 ... HttpTokens automatically set to required ... In addition,
    HttpPutResponseHopLimit is set to 2 ... After you set the value to v2.0,
    you can't undo it"):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifyImageAttribute.html
  * Amazon EC2 API Reference, Image (imdsSupport) and
    InstanceMetadataOptionsRequest (HttpTokens default when the AMI's
    ImdsSupport is v2.0):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Image.html
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceMetadataOptionsRequest.html
  * Amazon EC2 User Guide, Configure instance metadata options for new
    instances (Configure the AMI):
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-IMDS-new-instances.html
  * Amazon EC2 User Guide, Copy an Amazon EC2 AMI and How Amazon EC2 AMI
    copy works (what a copy keeps):
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/CopyingAMIs.html
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/how-ami-copy-works.html
"""

from moto.ec2.exceptions import InvalidParameterValueError
from moto.ec2.models.amis import Ami
from moto.ec2.models.instances import Instance
from moto.ec2.responses.amis import AmisResponse

V2 = "v2.0"


def requested_imds_support(response):
    """The ImdsSupport value a ModifyImageAttribute request sets, or None."""
    value = (response._get_param("ImdsSupport") or {}).get("Value")
    if value is None and response._get_param("Attribute") == "imdsSupport":
        value = response._get_param("Value")
    return value


def apply():
    """Record an image's ImdsSupport and launch its instances by it."""
    ami_init = Ami.__init__

    def with_imds_support(self, *args, **kwargs):
        ami_init(self, *args, **kwargs)
        self.imds_support = getattr(kwargs.get("source_ami"), "imds_support", None)

    Ami.__init__ = with_imds_support
    # moto's DescribeImageAttribute reads the attribute imdsSupport as `imds`.
    Ami.imds = property(lambda self: self.imds_support)

    modify = AmisResponse.modify_image_attribute

    def modify_imds_support(self):
        value = requested_imds_support(self)
        if value is None:
            return modify(self)
        if value != V2:
            raise InvalidParameterValueError(value)
        image = self.ec2_backend.describe_images(ami_ids=[self._get_param("ImageId")])[0]
        self.error_on_dryrun()
        image.imds_support = V2
        return modify(self)

    AmisResponse.modify_image_attribute = modify_imds_support

    instance_init = Instance.__init__

    def with_image_metadata_defaults(self, ec2_backend, image_id, *args, **kwargs):
        instance_init(self, ec2_backend, image_id, *args, **kwargs)
        image = ec2_backend.amis.get(self.image_id)
        if getattr(image, "imds_support", None) != V2:
            return
        given = kwargs.get("metadata_options") or {}
        if "HttpTokens" not in given:
            self.metadata_options.http_tokens = "required"
        if "HttpPutResponseHopLimit" not in given:
            self.metadata_options.http_put_response_hop_limit = 2

    Instance.__init__ = with_image_metadata_defaults
