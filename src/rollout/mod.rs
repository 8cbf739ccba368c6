//! Hands-off releases: a tested image moves through its recipe's release
//! policy (`[[release]]`) by itself, and comes back by itself when health
//! fails.
//!
//! A release is one execution of the release state machine, which calls
//! [`advance`] again and again and does every wait itself. Each call reads
//! the world (pointers, alarms, groups, refreshes), makes the next move, and
//! answers either how long to wait before the next call or how the release
//! ended. Every move is safe to repeat, so a retried or crashed call resumes
//! where the last one stopped.
//!
//! Per stage of the policy, in order:
//! 1. **Gate**: the image soaks in the previous stage's channel (for the
//!    first stage: since the release started) for the stage's `soak_hours`,
//!    while its `alarms` are watched. An alarm in ALARM rolls the previous
//!    channel back: the image never reaches this one.
//! 2. **Promote** the stage's channel to the image.
//! 3. **Roll** the Auto Scaling groups that follow the channel, wave by wave
//!    ([`groups`]): an instance refresh per group, with the stage's alarms as
//!    its alarm specification and auto rollback on. A refresh that ends
//!    without success, or an alarm in ALARM, rolls the channel's pointer back,
//!    rolls back the refreshes still running, sends the groups already on
//!    the image back to their previous version, and starts no further wave.
//!
//! An image a channel was rolled back from is never promoted again by a
//! release; a later build may try again.

pub mod control;
pub mod gates;
pub mod groups;

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::aws::Context;
use crate::error::{Error, Result};
use crate::promotion::{self, Why};
use crate::recipe::ReleaseStage;
use crate::state::{AmiId, Channel, RecipeName};
use gates::Hold;
use groups::{Progress, Refresh};

/// Who moves pointers in a release.
pub const ACTOR: &str = "kiln release";
/// Seconds between two checks of a release, unless its input says.
pub const DEFAULT_CHECK_SECONDS: u32 = 300;
/// Most checks of one soak: a standard execution's history holds at most
/// 25,000 events (a check costs about eight), so a long soak is checked less
/// often than the release's interval.
pub const MAX_SOAK_CHECKS: u32 = 200;

/// The state of a release: what the release state machine carries from one
/// [`advance`] to the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// The recipe.
    pub recipe: RecipeName,
    /// The image released.
    pub image_id: AmiId,
    /// When the release started: the first stage's soak counts from it.
    pub started_at: Timestamp,
    /// Seconds between two checks (alarms, soak, refreshes).
    #[serde(default = "default_check_seconds")]
    pub check_seconds: u32,
    /// The stage of the policy in progress (0-based).
    #[serde(default)]
    pub stage: usize,
    /// Where the stage is.
    #[serde(default)]
    pub phase: Phase,
    /// How the release stands.
    #[serde(default)]
    pub status: Status,
    /// Seconds to wait before the next call, while [`Status::Waiting`].
    #[serde(default)]
    pub wait_seconds: u32,
    /// What is happening, in words.
    #[serde(default)]
    pub message: String,
    /// Why the release stopped, when it stopped short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
    /// The refreshes that succeeded, per channel: what a rollback of the
    /// channel sends back to the version each group used before.
    #[serde(default)]
    pub rolled: BTreeMap<Channel, Vec<Refresh>>,
}

fn default_check_seconds() -> u32 {
    DEFAULT_CHECK_SECONDS
}

impl Release {
    /// A release of `image` starting now.
    pub fn new(recipe: RecipeName, image_id: AmiId, check_seconds: u32) -> Self {
        Self {
            recipe,
            image_id,
            started_at: Timestamp::now(),
            check_seconds,
            stage: 0,
            phase: Phase::Gate,
            status: Status::Waiting,
            wait_seconds: 0,
            message: String::new(),
            stopped: None,
            rolled: BTreeMap::new(),
        }
    }
}

