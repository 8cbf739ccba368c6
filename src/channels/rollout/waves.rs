//! The rollout of one stage's channel: its Auto Scaling groups, wave by
//! wave, in the build region first and then in each distribution region in
//! the recipe's order (a region's groups roll to its copy of the image). The
//! stage's alarms are watched in every region where the channel's groups
//! rolled or roll now: one firing anywhere rolls the channel back
//! everywhere (the home pointer goes back, the regional ones follow it, and
//! the groups this release rolled in any region are sent back).

use super::gates::Hold;
use super::groups::{self, Progress, Refresh};
use super::release::{Phase, Release, Step};
use super::stages::{
    check_gates, halt, in_region, list, paused, pointer, roll_back_channel, roll_back_refreshes,
    watched,
};
use crate::aws::{Context, images};
use crate::channels::regional;
use crate::error::{Error, Result};
use crate::ids::AmiId;
use crate::recipe::ReleaseStage;

/// Where a rollout stands: the region it rolls in (none: the build region)
/// and the wave there, with the refreshes of that wave (none: not started).
pub(super) struct Position {
    /// The region.
    pub region: Option<String>,
    /// The wave in progress, or the next to start.
    pub wave: u32,
    /// The refreshes of the wave in progress.
    pub refreshes: Vec<Refresh>,
}

/// The waves of `stage`'s channel: start the next (unless `held`), or
/// follow the one running; past a region's last wave, the next region's
/// first; past the last region, the next stage.
pub(super) async fn roll(
    ctx: &Context,
    release: &mut Release,
    stage: &ReleaseStage,
    at: Position,
    held: Option<&Hold>,
) -> Result<Step> {
    let (recipe, image) = (&release.recipe.clone(), &release.image_id.clone());
    let channel = &stage.channel;
    let Position {
        region,
        wave,
        refreshes,
    } = at;
    let place = in_region(region.as_deref());
    let current = pointer(ctx, recipe, channel).await?;
    if current.is_none_or(|(named, _)| &named != image) {
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
    let phase = |wave, refreshes| Phase::Rollout {
        region: region.clone(),
        wave,
        refreshes,
    };
    if refreshes.is_empty() {
        let here = groups::groups(ctx, region.as_deref(), recipe, Some(channel)).await?;
        let waves = groups::waves(here);
        let Some((&wave, members)) = waves.range(wave..).next() else {
            let order = groups::regions(ctx, recipe);
            let next = order
                .iter()
                .position(|r| r == &region)
                .and_then(|i| order.get(i + 1));
            release.phase = match next {
                Some(next) => Phase::Rollout {
                    region: next.clone(),
                    wave: 0,
                    refreshes: Vec::new(),
                },
                None => {
                    release.stage += 1;
                    Phase::Gate
                }
            };
            return Ok(Step::Continue);
        };
        let Some(local) = image_in(ctx, image, region.as_deref()).await? else {
            return Ok(halt(
                channel,
                format!(
                    "{} has no available copy of {image}: the release stops before wave {wave} \
                     of {channel} there (kiln distribute copies it)",
                    region.as_deref().unwrap_or("the build region")
                ),
                Vec::new(),
            ));
        };
        let regions = watched(release, channel, Some(&region));
        let alarms = check_gates(ctx, release, &stage.alarms, &regions).await?;
        if !alarms.firing.is_empty() {
            let reason = format!(
                "alarm {} in ALARM before wave {wave} of {channel}{place}",
                alarms.firing.join(", ")
            );
            let rolled = release.rolled.get(channel).cloned().unwrap_or_default();
            return roll_back_channel(ctx, release, channel, reason, Vec::new(), &rolled).await;
        }
        if let Some(hold) = held {
            release.phase = phase(wave, Vec::new());
            return Ok(paused(
                release,
                hold,
                &format!("wave {wave} of {channel}{place}"),
            ));
        }
        for group in members {
            if let Some(why) = groups::busy(ctx, group, &local).await? {
                release.phase = phase(wave, Vec::new());
                return Ok(Step::Wait(
                    release.check_seconds,
                    format!("{channel} wave {wave}{place} waits: {why}"),
                ));
            }
        }
        let mut started = Vec::new();
        for group in members {
            match groups::start(ctx, group, &local, channel, &stage.alarms).await {
                Ok(refresh) => started.push(refresh),
                Err(Error::RolloutBlocked { group, reason }) => {
                    let rolled = roll_back_refreshes(ctx, started).await?;
                    return Ok(halt(
                        channel,
                        format!(
                            "group {group}{place} cannot be rolled: {reason}; the release stops"
                        ),
                        rolled,
                    ));
                }
                Err(err) => return Err(err),
            }
        }
        let message = format!("{channel} wave {wave}{place}: rolling {}", list(&started));
        release.phase = phase(wave, started);
        return Ok(Step::Wait(release.check_seconds, message));
    }
    let regions = watched(release, channel, Some(&region));
    let alarms = check_gates(ctx, release, &stage.alarms, &regions).await?;
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
        let reason = format!(
            "{} during wave {wave} of {channel}{place}",
            reasons.join("; ")
        );
        let mut rolled = release.rolled.get(channel).cloned().unwrap_or_default();
        rolled.extend(
            now.iter()
                .filter(|r| r.progress() == Progress::Succeeded)
                .cloned(),
        );
        let stood = roll_back_refreshes(ctx, now).await?;
        return roll_back_channel(ctx, release, channel, reason, stood, &rolled).await;
    }
    if now.iter().all(|r| r.progress() == Progress::Succeeded) {
        release
            .rolled
            .entry(channel.clone())
            .or_default()
            .extend(now);
        release.phase = phase(wave + 1, Vec::new());
        return Ok(Step::Continue);
    }
    let message = format!("{channel} wave {wave}{place}: {}", list(&now));
    release.phase = phase(wave, now);
    Ok(Step::Wait(release.check_seconds, message))
}

/// The image a group of `region` rolls to: `image` in the build region, its
/// available copy in a distribution region (`None` when there is none).
async fn image_in(ctx: &Context, image: &AmiId, region: Option<&str>) -> Result<Option<AmiId>> {
    let Some(region) = region else {
        return Ok(Some(image.clone()));
    };
    let copy = regional::copy_of(&ctx.in_region(region), image.as_str(), &ctx.region()?).await?;
    Ok(copy
        .filter(images::is_available)
        .and_then(|c| images::id(&c)))
}
