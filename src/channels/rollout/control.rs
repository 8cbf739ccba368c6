//! A person's hand on releases (`kiln rollout`): where a recipe's release
//! stands, and start, pause, resume or abort one.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use jiff::Timestamp;
use serde::Serialize;

use super::gates::{self, Hold};
use super::groups::{self, Refresh};
use super::rivals::{self, Contender};
use super::templates;
use crate::aws::Context;
use crate::aws::executions;
use crate::aws::sdk::Answer;
use crate::channels::pointers;
use crate::error::{Error, Result};
use crate::ids::{AmiId, Channel, RecipeName};

/// A recipe's releases as they stand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    /// The recipe.
    pub recipe: RecipeName,
    /// The image each channel names, and the pointer's version.
    pub pointers: Vec<Pointer>,
    /// The hold on the recipe's releases, if any.
    pub hold: Option<Hold>,
    /// Every Auto Scaling group opted in for the recipe, region by region
    /// (the build region first), by name.
    pub groups: Vec<GroupStatus>,
    /// Releases running now (none listed when the release state machine is
    /// not configured).
    pub releases: Option<Vec<Running>>,
}

/// A channel's pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pointer {
    /// The channel.
    pub channel: Channel,
    /// The image it names.
    pub image_id: String,
    /// The pointer's version.
    pub version: i64,
}

/// An opted-in group: what it runs and its newest refresh.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupStatus {
    /// The group's name.
    pub name: String,
    /// Its region, when a distribution region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The channel it follows.
    pub channel: Option<Channel>,
    /// Its wave.
    pub wave: u32,
    /// Its launch template (id or name) and version.
    pub template: Option<String>,
    /// The image that version launches.
    pub image_id: Option<String>,
    /// Whether that image is what its channel names (in its region).
    pub current: bool,
    /// Its instances.
    pub instances: usize,
    /// Its newest instance refresh.
    pub refresh: Option<Refresh>,
    /// Why kiln cannot roll it, if it cannot.
    pub problem: Option<String>,
}

/// A release execution running now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Running {
    /// The execution's name (the image id).
    pub name: String,
    /// The execution.
    pub arn: String,
    /// When it started (RFC 3339).
    pub started: String,
}

/// What an abort did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Aborted {
    /// Release executions stopped.
    pub stopped: Vec<String>,
    /// Groups whose running refresh was cancelled.
    pub cancelled: Vec<String>,
}

/// Where `recipe`'s releases stand.
pub async fn overview(ctx: &Context, recipe: &RecipeName) -> Result<Overview> {
    let pointers: Vec<Pointer> = pointers::pointers(ctx, recipe)
        .await?
        .into_iter()
        .map(|(channel, (image_id, version))| Pointer {
            channel,
            image_id,
            version,
        })
        .collect();
    let mut statuses = Vec::new();
    let mut named = BTreeMap::new();
    for group in groups::everywhere(ctx, recipe, None).await? {
        let there = groups::at(ctx, group.region.as_deref());
        if let Entry::Vacant(entry) = named.entry(group.region.clone()) {
            entry.insert(pointers::pointers(&there, recipe).await?);
        }
        let problem = groups::rollable(ctx, &group).await?.err();
        let (template, image_id) = match &group.template {
            Ok(template) => (
                Some(format!(
                    "{} v{}",
                    template
                        .id
                        .as_deref()
                        .or(template.name.as_deref())
                        .unwrap_or_default(),
                    template.version
                )),
                templates::template_image(&there, template).await?,
            ),
            Err(_) => (None, None),
        };
        let current = group
            .channel
            .as_ref()
            .and_then(|channel| named[&group.region].get(channel))
            .is_some_and(|(named, _)| Some(named) == image_id.as_ref());
        statuses.push(GroupStatus {
            refresh: groups::latest(&there, &group.name).await?,
            name: group.name,
            region: group.region,
            channel: group.channel,
            wave: group.wave,
            template,
            image_id,
            current,
            instances: group.instances,
            problem,
        });
    }
    let releases = match &ctx.settings.release_state_machine_arn {
        Some(machine) => Some(running(ctx, machine, recipe).await?),
        None => None,
    };
    Ok(Overview {
        recipe: recipe.clone(),
        pointers,
        hold: gates::hold(ctx, recipe).await?,
        groups: statuses,
        releases,
    })
}

