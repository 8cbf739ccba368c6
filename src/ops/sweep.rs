//! The backstop: nothing kiln launches outlives its build.
//!
//! It looks in this region and in every distribution region of the recipes
//! of the recipe root (where builds leave copies).
//!
//! A `Catch` in the build state machine does not run when an execution is
//! stopped, times out, or its definition is replaced. The sweep finds every
//! resource carrying a `kiln:build-id` tag (instances not terminated, images
//! and their snapshots) whose build is not running any more (its execution
//! ended) or is older than its recipe's longest build (running, or with no
//! execution on this state machine: a younger one may be another kiln's), and
//! cleans each such build up as an outside cleanup: tested images, images on
//! a channel or previous on one, and anything without kiln's tags are never
//! touched. Kiln's builder security groups (one per VPC, shared by builds) go
//! when nothing uses them and no build runs in their VPC (a build between
//! two instances holds none), unless a CloudFormation stack manages them.
//! Running it again finds nothing.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::Filter;
use aws_sdk_sfn::types::ExecutionStatus;
use serde::{Deserialize, Serialize};
use tracing::{info, instrument};

use crate::aws::sdk::Answer;
use crate::aws::{Context, executions, images, instances, network};
use crate::error::{Error, Result};
use crate::ids::{BuildId, RecipeName};
use crate::pipeline::build;
use crate::pipeline::cleanup::{self, Policy};
use crate::pipeline::state::{BuildInput, Cleanup};
use crate::recipe::Recipe;
use crate::tags;

/// One build the sweep cleaned up (or would, on a dry run).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweptBuild {
    /// The build.
    pub build_id: BuildId,
    /// Its recipe, from its resources' tags.
    pub recipe: Option<String>,
    /// Why it counts as over.
    pub why: String,
    /// What was removed (or would be).
    pub removed: Cleanup,
}

/// What a sweep did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sweep {
    /// Nothing was removed: the lists say what would go.
    pub dry_run: bool,
    /// The builds cleaned up.
    pub builds: Vec<SweptBuild>,
    /// Builds left alone because they are still running.
    pub running: Vec<BuildId>,
    /// Builds left alone because this state machine has no execution of them
    /// and they are younger than their longest build: perhaps another kiln's.
    pub unknown: Vec<BuildId>,
    /// Kiln builder security groups deleted (unused, no build running).
    pub security_groups: Vec<String>,
}

/// The detail of Step Functions' `Step Functions Execution Status Change`
/// event, as much of it as a cleanup needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionStatusChange {
    /// The execution.
    pub execution_arn: String,
    /// Its name: the build id.
    pub name: String,
    /// How it ended.
    #[serde(deserialize_with = "execution_status")]
    pub status: ExecutionStatus,
    /// Its input (a JSON string), naming the recipe.
    #[serde(default)]
    pub input: Option<String>,
}

fn execution_status<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<ExecutionStatus, D::Error> {
    String::deserialize(deserializer).map(|status| ExecutionStatus::from(status.as_str()))
}

/// Statuses of an execution that ended without its own cleanup having
/// necessarily run.
pub const ENDED_WITHOUT_CLEANUP: &[ExecutionStatus] = &[
    ExecutionStatus::Aborted,
    ExecutionStatus::TimedOut,
    ExecutionStatus::Failed,
];

/// Cleans up after a build whose execution ended `ABORTED`, `TIMED_OUT` or
/// `FAILED` (the event an EventBridge rule delivers): the build's instances,
/// its untested images and their snapshots. A failed build's own cleanup has
/// usually run already; running again changes nothing.
#[instrument(skip(ctx))]
pub async fn execution_ended(ctx: &Context, change: &ExecutionStatusChange) -> Result<SweptBuild> {
    if !ENDED_WITHOUT_CLEANUP.contains(&change.status) {
        let ended: Vec<&str> = ENDED_WITHOUT_CLEANUP
            .iter()
            .map(ExecutionStatus::as_str)
            .collect();
        return Err(Error::InvalidInput(format!(
            "execution {} is {}: only {} executions are cleaned up from outside",
            change.execution_arn,
            change.status.as_str(),
            ended.join(", ")
        )));
    }
    let build_id: BuildId = change.name.parse()?;
    let recipe = change
        .input
        .as_deref()
        .and_then(|input| serde_json::from_str::<BuildInput>(input).ok())
        .map(|input| input.recipe);
    let loaded = recipe.as_ref().and_then(|r| ctx.recipe(r).ok());
    let removed = cleanup::cleanup(ctx, &build_id, &Policy::outside_build(loaded.as_ref())).await?;
    Ok(SweptBuild {
        build_id,
        recipe: recipe.map(String::from),
        why: format!("its execution ended {}", change.status.as_str()),
        removed,
    })
}

/// A build that left something tagged behind: its recipe, when its oldest
/// resource was made, and the regions besides this one where it left some.
#[derive(Debug, Default)]
struct Traces {
    recipe: Option<String>,
    since: Option<jiff::Timestamp>,
    regions: BTreeSet<String>,
}

/// How long a build without a loadable recipe may run, for the sweep.
const DEFAULT_MAX_BUILD_SECONDS: u64 = 3 * 86_400;

