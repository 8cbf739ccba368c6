//! The Auto Scaling groups a channel rolls to, and their instance refreshes.
//!
//! A group opts in with the tags `kiln:recipe=<recipe>` and
//! `kiln:channel=<channel>`; `kiln:wave` orders groups into waves (0-99,
//! lower first, default 1: tag a canary 0). Rolling a group means a new
//! version of its launch template whose image is the literal AMI id (an
//! instance refresh cannot roll back from `resolve:ssm:` or `$Latest`: see
//! [`rollable`]), then an instance refresh to that version with
//! checkpoints, auto rollback, and the channel's alarms as its alarm
//! specification. A recipe's groups are in the build region and in each of
//! its distribution regions ([`regions`]): a group or refresh carries its
//! region, and each call about it is made there.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use aws_sdk_autoscaling::types::{
    AlarmSpecification, AutoScalingGroup, Filter, InstanceRefreshStatus, RefreshPreferences,
    RefreshStrategy,
};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::templates::{Template, kiln_image, template, template_image, version_for};
use crate::aws::Context;
use crate::aws::sdk::{self, Answer};
use crate::channels::pointers::RESOLVE_SSM;
use crate::channels::regional;
use crate::error::{Error, Result};
use crate::ids::{AmiId, Channel, RecipeName};
use crate::tags;

/// The wave of a group with no `kiln:wave` tag.
pub const DEFAULT_WAVE: u32 = 1;
/// The highest `kiln:wave`.
pub const MAX_WAVE: u32 = 99;
/// Instance refresh checkpoints: the refresh pauses at each (percent of the
/// group replaced) for [`CHECKPOINT_DELAY_SECONDS`], so the alarms see the
/// new image serve before the rest of the group gets it.
pub const CHECKPOINTS: [i32; 2] = [50, 100];
/// Seconds a refresh waits at each checkpoint.
pub const CHECKPOINT_DELAY_SECONDS: i32 = 300;
/// Share of a group that stays in service while it is refreshed.
pub const MIN_HEALTHY_PERCENT: i32 = 90;

/// An opted-in Auto Scaling group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// The group's name.
    pub name: String,
    /// Its region, when a distribution region (none: the build region).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The channel it follows (`kiln:channel`).
    pub channel: Option<Channel>,
    /// Its wave.
    pub wave: u32,
    /// Its launch template, or why kiln cannot roll it.
    pub template: std::result::Result<Template, String>,
    /// Instances in service or on their way.
    pub instances: usize,
}

/// One group's instance refresh to a new image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refresh {
    /// The group.
    pub group: String,
    /// The group's region, when a distribution region (none: the build
    /// region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The refresh's id.
    pub refresh_id: String,
    /// The launch template version it rolls to.
    pub version: String,
    /// Its status as Auto Scaling last reported it.
    pub status: String,
    /// How much of the group it has replaced.
    #[serde(default)]
    pub percent: Option<i32>,
    /// Auto Scaling's reason for the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// The version the group used before, which a revert returns it to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<String>,
}

/// How a refresh stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Still going.
    Running,
    /// Every instance is on the new configuration.
    Succeeded,
    /// Ended without the new configuration (failed, cancelled, rolled back).
    Failed,
}

impl Refresh {
    /// Where the refresh stands, from its last reported status.
    pub fn progress(&self) -> Progress {
        match InstanceRefreshStatus::from(self.status.as_str()) {
            InstanceRefreshStatus::Successful => Progress::Succeeded,
            InstanceRefreshStatus::Failed
            | InstanceRefreshStatus::Cancelled
            | InstanceRefreshStatus::RollbackFailed
            | InstanceRefreshStatus::RollbackSuccessful => Progress::Failed,
            _ => Progress::Running,
        }
    }
}

/// The regions a recipe's groups roll in, in order: the build region
/// (`None`), then each distribution region, in the recipe's order.
pub fn regions(ctx: &Context, recipe: &RecipeName) -> Vec<Option<String>> {
    std::iter::once(None)
        .chain(regional::regions(ctx, recipe).into_iter().map(Some))
        .collect()
}

/// `ctx` in `region` (none: the build region, `ctx` itself).
pub fn at(ctx: &Context, region: Option<&str>) -> Context {
    region.map_or_else(|| ctx.clone(), |region| ctx.in_region(region))
}

