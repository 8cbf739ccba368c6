//! The backstop: nothing kiln launches outlives its build.
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
use serde::{Deserialize, Serialize};
use tracing::{info, instrument};

use crate::aws::Context;
use crate::cleanup::{self, Policy};
use crate::error::{Error, Result};
use crate::state::{BuildId, BuildInput, Cleanup, RecipeName};
use crate::tags::{self, Role};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionStatusChange {
    /// The execution.
    pub execution_arn: String,
    /// Its name: the build id.
    pub name: String,
    /// How it ended.
    pub status: String,
    /// Its input (a JSON string), naming the recipe.
    #[serde(default)]
    pub input: Option<String>,
}

/// Statuses of an execution that ended without its own cleanup having
/// necessarily run.
pub const ENDED_WITHOUT_CLEANUP: &[&str] = &["ABORTED", "TIMED_OUT", "FAILED"];

/// Cleans up after a build whose execution ended `ABORTED`, `TIMED_OUT` or
/// `FAILED` (the event an EventBridge rule delivers): the build's instances,
/// its untested images and their snapshots. A failed build's own cleanup has
/// usually run already; running again changes nothing.
#[instrument(skip(ctx))]
pub async fn execution_ended(ctx: &Context, change: &ExecutionStatusChange) -> Result<SweptBuild> {
    if !ENDED_WITHOUT_CLEANUP.contains(&change.status.as_str()) {
        return Err(Error::InvalidInput(format!(
            "execution {} is {}: only {} executions are cleaned up from outside",
            change.execution_arn,
            change.status,
            ENDED_WITHOUT_CLEANUP.join(", ")
        )));
    }
    let build_id: BuildId = change.name.parse()?;
    let recipe = change
        .input
        .as_deref()
        .and_then(|input| serde_json::from_str::<BuildInput>(input).ok())
        .map(|input| input.recipe);
    let loaded = recipe.as_ref().and_then(|r| ctx.recipe(r).ok());
    let removed = cleanup::cleanup(ctx, &build_id, Policy::outside_build(loaded.as_ref())).await?;
    Ok(SweptBuild {
        build_id,
        recipe: recipe.map(String::from),
        why: format!("its execution ended {}", change.status),
        removed,
    })
}

/// A build that left something tagged behind: its recipe, and when its
/// oldest resource was made.
#[derive(Debug, Default)]
struct Traces {
    recipe: Option<String>,
    since: Option<jiff::Timestamp>,
}

/// How long a build without a loadable recipe may run, for the sweep.
const DEFAULT_MAX_BUILD_SECONDS: u64 = 3 * 86_400;

/// Sweeps this account and region; see the module. The build state machine
/// (`Settings::state_machine_arn`) tells running builds from ended ones.
#[instrument(skip(ctx))]
pub async fn sweep(ctx: &Context, dry_run: bool) -> Result<Sweep> {
    let state_machine = ctx.settings.state_machine_arn.as_deref().ok_or_else(|| {
        Error::InvalidInput(
            "the sweep needs the build state machine (KILN_STATE_MACHINE_ARN) to tell running builds from ended ones".into(),
        )
    })?;
    let mut report = Sweep {
        dry_run,
        builds: Vec::new(),
        running: Vec::new(),
        unknown: Vec::new(),
        security_groups: Vec::new(),
    };
    for (build_id, traces) in traces(ctx).await? {
        let status = crate::execution::status(&ctx.sfn, state_machine, &build_id).await?;
        let recipe = traces
            .recipe
            .as_deref()
            .and_then(|r| r.parse::<RecipeName>().ok())
            .and_then(|r| ctx.recipe(&r).ok());
        let overdue = overdue(recipe.as_ref(), traces.since);
        let why = match (status.as_deref(), overdue) {
            (Some(status), _) if status != "RUNNING" => format!("its execution ended {status}"),
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
        let policy = Policy::outside_build(recipe.as_ref());
        let removed = if dry_run {
            cleanup::plan(ctx, &build_id, policy).await?
        } else {
            cleanup::cleanup(ctx, &build_id, policy).await?
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
        report.security_groups = unused_groups(ctx, &busy).await?;
        if !dry_run {
            for group in &report.security_groups {
                delete_group(ctx, group).await?;
            }
        }
    }
    Ok(report)
}

/// Why a build counts as over whatever its execution says: its oldest
/// resource is older than its recipe's longest build (or three days when the
/// recipe does not load). A build whose age is unknown counts as over.
fn overdue(
    recipe: Option<&crate::recipe::Recipe>,
    since: Option<jiff::Timestamp>,
) -> Option<String> {
    let limit = recipe.map_or(
        DEFAULT_MAX_BUILD_SECONDS,
        crate::recipe::Recipe::max_build_seconds,
    );
    let Some(since) = since else {
        return Some("its age is unknown".into());
    };
    let age = jiff::Timestamp::now().duration_since(since).as_secs();
    (age > i64::try_from(limit).unwrap_or(i64::MAX))
        .then(|| format!("it is {age} s old, more than its longest build ({limit} s)"))
}

/// Every build with a live instance, an image or a snapshot tagged with its
/// id, with its recipe and its earliest instance launch.
async fn traces(ctx: &Context) -> Result<BTreeMap<BuildId, Traces>> {
    let mut found: BTreeMap<BuildId, Traces> = BTreeMap::new();
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
        .ec2
        .describe_instances()
        .filters(build_tag())
        .filters(crate::builder::live_state_filter())
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| Error::aws("DescribeInstances", err))?;
        for instance in page.reservations().iter().flat_map(|r| r.instances()) {
            note(instance.tags(), time(instance.launch_time()));
        }
    }
    let images = ctx
        .ec2
        .describe_images()
        .owners("self")
        .filters(build_tag())
        .send()
        .await
        .map_err(|err| Error::aws("DescribeImages", err))?;
    for image in images.images() {
        let created = image.creation_date().and_then(|c| c.parse().ok());
        note(image.tags(), created);
    }
    let mut pages = ctx
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(build_tag())
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| Error::aws("DescribeSnapshots", err))?;
        for snapshot in page.snapshots() {
            note(snapshot.tags(), time(snapshot.start_time()));
        }
    }
    Ok(found)
}

