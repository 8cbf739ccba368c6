"""Seeds a fleet into the local emulator for `kiln audit`: the benchmark's
5,000 instances over 35 services, or the demo's smaller one.

Images are made as kiln builds leave them (tagged `kiln:recipe`, tested):
recipe `web` gets four (stale, previous, current, newer; `kiln promote` moves
its prod pointer twice, so the tags say which is previous), recipe `api` one
that is never promoted, and one `web` image is deregistered after its
instances launched. Services are spread over those images and a foreign
(Canonical) one; each service's instances launch in reservations of at most
100. Returns the instances per status the audit must find.

Usage: python bench/fleet.py --kiln target/debug/kiln [--instances N] [--services N]
(the AWS_* environment points at the emulator, as `source .emulator/env` sets it)
"""

import argparse
import json
import os
import subprocess
import time

import boto3

CANONICAL = "099720109477"
RESERVATION = 100
# Service k runs PATTERN[k % len(PATTERN)]; every 11th service runs the
# deregistered image instead; every third service on current is mid-rollout,
# a fifth of it still on previous.
PATTERN = ["current", "current", "current", "current", "previous", "stale", "current",
           "foreign", "newer", "unpromoted"]


def kiln_image(ec2, source, recipe, build):
    run = ec2.run_instances(ImageId=source, InstanceType="t3.micro", MinCount=1, MaxCount=1)
    instance = run["Instances"][0]["InstanceId"]
    tags = {"kiln:recipe": recipe, "kiln:build-id": build, "kiln:role": "image", "kiln:stage": "tested"}
    image = ec2.create_image(
        InstanceId=instance,
        Name=f"kiln/{recipe}/{build}",
        TagSpecifications=[{"ResourceType": "image",
                            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
    )["ImageId"]
    ec2.terminate_instances(InstanceIds=[instance])
    return image


def promote(kiln, image, reason):
    subprocess.run([kiln, "promote", "web", image, "--channel", "prod", "--reason", reason],
                   check=True, stdout=subprocess.DEVNULL)


def seed(kiln, instances, services):
    ec2 = boto3.client("ec2")
    source = next(i["ImageId"] for i in ec2.describe_images(Owners=[CANONICAL])["Images"]
                  if i["Architecture"] == "x86_64")
    images = {}
    # Creation times have one-second precision: space the builds so their
    # order is the order they were made.
    for status in ["stale", "previous", "current", "newer"]:
        images[status] = kiln_image(ec2, source, "web", f"web-{status}")
        time.sleep(1.1)
    images["unpromoted"] = kiln_image(ec2, source, "api", "api-1")
    images["deregistered"] = kiln_image(ec2, source, "web", "web-gone")
    images["foreign"] = source
    promote(kiln, images["previous"], "seeded fleet: the image before")
    promote(kiln, images["current"], "seeded fleet: the current image")

    expected = {status: 0 for status in images}
    for k in range(services):
        count = instances // services + (1 if k < instances % services else 0)
        status = "deregistered" if k % 11 == 10 else PATTERN[k % len(PATTERN)]
        split = {status: count}
        if status == "current" and k % 3 == 0:
            split = {"current": count - count // 5, "previous": count // 5}
        service = f"service-{k:02d}"
        for status, count in split.items():
            expected[status] += count
            while count > 0:
                batch = min(count, RESERVATION)
                ec2.run_instances(
                    ImageId=images[status], InstanceType="t3.micro", MinCount=batch, MaxCount=batch,
                    TagSpecifications=[{"ResourceType": "instance", "Tags": [
                        {"Key": "Service", "Value": service},
                        {"Key": "Name", "Value": f"{service}-host"},
                    ]}],
                )
                count -= batch
    ec2.deregister_image(ImageId=images["deregistered"])
    return expected


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kiln", required=True, help="the kiln binary (for kiln promote)")
    parser.add_argument("--instances", type=int, default=5000)
    parser.add_argument("--services", type=int, default=35)
    args = parser.parse_args()
    os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))
    print(json.dumps(seed(args.kiln, args.instances, args.services)))


if __name__ == "__main__":
    main()
