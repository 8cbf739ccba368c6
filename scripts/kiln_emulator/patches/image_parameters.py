"""SSM parameters of data type `aws:ec2:image` are validated asynchronously:
moto stores an `aws:ec2:image` value at once, whatever it is, and shows it
to the next read. On AWS PutParameter answers success (and the version)
before the value is validated; the new version is shown only once the
validation succeeds ("For a new parameter, a ParameterNotFound message is
returned until the parameter is validated. For an existing parameter ...,
information about the new version isn't included until the parameter is
validated."); an invalid value (not an AMI id available to the account) is
never created: "the PutParameter operation will return success, but the
asynchronous validation will fail and the parameter will not be created or
updated". Another PutParameter of the parameter before the validation is
complete is refused: "the system reports that validation is still in
process".

The patch models it deterministically. PutParameter with DataType
`aws:ec2:image` answers success with the next version number at once, and
holds the new version back. The validation completes on the SECOND read of
that parameter after the put (GetParameter, GetParameters, or
GetParametersByPath covering it, or GetParameterHistory): the first read
still sees the previous state (ParameterNotFound for a new parameter), the
second and later ones the new version, if its value is `ami-` and 8 or 17
hexadecimal digits naming an image that DescribeImages finds in the
parameter's account and region; otherwise the previous version stays, and
the version number it was given is never shown (the next put of the existing
parameter skips it; a parameter that never existed starts again at 1).
DescribeParameters shows what is validated, and does not count as a read.
A PutParameter of the parameter while its validation is pending is
TooManyUpdates (the documentation names no error code for it; of
PutParameter's documented errors this is the one for "concurrent updates for
a resource that supports one update at a time"). The EventBridge "Parameter
Store Change" event AWS sends is not emitted: moto's EventBridge has no
service events to build it on.

AWS documentation:
  * AWS Systems Manager API Reference, PutParameter (DataType: "The
    aws:ec2:image value is validated asynchronously ..."; TooManyUpdates):
    https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PutParameter.html
  * AWS Systems Manager User Guide, Native parameter support for Amazon
    Machine Image IDs (the format `ami-12345abcdeEXAMPLE`; ParameterNotFound
    until validated; "validation is still in process"):
    https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-ec2-aliases.html
"""

import re

from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import ec2_backends
from moto.ssm.exceptions import SSMException
from moto.ssm.models import SimpleSystemManagerBackend
from moto.ssm.responses import SimpleSystemManagerResponse

IMAGE = "aws:ec2:image"
IMAGE_ID = re.compile(r"ami-[0-9a-f]{8}(?:[0-9a-f]{9})?")
READS_TO_VALIDATE = 2


class TooManyUpdates(SSMException):
    def __init__(self, name):
        super().__init__(
            "TooManyUpdates",
            f"Validation of the aws:ec2:image value last put to parameter {name} is still in process."
            " Try again later.",
        )


class Validation:
    """A put of an `aws:ec2:image` value being validated: the version it made
    (not yet shown), and the reads of the parameter since."""

    def __init__(self, parameter):
        self.parameter = parameter
        self.reads = 0


def key_of(backend, name):
    """The backend's key of parameter `name` (an ARN, `name:version`, ...)."""
    return backend._parameters.normalize_name(backend._strip_parameter_arn(name).split(":")[0])


def shown_versions(backend, key):
    return dict.get(backend._parameters, key) or []


def names_an_image(backend, value):
    if not IMAGE_ID.fullmatch(value or ""):
        return False
    try:
        return bool(ec2_backends[backend.account_id][backend.region_name].describe_images(ami_ids=[value]))
    except EC2ClientError:
        return False


def observe(backend, key):
    """One read of parameter `key`: the second after a put completes its validation."""
    validation = backend.image_validations.get(key)
    if validation is None:
        return
    validation.reads += 1
    if validation.reads < READS_TO_VALIDATE:
        return
    del backend.image_validations[key]
    parameter = validation.parameter
    if names_an_image(backend, parameter.value):
        backend._parameters[key].append(parameter)
        return
    backend.failed_image_versions[key] = parameter.version
    if not shown_versions(backend, key):
        backend._resource_tags.get("Parameter", {}).pop(key, None)


def within(key, path, recursive):
    prefix = path.rstrip("/") + "/"
    name = key if key.startswith("/") else "/" + key
    return name.startswith(prefix) and (recursive or "/" not in name[len(prefix) :])


def reads(names_of):
    """Wraps a read action: each parameter `names_of` it names is read once."""

    def wrap(action):
        def read(self):
            backend = self.ssm_backend
            for key in names_of(self, backend):
                observe(backend, key)
            return action(self)

        return read

    return wrap


def named(self, backend):
    return [key_of(backend, self._get_param("Name"))]


def listed(self, backend):
    return {key_of(backend, name) for name in self._get_param("Names") or []}


def under_path(self, backend):
    path, recursive = self._get_param("Path"), self._get_param("Recursive", False)
    return [key for key in list(backend.image_validations) if within(key, path, recursive)]


def apply():
    """Validate `aws:ec2:image` values as AWS does: later, and only a real image."""
    backend_init = SimpleSystemManagerBackend.__init__

    def with_validations(self, *args, **kwargs):
        backend_init(self, *args, **kwargs)
        self.image_validations = {}
        self.failed_image_versions = {}

    SimpleSystemManagerBackend.__init__ = with_validations
    put_parameter = SimpleSystemManagerBackend.put_parameter

    def put_validated_later(self, name, *args, **kwargs):
        key = self._parameters.normalize_name(name)
        if key in self.image_validations:
            raise TooManyUpdates(name)
        existed = bool(shown_versions(self, key))
        parameter = put_parameter(self, name, *args, **kwargs)
        skipped = self.failed_image_versions.pop(key, 0)
        if existed:
            parameter.version = max(parameter.version, skipped + 1)
        if parameter.data_type == IMAGE:
            versions = self._parameters[key]
            versions.remove(parameter)
            if not versions:
                dict.__delitem__(self._parameters, key)
            self.image_validations[key] = Validation(parameter)
        return parameter

    SimpleSystemManagerBackend.put_parameter = put_validated_later
    Response = SimpleSystemManagerResponse
    Response.get_parameter = reads(named)(Response.get_parameter)
    Response.get_parameter_history = reads(named)(Response.get_parameter_history)
    Response.get_parameters = reads(listed)(Response.get_parameters)
    Response.get_parameters_by_path = reads(under_path)(Response.get_parameters_by_path)
