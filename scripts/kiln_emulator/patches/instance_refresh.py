"""Auto Scaling instance refreshes: moto's Auto Scaling has no instance
refreshes (StartInstanceRefresh, DescribeInstanceRefreshes,
CancelInstanceRefresh and RollbackInstanceRefresh answer 500). The patch adds
them (this module the model, instance_refresh_api.py the actions), with AWS's
shapes and errors, per account and region, advancing deterministically: each
DescribeInstanceRefreshes of a group first moves its active refresh one step.

Pending goes InProgress at 0%; the next step replaces half of the group's
InService instances (rounded up: they are terminated, and as many launched
from the desired configuration) at 50%; the next replaces the rest, and only
then does the group take the desired launch template and version
(Successful, 100%). While InProgress, an alarm of
Preferences.AlarmSpecification in state ALARM (CloudWatch SetAlarmState)
ends the refresh: with AutoRollback it goes RollbackInProgress, and the next
step sends the instances it launched back to the group's configuration
(terminated, as many launched from the group's own launch template version)
and ends RollbackSuccessful; without, Failed (the replaced instances stay).
RollbackInstanceRefresh does the same from Pending or InProgress. Cancelling
goes Cancelled, keeping what was replaced. RollbackDetails gives
PercentageComplete and InstancesToUpdate as they were when the rollback
started (AWS: "the value of InstancesToUpdate at the time the rollback
started", the instances the refresh had not yet updated).

As on AWS: a second refresh while one is active is InstanceRefreshInProgress;
Cancel without an active refresh or rollback is ActiveInstanceRefreshNotFound;
more than 10 alarms is a ValidationError (AWS's common error for an invalid
request; the documentation gives the limit, not the message). A rollback is
not supported when the refresh has no desired configuration, or when the
group's CURRENT launch template version has a Systems Manager parameter
(`resolve:ssm:...`) as its ImageId, or when the group uses the template's
`$Latest` or `$Default` version: AutoRollback is then refused at
StartInstanceRefresh with a ValidationError (for the empty desired
configuration the message AWS answers, "The request isn't valid. The
AutoRollback parameter cannot be set to true when the DesiredConfiguration
parameter is empty. ...", as quoted in terraform-provider-aws issue 29830;
the same wording for the others, for which the documentation gives no
message), and RollbackInstanceRefresh answers IrreversibleInstanceRefresh (with
the fault's documented description). AWS's
documentation says nothing of groups with a launch configuration: the patch
refuses their rollback too. A refresh that is already rolling back (or
cancelling, or ended) cannot be rolled back: the documentation allows a
rollback of a refresh "still in progress" only and names no error for the
others, so the patch answers ActiveInstanceRefreshNotFound, as for a group
with no refresh. Strategy, SkipMatching and the other preferences are echoed
back but not acted on; BakeTime never shows Baking.

AWS documentation:
  * Amazon EC2 Auto Scaling API Reference, StartInstanceRefresh:
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_StartInstanceRefresh.html
  * Amazon EC2 Auto Scaling API Reference, DescribeInstanceRefreshes:
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeInstanceRefreshes.html
  * Amazon EC2 Auto Scaling API Reference, CancelInstanceRefresh:
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_CancelInstanceRefresh.html
  * Amazon EC2 Auto Scaling API Reference, RollbackInstanceRefresh (when a
    rollback is not supported; IrreversibleInstanceRefresh):
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RollbackInstanceRefresh.html
  * Amazon EC2 Auto Scaling API Reference, InstanceRefresh (the statuses),
    RefreshPreferences (AutoRollback), AlarmSpecification ("up to 10
    alarms") and RollbackDetails:
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_InstanceRefresh.html
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_AlarmSpecification.html
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RollbackDetails.html
  * Amazon EC2 Auto Scaling User Guide, Use an instance refresh to update
    instances in an Auto Scaling group:
    https://docs.aws.amazon.com/autoscaling/ec2/userguide/asg-instance-refresh.html
  * Amazon EC2 Auto Scaling User Guide, Undo changes with a manual or auto
    rollback ("You can roll back an instance refresh that is still in
    progress"; the replaced instances go back to "the configuration that you
    last saved on the Auto Scaling group"):
    https://docs.aws.amazon.com/autoscaling/ec2/userguide/instance-refresh-rollback.html
"""

