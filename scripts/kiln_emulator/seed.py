"""What the emulator holds before kiln's first call: Canonical's images (as
moto's MOTO_AMIS_PATH file), the source parameter naming the current one, the
builder's instance profile and the member account's audit role."""

import json

from . import (
    ACCOUNT,
    CANONICAL,
    INSTANCE_PROFILE,
    MEMBER_ACCOUNT,
    MEMBER_ROLE,
    REGION,
    SOURCE_PARAMETER,
)

IMAGES = [
    # (id, architecture, release, serial, current, ENA)
    ("ami-0a1b2c3d4e5f60001", "x86_64", "noble-24.04", "20261118", True, True),
    ("ami-0a1b2c3d4e5f60002", "x86_64", "noble-24.04", "20261021", False, True),
    ("ami-0a1b2c3d4e5f60003", "arm64", "noble-24.04", "20261118", True, True),
    ("ami-0a1b2c3d4e5f60004", "x86_64", "trusty-14.04", "20160114", False, False),
]


def seed_images():
    """The images, as moto reads them from the file at MOTO_AMIS_PATH."""
    images = []
    for ami_id, arch, release, serial, _, ena in IMAGES:
        deb_arch = "amd64" if arch == "x86_64" else "arm64"
        images.append(
            {
                "ami_id": ami_id,
                "name": f"ubuntu/images/hvm-ssd-gp3/ubuntu-{release}-{deb_arch}-server-{serial}",
                "owner_id": CANONICAL,
                "architecture": arch,
                "virtualization_type": "hvm",
                "root_device_type": "ebs",
                "root_device_name": "/dev/sda1",
                "state": "available",
                "public": True,
                "description": f"Canonical, Ubuntu, {release}, {deb_arch} image",
                "creation_date": f"{serial[:4]}-{serial[4:6]}-{serial[6:]}T00:00:00.000Z",
                "region_name": REGION,
                "ena_support": ena,
            }
        )
    return images


def trust(principal):
    """A role trust policy letting `principal` assume the role."""
    statement = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def seed_member_account(session, endpoint):
    """The member account's audit role, created as that account."""
    iam = session.client("iam", endpoint_url=endpoint)
    iam.meta.events.register(
        "before-sign.iam.*",
        lambda request, **_: request.headers.add_header("x-moto-account-id", MEMBER_ACCOUNT),
    )
    iam.create_role(
        RoleName=MEMBER_ROLE, AssumeRolePolicyDocument=trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"})
    )
    return f"arn:aws:iam::{MEMBER_ACCOUNT}:role/{MEMBER_ROLE}"


def seed(endpoint, builder_profile=True):
    """Seeds the emulator at `endpoint`; returns what the ready line tells."""
    import boto3

    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    ssm = session.client("ssm", endpoint_url=endpoint)
    current = next(i for i in IMAGES if i[1] == "x86_64" and i[4])
    ssm.put_parameter(
        Name=SOURCE_PARAMETER, Value=current[0], Type="String", DataType="aws:ec2:image"
    )
    # Canonical's parameter was validated long ago: the second read after the
    # put completes the validation (patches/image_parameters.py).
    for _ in range(2):
        ssm.get_parameters(Names=[SOURCE_PARAMETER])
    if builder_profile:
        iam = session.client("iam", endpoint_url=endpoint)
        iam.create_role(
            RoleName=INSTANCE_PROFILE,
            AssumeRolePolicyDocument=trust({"Service": "ec2.amazonaws.com"}),
        )
        iam.attach_role_policy(
            RoleName=INSTANCE_PROFILE,
            PolicyArn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
        )
        iam.create_instance_profile(InstanceProfileName=INSTANCE_PROFILE)
        iam.add_role_to_instance_profile(InstanceProfileName=INSTANCE_PROFILE, RoleName=INSTANCE_PROFILE)
    member_role = seed_member_account(session, endpoint)
    return {
        "endpoint": endpoint,
        "region": REGION,
        "account": ACCOUNT,
        "member_role": member_role,
        "source_parameter": SOURCE_PARAMETER,
        "source_ami": current[0],
        "instance_profile": INSTANCE_PROFILE,
        "images": {f"{release}-{arch}-{serial}": ami for ami, arch, release, serial, *_ in IMAGES},
    }