/// Every group tagged for `recipe` (and `channel`, when given), in every
/// region it rolls in ([`regions`]), region by region, by name.
pub async fn everywhere(
    ctx: &Context,
    recipe: &RecipeName,
    channel: Option<&Channel>,
) -> Result<Vec<Group>> {
    let mut found = Vec::new();
    for region in regions(ctx, recipe) {
        found.extend(groups(ctx, region.as_deref(), recipe, channel).await?);
    }
    Ok(found)
}

/// Every group tagged for `recipe` (and `channel`, when given) in `region`
/// (none: the build region), by name.
pub async fn groups(
    ctx: &Context,
    region: Option<&str>,
    recipe: &RecipeName,
    channel: Option<&Channel>,
) -> Result<Vec<Group>> {
    let there = at(ctx, region);
    let filter = |key: &str, value: &str| {
        Filter::builder()
            .name(format!("tag:{key}"))
            .values(value)
            .build()
    };
    let mut request = there
        .autoscaling()
        .describe_auto_scaling_groups()
        .filters(filter(tags::RECIPE, recipe.as_str()));
    if let Some(channel) = channel {
        request = request.filters(filter(tags::CHANNEL, channel.as_str()));
    }
    let pages = request.into_paginator().items().send();
    let mut groups: Vec<Group> = sdk::all(pages, "DescribeAutoScalingGroups")
        .await?
        .iter()
        .map(|found| group(found, region))
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(groups)
}

/// `groups` in waves, lowest first.
pub fn waves(groups: Vec<Group>) -> BTreeMap<u32, Vec<Group>> {
    let mut waves: BTreeMap<u32, Vec<Group>> = BTreeMap::new();
    for group in groups {
        waves.entry(group.wave).or_default().push(group);
    }
    waves
}

fn group(found: &AutoScalingGroup, region: Option<&str>) -> Group {
    let tag = |key: &str| {
        found
            .tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value())
    };
    let wave = match tag(tags::WAVE).map(str::parse::<u32>) {
        None => Ok(DEFAULT_WAVE),
        Some(Ok(wave)) if wave <= MAX_WAVE => Ok(wave),
        Some(_) => Err(format!(
            "{} must be a number from 0 to {MAX_WAVE}",
            tags::WAVE
        )),
    };
    let template = wave.clone().and_then(|_| template(found));
    Group {
        name: found
            .auto_scaling_group_name()
            .unwrap_or_default()
            .to_owned(),
        region: region.map(str::to_owned),
        channel: tag(tags::CHANNEL).and_then(|c| c.parse().ok()),
        wave: wave.unwrap_or(DEFAULT_WAVE),
        template,
        instances: found.instances().len(),
    }
}

/// The template kiln rolls `group` with, or why it cannot: no launch
/// template at a version number (see `group`), or a version that takes
/// its image from a Systems Manager parameter: Auto Scaling rolls no
/// instance refresh back (auto or manual) when the group's current version
/// does (Amazon EC2 Auto Scaling User Guide, "Undo changes with a manual or
/// auto rollback"; RollbackInstanceRefresh API reference). The reason says
/// how to fix it.
pub async fn rollable<'g>(
    ctx: &Context,
    group: &'g Group,
) -> Result<std::result::Result<&'g Template, String>> {
    let template = match &group.template {
        Ok(template) => template,
        Err(why) => return Ok(Err(why.clone())),
    };
    let there = at(ctx, group.region.as_deref());
    let image = template_image(&there, template).await?.unwrap_or_default();
    let Some(parameter) = image.strip_prefix(RESOLVE_SSM) else {
        return Ok(Ok(template));
    };
    let which = match (&template.id, &template.name) {
        (Some(id), _) => format!("--launch-template-id {id}"),
        (None, name) => format!("--launch-template-name {}", name.as_deref().unwrap_or("")),
    };
    let version = &template.version;
    Ok(Err(format!(
        "its launch template version {version} takes its image from {image}, and Auto Scaling \
         cannot roll an instance refresh back from such a version; give the group a version \
         with the AMI id (kiln writes each later version with the id itself): \
         aws ec2 create-launch-template-version {which} --source-version {version} \
         --launch-template-data \"{{\\\"ImageId\\\":\\\"$(aws ssm get-parameter --name {parameter} \
         --query Parameter.Value --output text)\\\"}}\", then set the group to the new version"
    )))
}