/// Starts a release of `image` (the execution is named after it: an image
/// is released once); returns the execution's ARN. A release that a running
/// one would supersede at once is refused, unless `forced` (with the reason
/// why), which makes it win over every release started without.
pub async fn start(
    ctx: &Context,
    recipe: &RecipeName,
    image: &AmiId,
    check_seconds: u32,
    forced: Option<&str>,
) -> Result<String> {
    if forced.is_some_and(|reason| reason.trim().is_empty()) {
        return Err(Error::InvalidInput(
            "a forced release needs a reason (--reason): it is recorded with the release".into(),
        ));
    }
    let machine = machine(ctx)?;
    let me = Contender {
        image_id: image.clone(),
        execution: None,
        forced: forced.map(str::to_owned),
        started: Timestamp::now(),
        created: None,
    };
    if let Some(winner) = rivals::superseding(ctx, machine, recipe, me).await? {
        return Err(Error::ReleaseSuperseded {
            image: image.to_string(),
            why: winner.why(),
            winner: winner.image_id.to_string(),
            execution: winner.execution,
        });
    }
    let input = serde_json::json!({
        "recipe": recipe,
        "image_id": image,
        "check_seconds": check_seconds,
        "forced": forced,
    });
    let started = executions::start(ctx.sfn(), machine, image.as_str(), &input).await?;
    if started.existing {
        return Err(Error::InvalidInput(format!(
            "{image} has had a release already (execution {image}); an image is released \
             once: promote it by hand, or build a new one"
        )));
    }
    Ok(started.arn)
}

/// Stops `recipe`'s running releases and cancels the running refreshes of its
/// groups, in every region they roll in. Pointers stay where they are: `kiln rollback` moves one back.
pub async fn abort(ctx: &Context, recipe: &RecipeName, reason: &str) -> Result<Aborted> {
    let machine = machine(ctx)?;
    let mut stopped = Vec::new();
    for release in running(ctx, machine, recipe).await? {
        ctx.sfn()
            .stop_execution()
            .execution_arn(&release.arn)
            .error("Aborted")
            .cause(reason)
            .send()
            .await
            .or_aws("StopExecution")?;
        stopped.push(release.name);
    }
    let mut cancelled = Vec::new();
    for group in groups::everywhere(ctx, recipe, None).await? {
        if groups::cancel(ctx, &group).await?.is_some() {
            cancelled.push(match &group.region {
                Some(region) => format!("{} ({region})", group.name),
                None => group.name,
            });
        }
    }
    Ok(Aborted { stopped, cancelled })
}

fn machine(ctx: &Context) -> Result<&str> {
    ctx.settings
        .release_state_machine_arn
        .as_deref()
        .ok_or_else(|| {
            Error::InvalidInput(
                "no release state machine: set KILN_RELEASE_STATE_MACHINE_ARN (the stack's \
                 ReleaseStateMachineArn output)"
                    .into(),
            )
        })
}

/// The running releases of `recipe` on `machine`.
async fn running(ctx: &Context, machine: &str, recipe: &RecipeName) -> Result<Vec<Running>> {
    Ok(executions::running(ctx.sfn(), machine)
        .await?
        .into_iter()
        .filter(|execution| {
            execution
                .input
                .as_deref()
                .and_then(|input| serde_json::from_str::<serde_json::Value>(input).ok())
                .is_some_and(|input| input["recipe"] == recipe.as_str())
        })
        .map(|execution| Running {
            name: execution.name,
            arn: execution.arn,
            started: execution.started,
        })
        .collect())
}