/// Where a stage is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Phase {
    /// Soaking before the stage's channel is promoted, gates watched.
    #[default]
    Gate,
    /// The stage's channel names the image; its groups roll wave by wave.
    Rollout {
        /// The wave in progress, or the next to start.
        wave: u32,
        /// The refreshes of the wave in progress (none: it is not started).
        #[serde(default)]
        refreshes: Vec<Refresh>,
    },
}

/// How a release stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Status {
    /// Call again after `wait_seconds`.
    #[default]
    Waiting,
    /// Every stage's channel names the image and its groups run it.
    Done,
    /// A gate fired: a channel's pointer went back; no further stage or wave.
    RolledBack,
    /// Stopped without moving a pointer back (the world changed under the
    /// release, or a group cannot be rolled); see the message.
    Halted,
}

/// Why a release stopped short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopped {
    /// The channel concerned.
    pub channel: Channel,
    /// Why, as recorded in the channel's history when its pointer moved.
    pub reason: String,
    /// The image the channel names now, when its pointer went back.
    #[serde(default)]
    pub rolled_back_to: Option<AmiId>,
    /// Refreshes of the wave in progress, as they stood (those still running
    /// were rolled back).
    #[serde(default)]
    pub refreshes: Vec<Refresh>,
    /// Refreshes started to send the channel's groups of earlier waves back
    /// to the version they used before (when its pointer went back).
    #[serde(default)]
    pub reverted: Vec<Refresh>,
}

/// What a step of [`advance`] decided.
enum Step {
    /// Go on with the next move now.
    Continue,
    /// Call again in this many seconds.
    Wait(u32, String),
    /// The release ended.
    End(Status, String, Option<Stopped>),
}

