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
the ENA patch's (ena.py).

An ImageId of the form `resolve:ssm:NAME`, `resolve:ssm:NAME:VERSION` or
`resolve:ssm:NAME:LABEL` (the request's or its launch template's) is kept by
moto as the literal string; AWS resolves it at launch to the value of that
Systems Manager parameter in the caller's account and region, and launches
that image. The patch resolves it the same way (the version SSM shows, as
image_parameters.py validates it) and launches the image it names, checked
as above. A parameter that does not exist, or whose data type is not
`aws:ec2:image`, is refused with SsmInvalidParameter (the code AWS answers,
with "Unsupported data type. The following parameter data types are
supported: aws:ec2:image" for the latter). Auto Scaling's launches keep
moto's behaviour.

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
  * Amazon EC2 User Guide, Use a Systems Manager parameter instead of an AMI
    ID (`resolve:ssm:parameter-name[:version-number|:label]`, resolved at
    launch), and Amazon EC2 Auto Scaling User Guide, Use AWS Systems Manager
    parameters instead of AMI IDs in launch templates (data type
    aws:ec2:image):
    https://docs.aws.amazon.com/autoscaling/ec2/userguide/using-systems-manager-parameters.html
  * Amazon EC2 API Reference, Error codes for the Amazon EC2 API
    (InvalidAMIID.NotFound, InvalidAMIID.Malformed,
    InvalidParameterCombination):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
"""

from moto.ec2.exceptions import EC2ClientError, InvalidAMIIdError, InvalidParameterCombination
from moto.ec2.models.instance_types import INSTANCE_TYPES
from moto.ec2.responses.instances import InstanceResponse
from moto.ssm.exceptions import SSMException
from moto.ssm.models import ssm_backends

DEFAULT_INSTANCE_TYPE = "m1.small"
RESOLVE = "resolve:ssm:"
IMAGE = "aws:ec2:image"


class SsmInvalidParameter(EC2ClientError):
    def __init__(self, message):
        super().__init__("SsmInvalidParameter", message)


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


def resolved(self, image_id):
    """The image `resolve:ssm:NAME[:VERSION|:LABEL]` names in the caller's account and region."""
    name = image_id[len(RESOLVE) :]
    try:
        parameter = ssm_backends[self.current_account][self.region].get_parameter(name)
    except SSMException:
        parameter = None
    if parameter is None:
        raise SsmInvalidParameter(f"The Systems Manager parameter {name} was not found.")
    if parameter.data_type != IMAGE:
        raise SsmInvalidParameter("Unsupported data type. The following parameter data types are supported: " + IMAGE)
    return parameter.value


def launch_image(self, image_id):
    """Makes the request launch `image_id`, whatever its launch template says."""
    if self.automated_parameter_parsing:
        self.params["ImageId"] = image_id
    else:
        self.querystring["ImageId"] = [image_id]


def apply():
    """Refuse RunInstances of a missing image, or of a non-ENA image on a type that requires ENA."""
    run_instances = InstanceResponse.run_instances

    def run_launchable(self):
        image_id, instance_type = launched_image_and_type(self)
        if image_id and image_id.startswith(RESOLVE):
            image_id = resolved(self, image_id)
            launch_image(self, image_id)
        if image_id:
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
