"""The baseline of the audit benchmark: the little tool a team writes by hand
in Python + boto3, doing what `kiln audit` does for one region: page every
live instance at 1,000 per page, describe the distinct images in batches of
200, read the prod pointers in batches of 10, classify each image the same
way, and group by image, status and service. Prints the counts and its API
calls as JSON, for bench/audit.py to check against kiln's.
"""

import json
import os
from collections import Counter, defaultdict
from datetime import datetime

import boto3

LIVE = ["pending", "running", "stopping", "stopped"]


def main():
    region = os.environ.get("AWS_REGION", "us-east-1")
    ec2 = boto3.client("ec2", region_name=region)
    ssm = boto3.client("ssm", region_name=region)
    calls = Counter()
    for client in (ec2, ssm):
        client.meta.events.register("before-call", lambda model, **_: calls.update([model.name]))

    tally = defaultdict(Counter)
    builders = 0
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": LIVE}],
        PaginationConfig={"PageSize": 1000},
    )
    for page in pages:
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                if tags.get("kiln:role") in ("builder", "test"):
                    builders += 1
                    continue
                tally[instance["ImageId"]][tags.get("Service", "(untagged)")] += 1

    ids = sorted(tally)
    facts = {}
    for i in range(0, len(ids), 200):
        described = ec2.describe_images(Filters=[{"Name": "image-id", "Values": ids[i:i + 200]}])
        for image in described["Images"]:
            if image.get("State") == "deregistered":
                continue
            tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
            facts[image["ImageId"]] = {
                "recipe": tags.get("kiln:recipe"),
                "previous": tags.get("kiln:previous", "").split(),
                "created": datetime.fromisoformat(image["CreationDate"].replace("Z", "+00:00")),
            }

    recipes = sorted({f["recipe"] for f in facts.values() if f["recipe"]})
    pointers = {}
    for i in range(0, len(recipes), 10):
        names = [f"/kiln/{r}/prod" for r in recipes[i:i + 10]]
        for parameter in ssm.get_parameters(Names=names)["Parameters"]:
            pointers[parameter["Name"].split("/")[2]] = parameter["Value"]
    unseen = [image for image in pointers.values() if image not in facts]
    for i in range(0, len(unseen), 200):
        described = ec2.describe_images(Filters=[{"Name": "image-id", "Values": unseen[i:i + 200]}])
        for image in described["Images"]:
            created = image["CreationDate"].replace("Z", "+00:00")
            facts[image["ImageId"]] = {"recipe": None, "previous": [],
                                       "created": datetime.fromisoformat(created)}

    def classify(image_id):
        image = facts.get(image_id)
        if image is None:
            return "deregistered"
        if not image["recipe"]:
            return "foreign"
        current = pointers.get(image["recipe"])
        if current is None:
            return "unpromoted"
        if current == image_id:
            return "current"
        if "prod" in image["previous"]:
            return "previous"
        current_created = facts.get(current, {}).get("created")
        if current_created and image["created"] > current_created:
            return "newer"
        return "stale"

    by_status = Counter()
    by_service = defaultdict(Counter)
    for image_id, services in tally.items():
        status = classify(image_id)
        for service, count in services.items():
            by_status[status] += count
            by_service[service][status] += count
    print(json.dumps({
        "instances": sum(by_status.values()),
        "builders": builders,
        "by_status": by_status,
        "services": len(by_service),
        "api_calls": calls,
    }))


if __name__ == "__main__":
    main()