/// The VPCs running builds launch into (from their recipes); `None` when
/// one of them cannot be told (its recipe does not load).
async fn busy_vpcs(ctx: &Context, state_machine: &str) -> Result<Option<BTreeSet<String>>> {
    let mut busy = BTreeSet::new();
    let mut pages = ctx
        .sfn
        .list_executions()
        .state_machine_arn(state_machine)
        .status_filter(aws_sdk_sfn::types::ExecutionStatus::Running)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| Error::aws("ListExecutions", err))?;
        for execution in page.executions() {
            let described = ctx
                .sfn
                .describe_execution()
                .execution_arn(execution.execution_arn())
                .send()
                .await
                .map_err(|err| Error::aws("DescribeExecution", err))?;
            let recipe = described
                .input()
                .and_then(|input| serde_json::from_str::<BuildInput>(input).ok())
                .and_then(|input| ctx.recipe(&input.recipe).ok());
            let Some(recipe) = recipe else {
                return Ok(None);
            };
            let subnet = recipe.file.builder.subnet_id.as_deref();
            busy.insert(crate::builder::vpc_of(ctx, subnet).await?);
        }
    }
    Ok(Some(busy))
}

/// Kiln's builder security groups outside `busy` VPCs that no network
/// interface uses.
async fn unused_groups(ctx: &Context, busy: &BTreeSet<String>) -> Result<Vec<String>> {
    let groups = ctx
        .ec2
        .describe_security_groups()
        .filters(tags::filter(tags::ROLE, Role::BuilderSg.as_ref()))
        .send()
        .await
        .map_err(|err| Error::aws("DescribeSecurityGroups", err))?;
    let mut unused = Vec::new();
    for group in groups.security_groups() {
        let Some(id) = group.group_id() else { continue };
        // A group a stack manages (infra/template.yaml's) is the stack's to delete.
        let managed = group.tags().iter().any(|t| {
            t.key()
                .is_some_and(|k| k.starts_with("aws:cloudformation:"))
        });
        if managed || group.vpc_id().is_some_and(|vpc| busy.contains(vpc)) {
            continue;
        }
        let used = ctx
            .ec2
            .describe_network_interfaces()
            .filters(Filter::builder().name("group-id").values(id).build())
            .send()
            .await
            .map_err(|err| Error::aws("DescribeNetworkInterfaces", err))?;
        if used.network_interfaces().is_empty() {
            unused.push(id.to_owned());
        }
    }
    Ok(unused)
}

async fn delete_group(ctx: &Context, group: &str) -> Result<()> {
    match ctx.ec2.delete_security_group().group_id(group).send().await {
        Ok(_) => Ok(()),
        // Gone already, or taken by a build that just started: leave it.
        Err(err)
            if matches!(
                Error::code_of(&err),
                Some("InvalidGroup.NotFound" | "DependencyViolation")
            ) =>
        {
            Ok(())
        }
        Err(err) => Err(Error::aws("DeleteSecurityGroup", err)),
    }
}
