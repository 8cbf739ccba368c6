"""ENA: moto does not model ENA at all. Real AWS reports `enaSupport` on
images and instances; instances take it from their image, and
CreateImage/CopyImage images inherit it from their instance or source. The
patch adds exactly that, starting from the seed JSON's `ena_support`, so
kiln's real ENA check runs unchanged against the emulator. RegisterImage is
not patched (moto drops its EnaSupport parameter): registered images have
none.

AWS documentation:
  * Amazon EC2 API Reference, Image (enaSupport):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Image.html
  * Amazon EC2 API Reference, Instance (enaSupport):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Instance.html
  * Amazon EC2 User Guide, Test whether enhanced networking is enabled (the
    `enaSupport` attribute of instances and AMIs):
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/test-enhanced-networking-ena.html
"""

from moto.ec2.models.amis import Ami
from moto.ec2.models.instances import Instance


def apply():
    """Teach moto ENA, as AWS behaves."""
    ami_init = Ami.__init__

    def ami_with_ena(self, *args, ena_support=None, **kwargs):
        ami_init(self, *args, **kwargs)
        if ena_support is None:
            origin = kwargs.get("instance") or kwargs.get("source_ami")
            ena_support = getattr(origin, "ena_support", False)
        self.ena_support = bool(ena_support)

    Ami.__init__ = ami_with_ena

    instance_init = Instance.__init__

    def instance_with_ena(self, ec2_backend, image_id, *args, **kwargs):
        instance_init(self, ec2_backend, image_id, *args, **kwargs)
        image = ec2_backend.amis.get(self.image_id)
        self.ena_support = bool(getattr(image, "ena_support", False))

    Instance.__init__ = instance_with_ena
