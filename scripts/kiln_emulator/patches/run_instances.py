"""RunInstances of an image it cannot launch: moto launches any image id,
even one that does not exist (it checks only when MOTO_ENABLE_AMI_VALIDATION
is set, and then in its backend, where Auto Scaling launches go too), and any
instance type on any image. AWS refuses, before launching anything, an image
that does not exist or is not available to the account
(InvalidAMIID.NotFound, InvalidAMIID.Malformed for an id that is not
`ami-...`), and an instance type that requires ENA on an image whose
enaSupport is false (InvalidParameterCombination: "Enhanced networking with
the Elastic Network Adapter (ENA) is required for the 't3.small' instance
type. Ensure that you are using an AMI that is enabled for ENA.", the
message AWS answers).

The patch checks the RunInstances API only (so a scaling activity's launch,
which AWS fails in the activity and not in the API call, is left as moto
does it): the image is the request's ImageId, else its launch template
version's; the instance type the request's, else the template's, else
m1.small (AWS's default). Which types require ENA is AWS's own answer: moto
ships DescribeInstanceTypes' data, whose NetworkInfo.EnaSupport is
`required` for every current-generation (Nitro) type, t3, t3a, m5, m6i, c5,
c6i, r5, t4g, ... and `supported` or `unsupported` for the older ones (t2,
m4, c4, m1, ...), which the patch does not refuse. The image's enaSupport is
the ENA patch's (ena.py). An ImageId of the form `resolve:ssm:...` is left
to moto, unchecked.

AWS documentation:
  * Amazon EC2 User Guide, Enable enhanced networking with ENA on your EC2
    instances (current generation instance types require ENA; the AMI's
    enaSupport attribute):
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/enhanced-networking-ena.html
  * Amazon EC2 API Reference, RunInstances (ImageId; InstanceType, "Default:
    m1.small"):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_RunInstances.html
  * Amazon EC2 API Reference, NetworkInfo (enaSupport: unsupported |
    supported | required):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_NetworkInfo.html
  * Amazon EC2 API Reference, Error codes for the Amazon EC2 API
    (InvalidAMIID.NotFound, InvalidAMIID.Malformed,
    InvalidParameterCombination):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
"""

from moto.ec2.exceptions import InvalidAMIIdError, InvalidParameterCombination
from moto.ec2.models.instance_types import INSTANCE_TYPES
from moto.ec2.responses.instances import InstanceResponse

DEFAULT_INSTANCE_TYPE = "m1.small"


def requires_ena(instance_type):
    info = INSTANCE_TYPES.get(instance_type, {})
    return info.get("NetworkInfo", {}).get("EnaSupport") == "required"


def launched_image_and_type(self):
    """The image and instance type RunInstances would launch."""
    template = self._get_param("LaunchTemplate", {})
    data = self.ec2_backend._get_template_from_args(template).data if template else {}
    image_id = self._get_param("ImageId") or data.get("ImageId")
    instance_type = self._get_param("InstanceType") or data.get("InstanceType") or DEFAULT_INSTANCE_TYPE
    return image_id, instance_type


def apply():
    """Refuse RunInstances of a missing image, or of a non-ENA image on a type that requires ENA."""
    run_instances = InstanceResponse.run_instances

    def run_launchable(self):
        image_id, instance_type = launched_image_and_type(self)
        if image_id and not image_id.startswith("resolve:ssm:"):
            images = self.ec2_backend.describe_images(ami_ids=[image_id])
            if not images:
                raise InvalidAMIIdError(image_id)
            if requires_ena(instance_type) and not getattr(images[0], "ena_support", False):
                raise InvalidParameterCombination(
                    f"Enhanced networking with the Elastic Network Adapter (ENA) is required for the"
                    f" '{instance_type}' instance type. Ensure that you are using an AMI that is enabled for ENA."
                )
        return run_instances(self)

    InstanceResponse.run_instances = run_launchable
