"""Runs moto server seeded for kiln, with a small patch that teaches it ENA.

Seeds:
  * Canonical-owned (099720109477) Ubuntu 24.04 images, amd64 and arm64, the
    newest and the one before, all with ENA support, and an old Ubuntu 14.04
    image from before ENA (none);
  * the Canonical-style source parameter at SOURCE_PARAMETER (the emulator
    reserves /aws/..., so the path differs from the real one: point kiln at it
    with KILN_SOURCE_PARAMETER);
  * the builder's IAM role and instance profile `kiln-builder` with
    AmazonSSMManagedInstanceCore.

The ENA patch: moto does not model ENA at all. Real AWS reports `enaSupport`
on images and instances; instances take it from their image, and
CreateImage/CopyImage images inherit it from their instance or source. The
patch adds exactly that, starting from the seed JSON's `ena_support`, so
kiln's real ENA check runs unchanged against the emulator. RegisterImage is
not patched (moto drops its EnaSupport parameter): registered images have none.
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import threading

REGION = "us-east-1"
CANONICAL = "099720109477"
SOURCE_PARAMETER = (
    "/kiln-emulator/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
)
INSTANCE_PROFILE = "kiln-builder"

IMAGES = [
    # (id, architecture, release, serial, current, ENA)
    ("ami-0a1b2c3d4e5f60001", "x86_64", "noble-24.04", "20261118", True, True),
    ("ami-0a1b2c3d4e5f60002", "x86_64", "noble-24.04", "20261021", False, True),
    ("ami-0a1b2c3d4e5f60003", "arm64", "noble-24.04", "20261118", True, True),
    ("ami-0a1b2c3d4e5f60004", "x86_64", "trusty-14.04", "20160114", False, False),
]


def seed_images():
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


def patch_ena():
    """Teach moto ENA, as AWS behaves (see the module docstring)."""
    from moto.ec2.models.amis import Ami
    from moto.ec2.models.instances import Instance

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


def seed(endpoint):
    import boto3

    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    ssm = session.client("ssm", endpoint_url=endpoint)
    current = next(i for i in IMAGES if i[1] == "x86_64" and i[4])
    ssm.put_parameter(
        Name=SOURCE_PARAMETER, Value=current[0], Type="String", DataType="aws:ec2:image"
    )
    iam = session.client("iam", endpoint_url=endpoint)
    iam.create_role(
        RoleName=INSTANCE_PROFILE,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "ec2.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    iam.attach_role_policy(
        RoleName=INSTANCE_PROFILE,
        PolicyArn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    )
    iam.create_instance_profile(InstanceProfileName=INSTANCE_PROFILE)
    iam.add_role_to_instance_profile(InstanceProfileName=INSTANCE_PROFILE, RoleName=INSTANCE_PROFILE)
    return {
        "endpoint": endpoint,
        "region": REGION,
        "source_parameter": SOURCE_PARAMETER,
        "source_ami": current[0],
        "instance_profile": INSTANCE_PROFILE,
        "images": {f"{release}-{arch}-{serial}": ami for ami, arch, release, serial, *_ in IMAGES},
    }


def serve(args):
    seed_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(seed_images(), seed_file)
    seed_file.close()
    os.environ["MOTO_AMIS_PATH"] = seed_file.name
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    patch_ena()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    info = seed(f"http://{host}:{port}")
    os.unlink(seed_file.name)
    print(json.dumps(info), flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if not args.detach:
        # The parent holds our stdin: when it exits, however it exits, we stop.
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    server.stop()


def env():
    info = json.loads(sys.stdin.readline())
    lines = {
        "AWS_ENDPOINT_URL": info["endpoint"],
        "AWS_REGION": info["region"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "KILN_SOURCE_PARAMETER": info["source_parameter"],
    }
    for key, value in lines.items():
        print(f"export {key}={value}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve")
    serve_parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve_parser.add_argument("--detach", action="store_true", help="ignore stdin")
    commands.add_parser("env")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args)
    else:
        env()


if __name__ == "__main__":
    main()