/// Makes the release's next moves, up to the next wait or its end.
pub async fn advance(ctx: &Context, mut release: Release) -> Result<Release> {
    let recipe = ctx.recipe(&release.recipe)?;
    let policy = recipe.file.release;
    loop {
        let step = match policy.get(release.stage) {
            None if policy.is_empty() => Step::End(
                Status::Done,
                "the recipe has no release policy: its channels move by hand".into(),
                None,
            ),
            None => Step::End(
                Status::Done,
                format!(
                    "{} runs on {}",
                    release.image_id,
                    policy
                        .iter()
                        .map(|s| s.channel.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None,
            ),
            Some(stage) => {
                let previous = release
                    .stage
                    .checked_sub(1)
                    .and_then(|i| policy.get(i))
                    .map(|s| &s.channel);
                let held = gates::hold(ctx, &release.recipe).await?;
                let held = held.as_ref();
                match std::mem::take(&mut release.phase) {
                    Phase::Gate => gate(ctx, &mut release, &policy, stage, previous, held).await?,
                    Phase::Rollout { wave, refreshes } => {
                        roll(ctx, &mut release, stage, wave, refreshes, held).await?
                    }
                }
            }
        };
        match step {
            Step::Continue => continue,
            Step::Wait(seconds, message) => {
                release.status = Status::Waiting;
                release.wait_seconds = seconds.max(1);
                release.message = message;
            }
            Step::End(status, message, stopped) => {
                release.status = status;
                release.wait_seconds = 0;
                release.message = message;
                release.stopped = stopped;
            }
        }
        info!(status = %release.status, stage = release.stage, message = %release.message, "release");
        return Ok(release);
    }
}

/// Soak and gates before `stage`'s channel, then its promotion (unless
/// `held`: the soak and its gates go on, the promotion waits).
async fn gate(
    ctx: &Context,
    release: &mut Release,
    policy: &[ReleaseStage],
    stage: &ReleaseStage,
    previous: Option<&Channel>,
    held: Option<&Hold>,
) -> Result<Step> {
    let (recipe, image) = (&release.recipe.clone(), &release.image_id.clone());
    let channel = &stage.channel;
    let rollout = Phase::Rollout {
        wave: 0,
        refreshes: Vec::new(),
    };
    if names(ctx, recipe, channel, image).await? {
        release.phase = rollout;
        return Ok(Step::Continue);
    }
    let since = match previous {
        None => release.started_at,
        Some(previous) => {
            let history = promotion::history(ctx, recipe, previous).await?;
            match history.last().filter(|v| v.image_id == image.as_str()) {
                Some(current) => current
                    .at
                    .as_deref()
                    .and_then(|at| at.parse().ok())
                    .unwrap_or(release.started_at),
                None => {
                    return Ok(halt(
                        previous,
                        format!(
                            "{previous} no longer names {image} (rolled back, or another image \
                             promoted): the release stops before {channel}"
                        ),
                        Vec::new(),
                    ));
                }
            }
        }
    };
    let alarms = gates::alarms(ctx, &stage.alarms).await?;
    if !alarms.firing.is_empty() {
        let reason = format!(
            "alarm {} in ALARM during the soak before {channel}",
            alarms.firing.join(", ")
        );
        return match previous {
            Some(previous) => {
                let rolled = release.rolled.get(previous).cloned().unwrap_or_default();
                roll_back_channel(ctx, recipe, previous, reason, Vec::new(), &rolled).await
            }
            None => Ok(halt(
                channel,
                format!("{reason}; no channel has {image}"),
                Vec::new(),
            )),
        };
    }
    if !alarms.missing.is_empty() {
        return Ok(halt(
            channel,
            format!(
                "alarm {} does not exist, so it cannot vouch for {channel}: fix the release policy \
                 of recipe {recipe}",
                alarms.missing.join(", ")
            ),
            Vec::new(),
        ));
    }
    let soak = SignedDuration::from_hours(i64::from(stage.soak_hours));
    let ends = since.checked_add(soak).unwrap_or(since);
    let left = ends.duration_since(Timestamp::now());
    if left.is_positive() {
        let seconds = u32::try_from(left.as_secs()).unwrap_or(u32::MAX);
        let place = previous.map_or_else(|| "release".to_owned(), |p| p.to_string());
        return Ok(Step::Wait(
            soak_check_seconds(release.check_seconds, stage.soak_hours)
                .min(seconds.saturating_add(1)),
            format!(
                "soaking in {place} until {ends} before {channel} ({} s left); gates clear",
                left.as_secs()
            ),
        ));
    }
    if let Some(hold) = held {
        return Ok(paused(release, hold, &format!("promoting {channel}")));
    }
    if let Some((rolled, version)) = rolled_back_from(ctx, recipe, policy, image).await? {
        return Ok(halt(
            channel,
            format!(
                "{rolled} was rolled back from {image} (version {version}): a release never \
                 promotes it again; a new build may try again, or promote it by hand"
            ),
            Vec::new(),
        ));
    }
    let groups = groups::groups(ctx, recipe, Some(channel)).await?;
    if let Some((group, why)) = groups
        .iter()
        .find_map(|g| g.template.as_ref().err().map(|why| (g, why)))
    {
        return Ok(halt(
            channel,
            format!(
                "group {} cannot be rolled: {why}; the release stops before promoting {channel}",
                group.name
            ),
            Vec::new(),
        ));
    }
    let reason = match previous {
        Some(previous) => format!(
            "release: {} h in {previous} with gates clear",
            stage.soak_hours
        ),
        None => "release: the image passed its test".to_owned(),
    };
    promotion::promote(
        ctx,
        recipe,
        channel,
        image,
        Why {
            reason: &reason,
            actor: ACTOR,
        },
        false,
    )
    .await?;
    release.phase = rollout;
    Ok(Step::Continue)
}

/// The waves of `stage`'s channel: start the next (unless `held`), or
/// follow the one running.
async fn roll(
    ctx: &Context,
    release: &mut Release,
    stage: &ReleaseStage,
    wave: u32,
    refreshes: Vec<Refresh>,
    held: Option<&Hold>,
) -> Result<Step> {
    let (recipe, image) = (&release.recipe.clone(), &release.image_id.clone());
    let channel = &stage.channel;
    if !names(ctx, recipe, channel, image).await? {
        let rolled = roll_back_refreshes(ctx, refreshes).await?;
        return Ok(halt(
            channel,
            format!(
                "{channel} no longer names {image} (moved by hand or by another release): the \
                 release stops; refreshes still running were rolled back"
            ),
            rolled,
        ));
    }
    let alarms = gates::alarms(ctx, &stage.alarms).await?;
    if refreshes.is_empty() {
        let waves = groups::waves(groups::groups(ctx, recipe, Some(channel)).await?);
        let Some((&wave, members)) = waves.range(wave..).next() else {
            release.stage += 1;
            release.phase = Phase::Gate;
            return Ok(Step::Continue);
        };
        if !alarms.firing.is_empty() {
            let reason = format!(
                "alarm {} in ALARM before wave {wave} of {channel}",
                alarms.firing.join(", ")
            );
            let rolled = release.rolled.get(channel).cloned().unwrap_or_default();
            return roll_back_channel(ctx, recipe, channel, reason, Vec::new(), &rolled).await;
        }
        if let Some(hold) = held {
            release.phase = Phase::Rollout {
                wave,
                refreshes: Vec::new(),
            };
            return Ok(paused(release, hold, &format!("wave {wave} of {channel}")));
        }
        let mut started = Vec::new();
        for group in members {
            match groups::start(ctx, group, image, channel, &stage.alarms).await {
                Ok(refresh) => started.push(refresh),
                Err(Error::RolloutBlocked { group, reason }) => {
                    let rolled = roll_back_refreshes(ctx, started).await?;
                    return Ok(halt(
                        channel,
                        format!("group {group} cannot be rolled: {reason}; the release stops"),
                        rolled,
                    ));
                }
                Err(err) => return Err(err),
            }
        }
        let message = format!("{channel} wave {wave}: rolling {}", list(&started));
        release.phase = Phase::Rollout {
            wave,
            refreshes: started,
        };
        return Ok(Step::Wait(release.check_seconds, message));
    }
    let mut now = Vec::with_capacity(refreshes.len());
    for refresh in &refreshes {
        now.push(groups::track(ctx, refresh).await?);
    }
    let failed: Vec<&Refresh> = now
        .iter()
        .filter(|r| r.progress() == Progress::Failed)
        .collect();
    if !alarms.firing.is_empty() || !failed.is_empty() {
        let mut reasons = Vec::new();
        if !alarms.firing.is_empty() {
            reasons.push(format!("alarm {} in ALARM", alarms.firing.join(", ")));
        }
        reasons.extend(failed.iter().map(|r| {
            format!(
                "group {} refresh ended {}{}",
                r.group,
                r.status,
                r.status_reason
                    .as_deref()
                    .map(|why| format!(" ({why})"))
                    .unwrap_or_default()
            )
        }));
        let reason = format!("{} during wave {wave} of {channel}", reasons.join("; "));
        let mut rolled = release.rolled.get(channel).cloned().unwrap_or_default();
        rolled.extend(
            now.iter()
                .filter(|r| r.progress() == Progress::Succeeded)
                .cloned(),
        );
        let stood = roll_back_refreshes(ctx, now).await?;
        return roll_back_channel(ctx, recipe, channel, reason, stood, &rolled).await;
    }
    if now.iter().all(|r| r.progress() == Progress::Succeeded) {
        release
            .rolled
            .entry(channel.clone())
            .or_default()
            .extend(now);
        release.phase = Phase::Rollout {
            wave: wave + 1,
            refreshes: Vec::new(),
        };
        return Ok(Step::Continue);
    }
    let message = format!("{channel} wave {wave}: {}", list(&now));
    release.phase = Phase::Rollout {
        wave,
        refreshes: now,
    };
    Ok(Step::Wait(release.check_seconds, message))
}

/// Whether `channel`'s pointer names `image`.
async fn names(
    ctx: &Context,
    recipe: &RecipeName,
    channel: &Channel,
    image: &AmiId,
) -> Result<bool> {
    let history = promotion::history(ctx, recipe, channel).await?;
    Ok(history.last().is_some_and(|v| v.image_id == image.as_str()))
}

/// A channel that was rolled back from `image`, and the rollback's version.
async fn rolled_back_from(
    ctx: &Context,
    recipe: &RecipeName,
    policy: &[ReleaseStage],
    image: &AmiId,
) -> Result<Option<(Channel, i64)>> {
    let channels: BTreeSet<&Channel> = policy.iter().map(|s| &s.channel).collect();
    for channel in channels {
        let history = promotion::history(ctx, recipe, channel).await?;
        if let Some(rollback) = promotion::rolled_back_from(&history, image.as_str()) {
            return Ok(Some((channel.clone(), rollback.version)));
        }
    }
    Ok(None)
}

/// Moves `channel` back, recording `reason`, and sends the groups this
/// release `rolled` on it back too; the release ends rolled back.
async fn roll_back_channel(
    ctx: &Context,
    recipe: &RecipeName,
    channel: &Channel,
    reason: String,
    refreshes: Vec<Refresh>,
    rolled: &[Refresh],
) -> Result<Step> {
    let why = Why {
        reason: &reason,
        actor: ACTOR,
    };
    match promotion::rollback(ctx, recipe, channel, why).await {
        Ok(moved) => {
            let reverted = groups::revert(ctx, recipe, channel, rolled).await?;
            let back = if reverted.is_empty() {
                String::new()
            } else {
                format!("; {} sent back", list(&reverted))
            };
            Ok(Step::End(
                Status::RolledBack,
                format!("{reason}: {}{back}", moved.message),
                Some(Stopped {
                    channel: channel.clone(),
                    reason,
                    rolled_back_to: moved.to,
                    refreshes,
                    reverted,
                }),
            ))
        }
        Err(Error::NothingToRollBack {
            reason: nothing, ..
        }) => Ok(halt(
            channel,
            format!("{reason}; {channel} cannot go back: {nothing}"),
            refreshes,
        )),
        Err(err) => Err(err),
    }
}

/// Rolls back those of `refreshes` still running; returns them all, as
/// they stood.
async fn roll_back_refreshes(ctx: &Context, refreshes: Vec<Refresh>) -> Result<Vec<Refresh>> {
    for refresh in &refreshes {
        groups::roll_back(ctx, refresh).await?;
    }
    Ok(refreshes)
}

/// Waiting for a hold to be lifted before `next`.
fn paused(release: &Release, hold: &Hold, next: &str) -> Step {
    Step::Wait(
        release.check_seconds,
        format!(
            "paused by {}: {}; {next} waits (kiln rollout resume {} lifts the hold; gates are \
             still watched)",
            hold.actor, hold.reason, release.recipe
        ),
    )
}

/// Seconds between two checks of a soak of `soak_hours`.
fn soak_check_seconds(check_seconds: u32, soak_hours: u32) -> u32 {
    check_seconds.max(soak_hours.saturating_mul(3600) / MAX_SOAK_CHECKS)
}

/// The release stops short without moving a pointer back.
fn halt(channel: &Channel, reason: String, refreshes: Vec<Refresh>) -> Step {
    Step::End(
        Status::Halted,
        reason.clone(),
        Some(Stopped {
            channel: channel.clone(),
            reason,
            rolled_back_to: None,
            refreshes,
            reverted: Vec::new(),
        }),
    )
}

fn list(refreshes: &[Refresh]) -> String {
    refreshes
        .iter()
        .map(|r| {
            format!(
                "{} {} {}%",
                r.group,
                r.status,
                r.percent.unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_soak_is_checked_at_most_max_soak_checks_times() {
        assert_eq!(soak_check_seconds(300, 24), 432);
        assert_eq!(soak_check_seconds(300, 1), 300);
        assert_eq!(soak_check_seconds(1, 0), 1);
        let longest = crate::recipe::MAX_SOAK_HOURS;
        assert!(longest * 3600 / soak_check_seconds(300, longest) <= MAX_SOAK_CHECKS);
    }
}
