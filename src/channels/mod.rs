//! The channel side: what production launches, and how that moves.
//!
//! A channel is its pointer ([`pointers`]), and its followers in the
//! recipe's distribution regions ([`regional`]) and member accounts
//! ([`members`]); [`promotion`] moves it
//! (promote, roll back, demote) and keeps the regional pointers and the
//! image tags in line with it;
//! [`retention`] retires images nothing needs any more; [`rollout`] moves a
//! tested image through a recipe's channels by itself and rolls their Auto
//! Scaling groups. [`handle`] is the `promote` Lambda.

pub mod marks;
pub mod members;
pub mod pointers;
pub mod promotion;
pub mod regional;
pub mod retention;
pub mod rollout;

use serde::{Deserialize, Serialize};

use crate::aws::Context;
use crate::error::Result;
use crate::ids::{AmiId, Channel, RecipeName};
use crate::security::remediation::{self, Remediation};
use pointers::Why;

/// Who moved a pointer when a request does not say.
pub const DEFAULT_ACTOR: &str = "kiln promote Lambda";

/// The input of the promote Lambda: one move of one channel (a promotion or
/// a rollback is written, then confirmed by a later request once SSM has
/// validated it), one release step, one check of a release's remediation
/// watch, or a retention run over a recipe's images.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// [`promotion::start_promote`].
    Promote {
        /// The recipe.
        recipe: RecipeName,
        /// The channel.
        channel: Channel,
        /// The image to promote.
        image_id: AmiId,
        /// Why.
        reason: String,
        /// Who (default: the Lambda itself).
        actor: Option<String>,
        /// Promote an untested image.
        #[serde(default)]
        force: bool,
        /// The pointer version the caller saw (0: no pointer): the move is
        /// refused if the pointer moved since, and reported if this very
        /// move moved it (a retry).
        expected_version: Option<i64>,
    },
    /// [`promotion::start_rollback`].
    Rollback {
        /// The recipe.
        recipe: RecipeName,
        /// The channel.
        channel: Channel,
        /// Why.
        reason: String,
        /// Who (default: the Lambda itself).
        actor: Option<String>,
        /// As for a promotion.
        expected_version: Option<i64>,
    },
    /// [`promotion::confirm`]: a move written by an earlier request.
    Confirm {
        /// The written move, as that request answered it.
        written: pointers::Written,
    },
    /// [`promotion::demote`].
    Demote {
        /// The recipe.
        recipe: RecipeName,
        /// The channel.
        channel: Channel,
        /// Why.
        reason: String,
        /// Who (default: the Lambda itself).
        actor: Option<String>,
    },
    /// [`rollout::advance`]: one step of a release, as the release
    /// state machine carries it.
    Release {
        /// The release.
        release: Box<rollout::Release>,
    },
    /// [`remediation::check`]: one check of a security release's
    /// remediation watch, as the release state machine carries it.
    Remediation {
        /// The watch.
        remediation: Box<Remediation>,
    },
    /// [`retention::prune`].
    Prune {
        /// The recipe.
        recipe: RecipeName,
        /// How many of the newest images to keep.
        keep: usize,
        /// Only report.
        #[serde(default)]
        dry_run: bool,
    },
}

/// What the `promote` Lambda answers, by request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Answer {
    /// What a move did, or that it waits for SSM's validation.
    Move(promotion::Move),
    /// Where the release stands after its step.
    Release(Box<rollout::Release>),
    /// What a retention run did.
    Pruning(retention::Pruning),
    /// Where the remediation watch stands after its check.
    Remediation(Box<Remediation>),
}

/// Who moves a pointer, and why: `actor`, or the Lambda itself.
fn why<'a>(reason: &'a str, actor: &'a Option<String>) -> Why<'a> {
    Why {
        reason,
        actor: actor.as_deref().unwrap_or(DEFAULT_ACTOR),
    }
}

/// The `promote` Lambda: one move, one release step, one check of a
/// remediation watch, or one retention run.
pub async fn handle(ctx: &Context, request: Request) -> Result<Answer> {
    Ok(match request {
        Request::Promote {
            recipe,
            channel,
            image_id,
            reason,
            actor,
            force,
            expected_version,
        } => Answer::Move(
            promotion::start_promote(
                ctx,
                &recipe,
                &channel,
                &image_id,
                why(&reason, &actor),
                force,
                expected_version,
            )
            .await?,
        ),
        Request::Rollback {
            recipe,
            channel,
            reason,
            actor,
            expected_version,
        } => Answer::Move(
            promotion::start_rollback(
                ctx,
                &recipe,
                &channel,
                why(&reason, &actor),
                expected_version,
            )
            .await?,
        ),
        Request::Confirm { written } => Answer::Move(promotion::confirm(ctx, written).await?),
        Request::Demote {
            recipe,
            channel,
            reason,
            actor,
        } => Answer::Move(promotion::Move::Moved(
            promotion::demote(ctx, &recipe, &channel, why(&reason, &actor)).await?,
        )),
        Request::Release { release } => {
            Answer::Release(Box::new(rollout::advance(ctx, *release).await?))
        }
        Request::Remediation { remediation } => Answer::Remediation(Box::new(
            remediation::check(ctx, *remediation, jiff::Timestamp::now()).await?,
        )),
        Request::Prune {
            recipe,
            keep,
            dry_run,
        } => Answer::Pruning(
            retention::prune(ctx, &recipe, keep, dry_run, jiff::Timestamp::now()).await?,
        ),
    })
}