/// Starts rolling `group` to `image` (an image of the group's region): a
/// launch template version with the image, then an instance refresh to it,
/// with `alarms` (of the group's region) as its alarm specification. A
/// refresh to that version already running (a retried step) is taken over;
/// any other running refresh is an error naming it.
pub async fn start(
    ctx: &Context,
    group: &Group,
    image: &AmiId,
    channel: &Channel,
    alarms: &[String],
) -> Result<Refresh> {
    let template = rollable(ctx, group)
        .await?
        .map_err(|reason| Error::RolloutBlocked {
            group: group.name.clone(),
            reason,
        })?;
    let ctx = &at(ctx, group.region.as_deref());
    let version = version_for(ctx, template, image, channel).await?;
    let mut preferences = RefreshPreferences::builder()
        .auto_rollback(true)
        .set_checkpoint_percentages(Some(CHECKPOINTS.to_vec()))
        .checkpoint_delay(CHECKPOINT_DELAY_SECONDS);
    if !alarms.is_empty() {
        preferences = preferences.alarm_specification(
            AlarmSpecification::builder()
                .set_alarms(Some(alarms.to_vec()))
                .build(),
        );
    }
    let Some(refresh) = refresh_to(ctx, &group.name, template, &version, preferences).await? else {
        return match latest(ctx, &group.name).await? {
            Some(ours) if ours.version == version => Ok(Refresh {
                region: group.region.clone(),
                from_version: Some(template.version.clone()),
                ..ours
            }),
            _ => Err(Error::RolloutBlocked {
                group: group.name.clone(),
                reason: "another instance refresh is in progress on it".into(),
            }),
        };
    };
    Ok(Refresh {
        region: group.region.clone(),
        from_version: Some(template.version.clone()),
        ..refresh
    })
}

/// Why `group` must wait before it rolls to `image`: a refresh kiln started
/// for another image (another release's) still runs on it. `None` when it
/// may start (a refresh of someone else's is refused by [`start`]).
pub async fn busy(ctx: &Context, group: &Group, image: &AmiId) -> Result<Option<String>> {
    let ctx = &at(ctx, group.region.as_deref());
    let (Ok(template), Some(running)) = (&group.template, latest(ctx, &group.name).await?) else {
        return Ok(None);
    };
    if running.progress() != Progress::Running {
        return Ok(None);
    }
    Ok(kiln_image(ctx, template, &running.version)
        .await?
        .filter(|other| other != image.as_str())
        .map(|other| {
            format!(
                "kiln's refresh of group {} to {other} (launch template version {}) is {} at \
                 {}%; it runs to its end first",
                group.name,
                running.version,
                running.status,
                running.percent.unwrap_or_default()
            )
        }))
}

/// Sends every group of `rolled` (refreshes that succeeded) back to the
/// version it used before, with a refresh of its own (no alarms: the
/// alarms are why it goes back). A group kiln can no longer roll, or one
/// with a refresh running, is left as it is. Returns the refreshes started.
pub async fn revert(
    ctx: &Context,
    recipe: &RecipeName,
    channel: &Channel,
    rolled: &[Refresh],
) -> Result<Vec<Refresh>> {
    let mut current = BTreeMap::new();
    let mut started = Vec::new();
    for refresh in rolled {
        let region = refresh.region.as_deref();
        if let Entry::Vacant(entry) = current.entry(region) {
            entry.insert(groups(ctx, region, recipe, Some(channel)).await?);
        }
        let group = current[&region].iter().find(|g| g.name == refresh.group);
        let (Some(from), Some(Ok(template))) = (
            refresh.from_version.as_deref(),
            group.map(|g| g.template.as_ref()),
        ) else {
            continue;
        };
        if let Some(back) = refresh_to(
            &at(ctx, region),
            &refresh.group,
            template,
            from,
            RefreshPreferences::builder(),
        )
        .await?
        {
            started.push(Refresh {
                region: refresh.region.clone(),
                from_version: Some(refresh.version.clone()),
                ..back
            });
        }
    }
    Ok(started)
}

