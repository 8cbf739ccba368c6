"""Auto Scaling instance refreshes: moto's Auto Scaling has no instance
refreshes (StartInstanceRefresh, DescribeInstanceRefreshes,
CancelInstanceRefresh and RollbackInstanceRefresh answer 500). The patch adds
them, with AWS's shapes and errors, per account and region, advancing
deterministically: each DescribeInstanceRefreshes of a group first moves its
active refresh one step. Pending goes InProgress at 0%, then 50%, then
Successful at 100%: the group takes the desired launch template and version,
and every InService instance is replaced by one launched from it. While
InProgress, an alarm of Preferences.AlarmSpecification in state ALARM
(CloudWatch SetAlarmState) ends the refresh: RollbackSuccessful with
AutoRollback (the group keeps its configuration and instances), otherwise
Failed. Cancelling goes Cancelled, RollbackInProgress goes
RollbackSuccessful. As on AWS, a second refresh while one is active is
InstanceRefreshInProgress, Cancel and Rollback without an active refresh are
ActiveInstanceRefreshNotFound, and AutoRollback (or a Rollback) needs a
desired launch template version other than `$Latest` or `$Default`.
Strategy, MixedInstancesPolicy and the other preferences are echoed back but
not acted on; BakeTime never shows Baking.

AWS documentation:
  * Amazon EC2 Auto Scaling API Reference, StartInstanceRefresh:
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_StartInstanceRefresh.html
  * Amazon EC2 Auto Scaling API Reference, DescribeInstanceRefreshes:
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeInstanceRefreshes.html
  * Amazon EC2 Auto Scaling API Reference, CancelInstanceRefresh:
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_CancelInstanceRefresh.html
  * Amazon EC2 Auto Scaling API Reference, RollbackInstanceRefresh:
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RollbackInstanceRefresh.html
  * Amazon EC2 Auto Scaling API Reference, InstanceRefresh (the statuses) and
    RefreshPreferences (AutoRollback, AlarmSpecification):
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_InstanceRefresh.html
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html
  * Amazon EC2 Auto Scaling User Guide, Use an instance refresh to update
    instances in an Auto Scaling group:
    https://docs.aws.amazon.com/autoscaling/ec2/userguide/asg-instance-refresh.html
  * Amazon EC2 Auto Scaling User Guide, Undo changes with a manual or auto
    rollback:
    https://docs.aws.amazon.com/autoscaling/ec2/userguide/instance-refresh-rollback.html
"""

import uuid

from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
from moto.autoscaling.models import AutoScalingBackend
from moto.autoscaling.responses import AutoScalingResponse
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.exceptions import EC2ClientError

ACTIVE = ("Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking")
DEFAULTS = {
    "MinHealthyPercentage": 90, "SkipMatching": False, "AutoRollback": False,
    "ScaleInProtectedInstances": "Ignore", "StandbyInstances": "Ignore",
}


# The backend: AutoScalingBackend.instance_refreshes holds a group's id ->
# its refreshes, newest first.


def group_refreshes(backend, name):
    if name not in backend.autoscaling_groups:
        raise ValidationError(f"AutoScalingGroup name not found - AutoScalingGroup '{name}' not found")
    group = backend.autoscaling_groups[name]
    return group, backend.instance_refreshes.setdefault(group._id, [])


def active_refresh(backend, name):
    group, refreshes = group_refreshes(backend, name)
    refresh = next((r for r in refreshes if r["Status"] in ACTIVE), None)
    if refresh is None:
        raise AutoscalingClientError(
            "ActiveInstanceRefreshNotFound",
            f"No in progress or pending Instance Refresh found for Auto Scaling group {name}",
        )
    return group, refresh


def reversible(desired):
    """AWS rolls back only to a desired configuration of a fixed version."""
    spec = (desired or {}).get("LaunchTemplate")
    return bool(desired) and not (spec and spec.get("Version", "$Default") in ("$Latest", "$Default"))


def start_instance_refresh(self, name, strategy, desired, preferences):
    group, refreshes = group_refreshes(self, name)
    if any(r["Status"] in ACTIVE for r in refreshes):
        raise AutoscalingClientError(
            "InstanceRefreshInProgress",
            "An Instance Refresh is already in progress and blocks the execution of this Instance Refresh.",
        )
    spec = (desired or {}).get("LaunchTemplate")
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
    if preferences["AutoRollback"] and not reversible(desired):
        raise ValidationError(
            "AutoRollback needs a DesiredConfiguration whose launch template version is"
            " neither $Latest nor $Default."
        )
    refresh = {
        "InstanceRefreshId": str(uuid.uuid4()), "AutoScalingGroupName": name, "Status": "Pending",
        "StartTime": utcnow(), "PercentageComplete": 0, "InstancesToUpdate": len(group.instance_states),
        "Preferences": preferences, "DesiredConfiguration": desired, "Strategy": strategy or "Rolling",
    }
    refreshes.insert(0, refresh)
    return refresh["InstanceRefreshId"]


