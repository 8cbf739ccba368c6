//! The moves of one stage of a release: its gate (soak, alarms, then the
//! promotion), and how a stage stops short; its rollout is [`super::waves`].

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};

use super::gates::{self, Hold};
use super::groups::{self, Refresh};
use super::release::{
    ACTOR, CONFIRM_SECONDS, MAX_SETTLE_ROUNDS, MAX_SOAK_CHECKS, Phase, Release, Status, Step,
    Stopped,
};
use super::rivals::{self, Contender};
use crate::aws::Context;
use crate::channels::pointers::{self, Why, Written};
use crate::channels::promotion::{self, Move, Moved, Synced};
use crate::error::{Error, Result};
use crate::ids::{AmiId, Channel, RecipeName};
use crate::recipe::ReleaseStage;

/// Soak and gates before `stage`'s channel, then its promotion (unless
/// `held`: the soak and its gates go on, the promotion waits).
pub(super) async fn gate(
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
        region: None,
        wave: 0,
        refreshes: Vec::new(),
    };
    let current = pointer(ctx, recipe, channel).await?;
    if current.as_ref().is_some_and(|(named, _)| named == image) {
        release.phase = rollout;
        return Ok(Step::Continue);
    }
    let since = match previous {
        None => release.started_at,
        Some(previous) => {
            let history = pointers::history(ctx, recipe, previous).await?;
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
    let regions = previous.map_or_else(|| vec![None], |p| watched(release, p, None));
    let alarms = check_gates(ctx, release, &stage.alarms, &regions).await?;
    if !alarms.firing.is_empty() {
        let reason = format!(
            "alarm {} in ALARM during the soak before {channel}",
            alarms.firing.join(", ")
        );
        return match previous {
            Some(previous) => {
                let rolled = release.rolled.get(previous).cloned().unwrap_or_default();
                roll_back_channel(ctx, release, previous, reason, Vec::new(), &rolled).await
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
    let soak_hours = stage.soak_for(release.fast_track.is_some());
    let soak = SignedDuration::from_hours(i64::from(soak_hours));
    let ends = since.checked_add(soak).unwrap_or(since);
    let left = ends.duration_since(Timestamp::now());
    if left.is_positive() {
        let seconds = u32::try_from(left.as_secs()).unwrap_or(u32::MAX);
        let place = previous.map_or_else(|| "release".to_owned(), |p| p.to_string());
        let fast = release
            .fast_track
            .as_deref()
            .map_or_else(String::new, |why| {
                format!(", the security fast track's {soak_hours} h ({why})")
            });
        return Ok(Step::Wait(
            soak_check_seconds(release.check_seconds, soak_hours).min(seconds.saturating_add(1)),
            format!(
                "soaking in {place} until {ends} before {channel} ({} s left{fast}); gates clear",
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
    let everywhere = groups::everywhere(ctx, recipe, Some(channel)).await?;
    for group in &everywhere {
        if let Err(why) = groups::rollable(ctx, group).await? {
            return Ok(halt(
                channel,
                format!(
                    "group {}{} cannot be rolled: {why}; the release stops before promoting \
                     {channel}",
                    group.name,
                    in_region(group.region.as_deref())
                ),
                Vec::new(),
            ));
        }
    }
    if let Some(missing) = missing_alarms(ctx, stage, &everywhere).await? {
        return Ok(halt(
            channel,
            format!(
                "alarm {missing} does not exist, and groups of {channel} roll there: it cannot \
                 vouch for them; create it there, or fix the release policy of recipe {recipe}"
            ),
            Vec::new(),
        ));
    }
    let current_image = current.as_ref().map(|(image, _)| image);
    if let Some(why) = gates::vulnerabilities(ctx, release, channel, current_image).await? {
        return Ok(halt(channel, why, Vec::new()));
    }
    let reason = match previous {
        Some(previous) => format!("release: {soak_hours} h in {previous} with gates clear"),
        None => "release: the image passed its test".to_owned(),
    };
    let moved = promotion::start_promote(
        ctx,
        recipe,
        channel,
        image,
        Why {
            reason: &reason,
            actor: ACTOR,
        },
        false,
        Some(current.map_or(0, |(_, version)| version)),
    )
    .await?;
    match moved {
        Move::Moved(_) => {
            release.phase = rollout;
            Ok(Step::Continue)
        }
        Move::Written(written) => Ok(confirm_promotion(release, written)),
    }
}

/// The stage's promotion once SSM has validated it: the rollout starts; a
/// promotion SSM did not accept halts the release.
pub(super) async fn promoted(
    ctx: &Context,
    release: &mut Release,
    written: Written,
) -> Result<Step> {
    let channel = written.channel.clone();
    match promotion::confirm(ctx, written).await {
        Ok(Move::Moved(_)) => {
            release.phase = Phase::Rollout {
                region: None,
                wave: 0,
                refreshes: Vec::new(),
            };
            Ok(Step::Continue)
        }
        Ok(Move::Written(written)) => Ok(confirm_promotion(release, written)),
        Err(err @ Error::PointerNotValidated { .. }) => Ok(halt(
            &channel,
            format!("{err}: the release stops"),
            Vec::new(),
        )),
        Err(err) => Err(err),
    }
}

/// A gate's rollback once SSM has validated it: the release ends rolled
/// back; a rollback SSM did not accept halts it, the channel still on the
/// image.
pub(super) async fn rolled_back(
    ctx: &Context,
    release: &mut Release,
    written: Written,
    stopped: Stopped,
) -> Result<Step> {
    match promotion::confirm(ctx, written).await {
        Ok(Move::Moved(moved)) => Ok(follow_rollback(release, stopped, &moved)),
        Ok(Move::Written(written)) => Ok(confirm_rollback(release, written, stopped)),
        Err(err @ Error::PointerNotValidated { .. }) => {
            let reason = format!("{}; the rollback failed: {err}", stopped.reason);
            Ok(Step::End(
                Status::Halted,
                reason.clone(),
                Some(Stopped {
                    reason,
                    rolled_back_to: None,
                    ..stopped
                }),
            ))
        }
        Err(err) => Err(err),
    }
}

/// Waits for SSM to validate the stage's promotion `written`.
fn confirm_promotion(release: &mut Release, written: Written) -> Step {
    let message = format!(
        "{} written to {} (version {}); SSM validates it before the rollout",
        written.image, written.channel, written.version
    );
    wait_for_ssm(release, Phase::Promoting { written }, message)
}

/// Waits for SSM to validate the rollback `written` a gate made.
fn confirm_rollback(release: &mut Release, written: Written, stopped: Stopped) -> Step {
    let message = format!(
        "{}: {} goes back to {} (version {}); SSM validates it",
        stopped.reason, written.channel, written.image, written.version
    );
    wait_for_ssm(release, Phase::RollingBack { written, stopped }, message)
}

/// Enters `phase` and waits at most [`CONFIRM_SECONDS`] before the read
/// that confirms its pointer write.
fn wait_for_ssm(release: &mut Release, phase: Phase, message: String) -> Step {
    release.phase = phase;
    Step::Wait(release.check_seconds.min(CONFIRM_SECONDS), message)
}

/// The end of `release` when a release of its recipe wins over it: it stops
/// where it stands, in `stage`, undoing nothing (pointers stay, refreshes it
/// started run to their end). `None` while it is the one that goes on, or
/// when it knows no state machine to look in.
pub(super) async fn superseded(
    ctx: &Context,
    release: &Release,
    stage: &ReleaseStage,
) -> Result<Option<Step>> {
    let Some(machine) = &release.state_machine else {
        return Ok(None);
    };
    let me = Contender {
        image_id: release.image_id.clone(),
        execution: None,
        forced: release.forced.clone(),
        started: release.started_at,
        created: None,
    };
    let Some(winner) = rivals::superseding(ctx, machine, &release.recipe, me).await? else {
        return Ok(None);
    };
    let refreshes = match &release.phase {
        Phase::Rollout { refreshes, .. } => refreshes.clone(),
        _ => Vec::new(),
    };
    let reason = format!(
        "superseded by the release of {} ({}; execution {}): {} stays where it is, and \
         refreshes this release started run to their end",
        winner.image_id,
        winner.why(),
        winner.execution,
        stage.channel
    );
    Ok(Some(Step::End(
        Status::Superseded,
        reason.clone(),
        Some(Stopped {
            channel: stage.channel.clone(),
            reason,
            rolled_back_to: None,
            refreshes,
            reverted: Vec::new(),
            superseded_by: Some(winner),
        }),
    )))
}

/// `alarms` in each of `regions` (none: the build region; a name is
/// suffixed with its region elsewhere) since the gates were last checked
/// (the release's start, before the first check); the next check reads from
/// now on. Missing are the build region's only: elsewhere an alarm is
/// watched where it exists, and must exist where a stage's own groups roll
/// (checked before the stage's promotion, `missing_alarms`).
pub(super) async fn check_gates(
    ctx: &Context,
    release: &mut Release,
    alarms: &[String],
    regions: &[Option<String>],
) -> Result<gates::Alarms> {
    let now = Timestamp::now();
    let since = release.gates_checked_at.unwrap_or(release.started_at);
    let mut found = gates::Alarms::default();
    for region in regions {
        let here = gates::alarms(&groups::at(ctx, region.as_deref()), alarms, since).await?;
        let named = |name: String| match region {
            Some(region) => format!("{name} in {region}"),
            None => name,
        };
        found.firing.extend(here.firing.into_iter().map(named));
        if region.is_none() {
            found.missing.extend(here.missing);
        }
    }
    release.gates_checked_at = Some(now);
    Ok(found)
}

/// The regions whose alarms vouch for `channel`: the build region, each
/// region where this release rolled the channel's groups, and `also`.
pub(super) fn watched(
    release: &Release,
    channel: &Channel,
    also: Option<&Option<String>>,
) -> Vec<Option<String>> {
    let mut regions = vec![None];
    let rolled = release.rolled.get(channel).into_iter().flatten();
    for region in rolled.map(|r| &r.region).chain(also) {
        if !regions.contains(region) {
            regions.push(region.clone());
        }
    }
    regions
}

/// The image `channel`'s pointer names, and its version.
pub(super) async fn pointer(
    ctx: &Context,
    recipe: &RecipeName,
    channel: &Channel,
) -> Result<Option<(AmiId, i64)>> {
    pointers::read_pointer(ctx, &pointers::pointer_name(recipe, channel)).await
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
        let history = pointers::history(ctx, recipe, channel).await?;
        if let Some(rollback) = pointers::rolled_back_from(&history, image.as_str()) {
            return Ok(Some((channel.clone(), rollback.version)));
        }
    }
    Ok(None)
}

/// Writes `channel` back, recording `reason`, and sends the groups this
/// release `rolled` on it back too; the release ends rolled back once SSM
/// has validated the write.
pub(super) async fn roll_back_channel(
    ctx: &Context,
    release: &mut Release,
    channel: &Channel,
    reason: String,
    refreshes: Vec<Refresh>,
    rolled: &[Refresh],
) -> Result<Step> {
    let why = Why {
        reason: &reason,
        actor: ACTOR,
    };
    let recipe = release.recipe.clone();
    let moved = match promotion::start_rollback(ctx, &recipe, channel, why, None).await {
        Ok(moved) => moved,
        Err(Error::NothingToRollBack {
            reason: nothing, ..
        }) => {
            return Ok(halt(
                channel,
                format!("{reason}; {channel} cannot go back: {nothing}"),
                refreshes,
            ));
        }
        Err(err) => return Err(err),
    };
    let reverted = groups::revert(ctx, &recipe, channel, rolled).await?;
    let mut stopped = Stopped {
        channel: channel.clone(),
        reason,
        rolled_back_to: None,
        refreshes,
        reverted,
        superseded_by: None,
    };
    Ok(match moved {
        Move::Moved(done) => {
            stopped.rolled_back_to = done.to.clone();
            follow_rollback(release, stopped, &done)
        }
        Move::Written(written) => {
            stopped.rolled_back_to = Some(written.image.clone());
            confirm_rollback(release, written, stopped)
        }
    })
}

/// After a gate's rollback `moved`: the release ends rolled back once the
/// sync found every pointer of other regions and accounts following (it made
/// no move and met no problem), else it syncs again after a wait.
fn follow_rollback(release: &mut Release, stopped: Stopped, moved: &Moved) -> Step {
    settle(release, stopped, moved.message.clone(), &moved.synced, 0)
}

/// The pointers of other regions and accounts after `rounds` syncs, the
/// last of which did `synced`: the end of the release, or another sync.
fn settle(
    release: &mut Release,
    stopped: Stopped,
    moved: String,
    synced: &Synced,
    rounds: u32,
) -> Step {
    if !synced.regional.is_empty() && rounds < MAX_SETTLE_ROUNDS {
        let message = format!(
            "{}: {moved}; other regions' and accounts' pointers follow ({} moved or waiting)",
            stopped.reason,
            synced.regional.len()
        );
        let phase = Phase::Settling {
            stopped,
            moved,
            rounds: rounds + 1,
        };
        return wait_for_ssm(release, phase, message);
    }
    let back = if stopped.reverted.is_empty() {
        String::new()
    } else {
        format!("; {} sent back", list(&stopped.reverted))
    };
    let left = synced.left();
    let behind = if left.is_empty() {
        String::new()
    } else {
        format!(
            "; not followed yet (kiln doctor moves them): {}",
            left.join("; ")
        )
    };
    Step::End(
        Status::RolledBack,
        format!("{}: {moved}{back}{behind}", stopped.reason),
        Some(stopped),
    )
}

/// One more sync of the pointers of other regions and accounts after a
/// gate's rollback ([`Phase::Settling`]).
pub(super) async fn settling(
    ctx: &Context,
    release: &mut Release,
    stopped: Stopped,
    moved: String,
    rounds: u32,
) -> Result<Step> {
    let synced = promotion::sync(ctx, &release.recipe).await?;
    Ok(settle(release, stopped, moved, &synced, rounds))
}

/// Rolls back those of `refreshes` still running; returns them all, as
/// they stood.
pub(super) async fn roll_back_refreshes(
    ctx: &Context,
    refreshes: Vec<Refresh>,
) -> Result<Vec<Refresh>> {
    for refresh in &refreshes {
        groups::roll_back(ctx, refresh).await?;
    }
    Ok(refreshes)
}

/// Waiting for a hold to be lifted before `next`.
pub(super) fn paused(release: &Release, hold: &Hold, next: &str) -> Step {
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
pub(super) fn halt(channel: &Channel, reason: String, refreshes: Vec<Refresh>) -> Step {
    Step::End(
        Status::Halted,
        reason.clone(),
        Some(Stopped {
            channel: channel.clone(),
            reason,
            rolled_back_to: None,
            refreshes,
            reverted: Vec::new(),
            superseded_by: None,
        }),
    )
}

pub(super) fn list(refreshes: &[Refresh]) -> String {
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

/// ` in <region>` for a distribution region; nothing for the build region.
pub(super) fn in_region(region: Option<&str>) -> String {
    region.map(|r| format!(" in {r}")).unwrap_or_default()
}

/// The first of `stage`'s alarms that does not exist in a distribution
/// region where `groups` roll (named with the region); `None` when each
/// exists wherever groups roll (the build region's are checked by the gate).
async fn missing_alarms(
    ctx: &Context,
    stage: &ReleaseStage,
    groups: &[groups::Group],
) -> Result<Option<String>> {
    let mut checked = BTreeSet::new();
    for region in groups.iter().filter_map(|g| g.region.as_deref()) {
        if !checked.insert(region) {
            continue;
        }
        let there = ctx.in_region(region);
        let found = gates::alarms(&there, &stage.alarms, Timestamp::now()).await?;
        if let Some(name) = found.missing.first() {
            return Ok(Some(format!("{name} in {region}")));
        }
    }
    Ok(None)
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
