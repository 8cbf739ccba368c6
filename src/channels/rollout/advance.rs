//! One step of a release: the next moves of its stage, up to the next wait
//! or its end.

use tracing::info;

use super::release::{Phase, Release, Status, Step};
use super::waves::{self, Position};
use super::{gates, stages};
use crate::aws::Context;
use crate::error::Result;
use crate::security::remediation::Remediation;
use jiff::Timestamp;

/// Makes the release's next moves, up to the next wait or its end.
pub async fn advance(ctx: &Context, mut release: Release) -> Result<Release> {
    let recipe = ctx.recipe(&release.recipe)?;
    let policy = recipe.file.release.clone();
    if let (Some(stage), Phase::Gate | Phase::Rollout { .. }) =
        (policy.get(release.stage), &release.phase)
        && let Some(step) = stages::superseded(ctx, &release, stage).await?
    {
        return Ok(ended(release, step));
    }
    loop {
        let step = match policy.get(release.stage) {
            None if policy.is_empty() => Step::End(
                Status::Done,
                "the recipe has no release policy: its channels move by hand".into(),
                None,
            ),
            None => {
                if let Some(exposure) = &release.exposure {
                    let mut regions = vec![ctx.region()?];
                    regions.extend(recipe.file.distribution.regions.iter().cloned());
                    release.remediation = Some(Remediation::new(
                        &recipe,
                        release.image_id.clone(),
                        exposure,
                        regions,
                        release.check_seconds,
                        Timestamp::now(),
                    ));
                }
                Step::End(
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
                )
            }
            Some(stage) => {
                let previous = release
                    .stage
                    .checked_sub(1)
                    .and_then(|i| policy.get(i))
                    .map(|s| &s.channel);
                let held = gates::hold(ctx, &release.recipe).await?;
                let held = held.as_ref();
                match std::mem::take(&mut release.phase) {
                    Phase::Gate => {
                        stages::gate(ctx, &mut release, &policy, stage, previous, held).await?
                    }
                    Phase::Promoting { written } => {
                        stages::promoted(ctx, &mut release, written).await?
                    }
                    Phase::RollingBack { written, stopped } => {
                        stages::rolled_back(ctx, &mut release, written, stopped).await?
                    }
                    Phase::Settling {
                        stopped,
                        moved,
                        rounds,
                    } => stages::settling(ctx, &mut release, stopped, moved, rounds).await?,
                    Phase::Rollout {
                        region,
                        wave,
                        refreshes,
                    } => {
                        let at = Position {
                            region,
                            wave,
                            refreshes,
                        };
                        waves::roll(ctx, &mut release, stage, at, held).await?
                    }
                }
            }
        };
        if let Step::Continue = step {
            continue;
        }
        return Ok(ended(release, step));
    }
}

/// `release` after `step` (a wait or an end).
fn ended(mut release: Release, step: Step) -> Release {
    match step {
        Step::Continue => {}
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
    release
}