def roll_back(group, refresh, status, reason):
    """The instances replaced so far go back to the group's configuration."""
    refresh["Status"] = status
    refresh["RollbackDetails"] = {
        "RollbackReason": reason, "RollbackStartTime": utcnow(),
        "PercentageCompleteOnRollback": refresh["PercentageComplete"],
        "InstancesToUpdateOnRollback": max(len(group.instance_states) - refresh["InstancesToUpdate"], 0),
    }


def in_alarm(backend, refresh):
    alarms = cloudwatch_backends[backend.account_id][backend.region_name].alarms
    names = refresh["Preferences"].get("AlarmSpecification", {}).get("Alarms", [])
    return next((n for n in names if n in alarms and alarms[n].state_value == "ALARM"), None)


def advance(backend, group, refresh):
    """One deterministic step of an active refresh."""
    status, total = refresh["Status"], refresh["InstancesToUpdate"]
    alarm = status == "InProgress" and in_alarm(backend, refresh)
    if status == "Pending":
        refresh["Status"] = "InProgress"
    elif alarm:
        reason = f"The instance refresh failed because alarm {alarm} went into ALARM state."
        if refresh["Preferences"]["AutoRollback"]:
            roll_back(group, refresh, "RollbackSuccessful", reason)
            reason = f"{reason} The Auto Scaling group was rolled back to its previous configuration."
        else:
            refresh["Status"] = "Failed"
        refresh.update(StatusReason=reason, EndTime=utcnow())
    elif status == "InProgress" and refresh["PercentageComplete"] < 50:
        refresh.update(PercentageComplete=50, InstancesToUpdate=total - total // 2)
    elif status == "InProgress":
        spec = (refresh["DesiredConfiguration"] or {}).get("LaunchTemplate")
        if spec:
            group._set_launch_configuration(None, spec, None)
        replaced = [state.instance.id for state in group.active_instances()]
        if replaced:
            backend.ec2_backend.terminate_instances(replaced)
            backend.notify_terminate_instances(replaced)  # launches their replacements
        refresh.update(Status="Successful", PercentageComplete=100, InstancesToUpdate=0, EndTime=utcnow())
    else:  # Cancelling, RollbackInProgress
        ended = "Cancelled" if status == "Cancelling" else "RollbackSuccessful"
        refresh.update(Status=ended, EndTime=utcnow())


def describe_instance_refreshes(self, name, ids):
    group, refreshes = group_refreshes(self, name)
    for refresh in refreshes:
        if refresh["Status"] in ACTIVE:
            advance(self, group, refresh)
    return [r for r in refreshes if not ids or r["InstanceRefreshId"] in ids]


def cancel_instance_refresh(self, name):
    _, refresh = active_refresh(self, name)
    refresh["Status"] = "Cancelling"
    return refresh["InstanceRefreshId"]


def rollback_instance_refresh(self, name):
    group, refresh = active_refresh(self, name)
    if not reversible(refresh["DesiredConfiguration"]):
        raise AutoscalingClientError(
            "IrreversibleInstanceRefresh",
            "The instance refresh has no desired configuration of a fixed launch template version"
            " to roll back from.",
        )
    roll_back(group, refresh, "RollbackInProgress", "Rollback initiated by user.")
    return refresh["InstanceRefreshId"]


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
        raise AutoscalingClientError("InvalidNextToken", "The token is not valid.")
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


def apply():
    """Model Auto Scaling instance refreshes."""
    backend_init = AutoScalingBackend.__init__

    def with_refreshes(self, *args, **kwargs):
        backend_init(self, *args, **kwargs)
        self.instance_refreshes = {}

    AutoScalingBackend.__init__ = with_refreshes
    AutoScalingBackend.start_instance_refresh = start_instance_refresh
    AutoScalingBackend.describe_instance_refreshes = describe_instance_refreshes
    AutoScalingBackend.cancel_instance_refresh = cancel_instance_refresh
    AutoScalingBackend.rollback_instance_refresh = rollback_instance_refresh
    AutoScalingResponse.start_instance_refresh = start_response
    AutoScalingResponse.describe_instance_refreshes = describe_response
    AutoScalingResponse.cancel_instance_refresh = cancel_response
    AutoScalingResponse.rollback_instance_refresh = rollback_response