/// Sweeps this account and region; see the module. The build state machine
/// (`Settings::state_machine_arn`) tells running builds from ended ones.
#[instrument(skip(ctx))]
pub async fn sweep(ctx: &Context, dry_run: bool) -> Result<Sweep> {
    let state_machine = build::state_machine(ctx)?;
    let mut report = Sweep {
        dry_run,
        builds: Vec::new(),
        running: Vec::new(),
        unknown: Vec::new(),
        security_groups: Vec::new(),
    };
    let mut found = BTreeMap::new();
    traces(ctx, None, &mut found).await?;
    for region in copy_regions(ctx) {
        traces(&ctx.in_region(&region), Some(&region), &mut found).await?;
    }
    for (build_id, traces) in found {
        let status = executions::status(ctx.sfn(), state_machine, build_id.as_str()).await?;
        let recipe = traces
            .recipe
            .as_deref()
            .and_then(|r| r.parse::<RecipeName>().ok())
            .and_then(|r| ctx.recipe(&r).ok());
        let overdue = overdue(recipe.as_ref(), traces.since);
        let why = match (&status, overdue) {
            (Some(status), _) if *status != ExecutionStatus::Running => {
                format!("its execution ended {}", status.as_str())
            }
            (_, Some(overdue)) => match status {
                Some(_) => format!("still running, but {overdue}"),
                None => format!("no execution of it on this state machine, and {overdue}"),
            },
            // Running, or perhaps another state machine's build: not yet.
            (Some(_), None) => {
                report.running.push(build_id);
                continue;
            }
            (None, None) => {
                report.unknown.push(build_id);
                continue;
            }
        };
        let mut policy = Policy::outside_build(recipe.as_ref());
        for region in &traces.regions {
            if !policy.copy_regions.contains(region) {
                policy.copy_regions.push(region.clone());
            }
        }
        let removed = if dry_run {
            cleanup::plan(ctx, &build_id, &policy).await?
        } else {
            cleanup::cleanup(ctx, &build_id, &policy).await?
        };
        if removed.terminated.is_empty()
            && removed.deregistered.is_empty()
            && removed.deleted_snapshots.is_empty()
            && removed.kept_failed.is_empty()
        {
            continue;
        }
        info!(%build_id, %why, ?removed, dry_run, "swept");
        report.builds.push(SweptBuild {
            build_id,
            recipe: traces.recipe,
            why,
            removed,
        });
    }
    if let Some(busy) = busy_vpcs(ctx, state_machine).await? {
        report.security_groups = network::unused_builder_groups(ctx, &busy).await?;
        if !dry_run {
            for group in &report.security_groups {
                network::delete_group(ctx, group).await?;
            }
        }
    }
    Ok(report)
}

/// Why a build counts as over whatever its execution says: its oldest
/// resource is older than its recipe's longest build (or three days when the
/// recipe does not load). A build whose age is unknown counts as over.
fn overdue(recipe: Option<&Recipe>, since: Option<jiff::Timestamp>) -> Option<String> {
    let limit = recipe.map_or(DEFAULT_MAX_BUILD_SECONDS, Recipe::max_build_seconds);
    let Some(since) = since else {
        return Some("its age is unknown".into());
    };
    let age = jiff::Timestamp::now().duration_since(since).as_secs();
    (age > i64::try_from(limit).unwrap_or(i64::MAX))
        .then(|| format!("it is {age} s old, more than its longest build ({limit} s)"))
}

/// The distribution regions of every recipe of the recipe root: where
/// builds leave copies.
fn copy_regions(ctx: &Context) -> BTreeSet<String> {
    ctx.recipes()
        .into_iter()
        .flat_map(|r| r.file.distribution.regions)
        .collect()
}

/// Adds to `found` every build with a live instance, an image or a snapshot
/// tagged with its id in `ctx`'s region (`region`, when not this one), with
/// its recipe and its earliest resource.
async fn traces(
    ctx: &Context,
    region: Option<&String>,
    found: &mut BTreeMap<BuildId, Traces>,
) -> Result<()> {
    let build_tag = || {
        Filter::builder()
            .name("tag-key")
            .values(tags::BUILD_ID)
            .build()
    };
    let mut note = |tags: &[aws_sdk_ec2::types::Tag], made: Option<jiff::Timestamp>| {
        let Some(build_id) = tags::value(tags, tags::BUILD_ID).and_then(|b| b.parse().ok()) else {
            return;
        };
        let traces: &mut Traces = found.entry(build_id).or_default();
        traces.regions.extend(region.cloned());
        if traces.recipe.is_none() {
            traces.recipe = tags::value(tags, tags::RECIPE).map(str::to_owned);
        }
        traces.since = match (traces.since, made) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    };
    let time = |t: Option<&aws_smithy_types::DateTime>| {
        t.and_then(|t| jiff::Timestamp::from_second(t.secs()).ok())
    };
    let mut pages = ctx
        .ec2()
        .describe_instances()
        .filters(build_tag())
        .filters(instances::live_state_filter())
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for instance in page
            .or_aws("DescribeInstances")?
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
        {
            note(instance.tags(), time(instance.launch_time()));
        }
    }
    for image in images::own(ctx, vec![build_tag()]).await? {
        let created = image.creation_date().and_then(|c| c.parse().ok());
        note(image.tags(), created);
    }
    for snapshot in images::own_snapshots(ctx, build_tag()).await? {
        note(snapshot.tags(), time(snapshot.start_time()));
    }
    Ok(())
}

/// The VPCs running builds launch into (from their recipes); `None` when
/// one of them cannot be told (its recipe does not load).
async fn busy_vpcs(ctx: &Context, state_machine: &str) -> Result<Option<BTreeSet<String>>> {
    let mut busy = BTreeSet::new();
    for execution in executions::running(ctx.sfn(), state_machine).await? {
        let recipe = execution
            .input
            .as_deref()
            .and_then(|input| serde_json::from_str::<BuildInput>(input).ok())
            .and_then(|input| ctx.recipe(&input.recipe).ok());
        let Some(recipe) = recipe else {
            return Ok(None);
        };
        let subnet = recipe.file.builder.subnet_id.as_deref();
        busy.insert(network::vpc_of(ctx, subnet).await?);
    }
    Ok(Some(busy))
}