import copy

from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
from moto.autoscaling.models import AutoScalingBackend
from moto.autoscaling.responses import AutoScalingResponse
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.utils import utcnow
from moto.ec2.exceptions import EC2ClientError

ACTIVE = ("Pending", "InProgress", "Cancelling", "RollbackInProgress")
ROLLBACKABLE = ("Pending", "InProgress")
MAX_ALARMS = 10
DEFAULTS = {
    "MinHealthyPercentage": 90, "SkipMatching": False, "AutoRollback": False,
    "ScaleInProtectedInstances": "Ignore", "StandbyInstances": "Ignore",
}
IRREVERSIBLE = (
    "The request failed because a desired configuration was not found or an incompatible launch template"
    " (uses a Systems Manager parameter instead of an AMI ID) or launch template version ($Latest or"
    " $Default) is present on the Auto Scaling group."
)
# The group attributes its launch configuration lives in.
CONFIGURATION = (
    "ec2_launch_template", "launch_template_version", "provided_launch_template_version",
    "mixed_instances_policy", "launch_config", "launch_configuration_name",
)


class Refresh:
    """One instance refresh: `shown`, what DescribeInstanceRefreshes answers;
    `launched`, the instances it launched into the group so far."""

    def __init__(self, shown):
        self.shown = shown
        self.launched = []


# AutoScalingBackend.instance_refreshes holds a group's id -> its refreshes,
# newest first.


def group_refreshes(backend, name):
    if name not in backend.autoscaling_groups:
        raise ValidationError(f"AutoScalingGroup name not found - AutoScalingGroup '{name}' not found")
    group = backend.autoscaling_groups[name]
    return group, backend.instance_refreshes.setdefault(group._id, [])


def current_refresh(backend, name, statuses):
    group, refreshes = group_refreshes(backend, name)
    refresh = next((r for r in refreshes if r.shown["Status"] in statuses), None)
    if refresh is None:
        raise AutoscalingClientError(
            "ActiveInstanceRefreshNotFound",
            f"No in progress or pending Instance Refresh found for Auto Scaling group {name}",
        )
    return group, refresh


def desired_template(desired):
    """The launch template specification of a desired configuration."""
    mixed = (desired or {}).get("MixedInstancesPolicy") or {}
    return (desired or {}).get("LaunchTemplate") or mixed.get("LaunchTemplate", {}).get(
        "LaunchTemplateSpecification")


def rollback_blocker(backend, group, desired):
    """Why AWS does not roll `group` back from a refresh to `desired`, from the
    group's current configuration; None when it can."""
    if not desired:
        return "the DesiredConfiguration parameter is empty"
    if group.ec2_launch_template is None:
        return "the Auto Scaling group uses a launch configuration"
    version = group.launch_template_version
    if version.lower() in ("$latest", "$default"):
        return f"the Auto Scaling group uses the launch template's {version} version"
    try:
        template = backend.ec2_backend.get_launch_template(group.ec2_launch_template.id)
        image = template.get_version(version).data.get("ImageId", "")
    except EC2ClientError:
        return "the Auto Scaling group's launch template version no longer exists"
    if image.startswith("resolve:ssm:"):
        return "the Auto Scaling group's launch template uses a Systems Manager parameter as its ImageId"
    return None


def configure(group, desired):
    """Gives `group` the launch template (or mixed instances policy) of `desired`."""
    mixed = copy.deepcopy(desired.get("MixedInstancesPolicy"))
    group.launch_config = None
    group.launch_configuration_name = None
    group.mixed_instances_policy = mixed
    group._set_launch_configuration(None, copy.deepcopy(desired.get("LaunchTemplate")), mixed)