/// Starts a refresh of `group` to `version` of its template, with kiln's
/// usual preferences on top of `preferences`; `None` when a refresh is
/// running already.
async fn refresh_to(
    ctx: &Context,
    group: &str,
    template: &Template,
    version: &str,
    preferences: aws_sdk_autoscaling::types::builders::RefreshPreferencesBuilder,
) -> Result<Option<Refresh>> {
    let started = ctx
        .autoscaling()
        .start_instance_refresh()
        .auto_scaling_group_name(group)
        .strategy(RefreshStrategy::Rolling)
        .desired_configuration(template.desired(version))
        .preferences(
            preferences
                .skip_matching(true)
                .min_healthy_percentage(MIN_HEALTHY_PERCENT)
                .build(),
        )
        .send()
        .await
        .or_missing("StartInstanceRefresh", |err| {
            err.as_service_error()
                .is_some_and(|e| e.is_instance_refresh_in_progress_fault())
        })?;
    let Some(started) = started else {
        return Ok(None);
    };
    let refresh_id = started.instance_refresh_id().unwrap_or_default().to_owned();
    info!(%group, %refresh_id, %version, "instance refresh started");
    Ok(Some(Refresh {
        group: group.to_owned(),
        region: None,
        refresh_id,
        version: version.to_owned(),
        status: InstanceRefreshStatus::Pending.as_str().to_owned(),
        percent: Some(0),
        status_reason: None,
        from_version: None,
    }))
}

/// The refresh as Auto Scaling reports it now.
pub async fn track(ctx: &Context, refresh: &Refresh) -> Result<Refresh> {
    let found = at(ctx, refresh.region.as_deref())
        .autoscaling()
        .describe_instance_refreshes()
        .auto_scaling_group_name(&refresh.group)
        .instance_refresh_ids(&refresh.refresh_id)
        .send()
        .await
        .or_aws("DescribeInstanceRefreshes")?;
    let found = found
        .instance_refreshes()
        .first()
        .ok_or_else(|| Error::Aws {
            operation: "DescribeInstanceRefreshes",
            code: "NotFound".into(),
            message: format!(
                "group {} has no instance refresh {}",
                refresh.group, refresh.refresh_id
            ),
        })?;
    Ok(Refresh {
        region: refresh.region.clone(),
        from_version: refresh.from_version.clone(),
        ..reported(&refresh.group, found, refresh.version.clone())
    })
}

/// The newest refresh of group `group` of `ctx`'s region, if it has one.
pub async fn latest(ctx: &Context, group: &str) -> Result<Option<Refresh>> {
    let found = ctx
        .autoscaling()
        .describe_instance_refreshes()
        .auto_scaling_group_name(group)
        .max_records(1)
        .send()
        .await
        .or_aws("DescribeInstanceRefreshes")?;
    Ok(found.instance_refreshes().first().map(|r| {
        let version = r
            .desired_configuration()
            .and_then(|d| {
                d.launch_template().or_else(|| {
                    d.mixed_instances_policy()
                        .and_then(|m| m.launch_template())
                        .and_then(|t| t.launch_template_specification())
                })
            })
            .and_then(|s| s.version())
            .unwrap_or_default()
            .to_owned();
        reported(group, r, version)
    }))
}

fn reported(
    group: &str,
    found: &aws_sdk_autoscaling::types::InstanceRefresh,
    version: String,
) -> Refresh {
    Refresh {
        group: group.to_owned(),
        region: None,
        refresh_id: found.instance_refresh_id().unwrap_or_default().to_owned(),
        version,
        status: found
            .status()
            .map_or("Unknown", InstanceRefreshStatus::as_str)
            .to_owned(),
        percent: found.percentage_complete(),
        status_reason: found.status_reason().map(str::to_owned),
        from_version: None,
    }
}

/// Rolls back a refresh still running (Auto Scaling returns the instances it
/// replaced); one already ended is left as it is. Returns whether it asked.
pub async fn roll_back(ctx: &Context, refresh: &Refresh) -> Result<bool> {
    if refresh.progress() != Progress::Running {
        return Ok(false);
    }
    let asked = at(ctx, refresh.region.as_deref())
        .autoscaling()
        .rollback_instance_refresh()
        .auto_scaling_group_name(&refresh.group)
        .send()
        .await
        .or_missing("RollbackInstanceRefresh", |err| {
            err.as_service_error().is_some_and(|e| {
                e.is_active_instance_refresh_not_found_fault()
                    || e.is_irreversible_instance_refresh_fault()
            })
        })?;
    Ok(asked.is_some())
}

/// Cancels `group`'s running refresh, if it has one. Returns its id.
pub async fn cancel(ctx: &Context, group: &Group) -> Result<Option<String>> {
    let cancelled = at(ctx, group.region.as_deref())
        .autoscaling()
        .cancel_instance_refresh()
        .auto_scaling_group_name(&group.name)
        .send()
        .await
        .or_missing("CancelInstanceRefresh", |err| {
            err.as_service_error()
                .is_some_and(|e| e.is_active_instance_refresh_not_found_fault())
        })?;
    Ok(cancelled.and_then(|out| out.instance_refresh_id))
}
