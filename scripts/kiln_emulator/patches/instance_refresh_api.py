"""The actions of the instance refresh patch (instance_refresh.py, whose
docstring tells what moto does, what AWS does and where AWS documents it, and
which holds the model: the steps and the instances they replace):
StartInstanceRefresh, DescribeInstanceRefreshes, CancelInstanceRefresh and
RollbackInstanceRefresh, as AutoScalingBackend methods and as
AutoScalingResponse actions answering from them. DescribeInstanceRefreshes
pages by MaxRecords (default 50, as AWS documents); a NextToken it did not
hand out is InvalidNextToken (with the error's documented description, "The
NextToken value is not valid."), never a restart from the first page.

AWS documentation:
  * Amazon EC2 Auto Scaling API Reference, StartInstanceRefresh and
    RollbackInstanceRefresh:
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_StartInstanceRefresh.html
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RollbackInstanceRefresh.html
  * Amazon EC2 Auto Scaling API Reference, DescribeInstanceRefreshes
    (MaxRecords, NextToken; InvalidNextToken):
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeInstanceRefreshes.html
"""

import uuid

from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.exceptions import EC2ClientError

from .instance_refresh import (
    ACTIVE,
    DEFAULTS,
    IRREVERSIBLE,
    MAX_ALARMS,
    ROLLBACKABLE,
    Refresh,
    advance,
    current_refresh,
    desired_template,
    group_refreshes,
    roll_back,
    rollback_blocker,
)


def start_instance_refresh(self, name, strategy, desired, preferences):
    group, refreshes = group_refreshes(self, name)
    if any(r.shown["Status"] in ACTIVE for r in refreshes):
        raise AutoscalingClientError(
            "InstanceRefreshInProgress",
            "An Instance Refresh is already in progress and blocks the execution of this Instance Refresh.",
        )
    spec = desired_template(desired)
    if spec and bool(spec.get("LaunchTemplateId")) == bool(spec.get("LaunchTemplateName")):
        raise ValidationError("Valid requests must contain either launchTemplateId or LaunchTemplateName")
    if spec:
        try:
            template = (
                self.ec2_backend.get_launch_template(spec["LaunchTemplateId"])
                if spec.get("LaunchTemplateId")
                else self.ec2_backend.get_launch_template_by_name(spec["LaunchTemplateName"])
            )
            template.get_version(spec.get("Version", "$Default"))
        except EC2ClientError as error:
            raise ValidationError(error.message)
    preferences = {**DEFAULTS, **(preferences or {})}
    alarms = preferences.get("AlarmSpecification", {}).get("Alarms", [])
    if len(alarms) > MAX_ALARMS:
        raise ValidationError(
            f"The request isn't valid. The AlarmSpecification names {len(alarms)} alarms; you can specify"
            f" up to {MAX_ALARMS} alarms."
        )
    blocker = preferences["AutoRollback"] and rollback_blocker(self, group, desired)
    if blocker:
        remedy = " or specify a desired configuration" if not desired else ""
        raise ValidationError(
            f"The request isn't valid. The AutoRollback parameter cannot be set to true when {blocker}."
            f" Set AutoRollback to false{remedy} and try again."
        )
    refresh = Refresh({
        "InstanceRefreshId": str(uuid.uuid4()), "AutoScalingGroupName": name, "Status": "Pending",
        "StartTime": utcnow(), "PercentageComplete": 0, "InstancesToUpdate": len(group.active_instances()),
        "Preferences": preferences, "DesiredConfiguration": desired, "Strategy": strategy or "Rolling",
    })
    refreshes.insert(0, refresh)
    return refresh.shown["InstanceRefreshId"]


def describe_instance_refreshes(self, name, ids):
    group, refreshes = group_refreshes(self, name)
    for refresh in refreshes:
        if refresh.shown["Status"] in ACTIVE:
            advance(self, group, refresh)
    return [r.shown for r in refreshes if not ids or r.shown["InstanceRefreshId"] in ids]


def cancel_instance_refresh(self, name):
    _, refresh = current_refresh(self, name, ACTIVE)
    refresh.shown["Status"] = "Cancelling"
    return refresh.shown["InstanceRefreshId"]


def rollback_instance_refresh(self, name):
    group, refresh = current_refresh(self, name, ROLLBACKABLE)
    if rollback_blocker(self, group, refresh.shown["DesiredConfiguration"]):
        raise AutoscalingClientError("IrreversibleInstanceRefresh", IRREVERSIBLE)
    roll_back(refresh, "Rollback initiated by user.")
    return refresh.shown["InstanceRefreshId"]


# The API: AutoScalingResponse's actions, answering from the backend.


def start_response(self):
    refresh_id = self.autoscaling_backend.start_instance_refresh(
        self._get_param("AutoScalingGroupName"), self._get_param("Strategy"),
        self._get_param("DesiredConfiguration"), self._get_param("Preferences"),
    )
    return ActionResult({"InstanceRefreshId": refresh_id})


def describe_response(self):
    refreshes = self.autoscaling_backend.describe_instance_refreshes(
        self._get_param("AutoScalingGroupName"), self._get_param("InstanceRefreshIds", [])
    )
    ids = [r["InstanceRefreshId"] for r in refreshes]
    token = self._get_param("NextToken")
    if token and token not in ids:
        raise AutoscalingClientError("InvalidNextToken", "The NextToken value is not valid.")
    start = ids.index(token) + 1 if token else 0
    page = refreshes[start : start + (self._get_int_param("MaxRecords") or 50)]
    more = start + len(page) < len(refreshes)
    next_token = page[-1]["InstanceRefreshId"] if more else None
    return ActionResult({"InstanceRefreshes": page, "NextToken": next_token})


def cancel_response(self):
    name = self._get_param("AutoScalingGroupName")
    return ActionResult({"InstanceRefreshId": self.autoscaling_backend.cancel_instance_refresh(name)})


def rollback_response(self):
    name = self._get_param("AutoScalingGroupName")
    return ActionResult({"InstanceRefreshId": self.autoscaling_backend.rollback_instance_refresh(name)})