def replace(group, ids, desired=None):
    """Terminates the group's instances `ids` and launches as many from
    `desired` (the group's own configuration when None, which is left as it
    was); returns the ids launched."""
    ids = [s.instance.id for s in group.instance_states if s.instance.id in ids]
    if not ids:
        return []
    group.instance_states = [s for s in group.instance_states if s.instance.id not in ids]
    group.ec2_backend.terminate_instances(ids)
    before = {s.instance.id for s in group.instance_states}
    saved = {key: group.__dict__[key] for key in CONFIGURATION if key in group.__dict__}
    if desired:
        configure(group, desired)
    try:
        group.replace_autoscaling_group_instances(len(ids), group.get_propagated_tags())
    finally:
        for key in CONFIGURATION:
            group.__dict__.pop(key, None)
        group.__dict__.update(saved)
    group.autoscaling_backend.update_attached_elbs(group.name)
    group.autoscaling_backend.update_attached_target_groups(group.name)
    return [s.instance.id for s in group.instance_states if s.instance.id not in before]


def roll_back(refresh, reason):
    """Starts rolling `refresh` back: the next step returns what it launched."""
    shown = refresh.shown
    shown["Status"] = "RollbackInProgress"
    shown["RollbackDetails"] = {
        "RollbackReason": reason, "RollbackStartTime": utcnow(),
        "PercentageCompleteOnRollback": shown["PercentageComplete"],
        "InstancesToUpdateOnRollback": shown["InstancesToUpdate"],
    }


def in_alarm(backend, refresh):
    alarms = cloudwatch_backends[backend.account_id][backend.region_name].alarms
    names = refresh.shown["Preferences"].get("AlarmSpecification", {}).get("Alarms", [])
    return next((n for n in names if n in alarms and alarms[n].state_value == "ALARM"), None)


def advance(backend, group, refresh):
    """One deterministic step of an active refresh."""
    shown = refresh.shown
    status, desired = shown["Status"], shown["DesiredConfiguration"]
    alarm = status == "InProgress" and in_alarm(backend, refresh)
    if status == "Pending":
        shown["Status"] = "InProgress"
    elif alarm:
        reason = f"The instance refresh failed because alarm {alarm} went into ALARM state."
        if shown["Preferences"]["AutoRollback"]:
            roll_back(refresh, reason)
            shown["StatusReason"] = f"{reason} The Auto Scaling group is rolled back to its previous configuration."
        else:
            shown.update(Status="Failed", StatusReason=reason, EndTime=utcnow())
    elif status == "InProgress":
        old = [s.instance.id for s in group.active_instances() if s.instance.id not in refresh.launched]
        if shown["PercentageComplete"] < 50:
            half = (len(old) + 1) // 2
            refresh.launched += replace(group, old[:half], desired)
            shown.update(PercentageComplete=50, InstancesToUpdate=len(old) - half)
        else:
            refresh.launched += replace(group, old, desired)
            if desired:
                configure(group, desired)
            shown.update(Status="Successful", PercentageComplete=100, InstancesToUpdate=0, EndTime=utcnow())
    elif status == "RollbackInProgress":
        replace(group, refresh.launched)
        refresh.launched = []
        shown.update(Status="RollbackSuccessful", EndTime=utcnow())
    else:  # Cancelling
        shown.update(Status="Cancelled", EndTime=utcnow())


def apply():
    """Model Auto Scaling instance refreshes."""
    from . import instance_refresh_api as api

    backend_init = AutoScalingBackend.__init__

    def with_refreshes(self, *args, **kwargs):
        backend_init(self, *args, **kwargs)
        self.instance_refreshes = {}

    AutoScalingBackend.__init__ = with_refreshes
    AutoScalingBackend.start_instance_refresh = api.start_instance_refresh
    AutoScalingBackend.describe_instance_refreshes = api.describe_instance_refreshes
    AutoScalingBackend.cancel_instance_refresh = api.cancel_instance_refresh
    AutoScalingBackend.rollback_instance_refresh = api.rollback_instance_refresh
    AutoScalingResponse.start_instance_refresh = api.start_response
    AutoScalingResponse.describe_instance_refreshes = api.describe_response
    AutoScalingResponse.cancel_instance_refresh = api.cancel_response
    AutoScalingResponse.rollback_instance_refresh = api.rollback_response
