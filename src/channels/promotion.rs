//! Promote, roll back, demote: one pointer per recipe and channel.
//!
//! The pointer is the SSM parameter `/kiln/<recipe>/<channel>` (data type
//! `aws:ec2:image`); its value is the AMI deploy tools launch (a launch
//! template can say `resolve:ssm:/kiln/<recipe>/prod`). Its version history
//! is the promotion history: each version's description records the move
//! (action, reason, actor) as JSON, and SSM records who wrote it.
//!
//! Image tags mirror the pointers: `kiln:channel` lists the channels an image
//! is on, `kiln:previous` the channels a rollback would return to it. The
//! pointer is the single source of truth: tags are derived from the pointers
//! alone by [`sync`], which every operation ends with and `kiln doctor`
//! runs. A crash between a pointer write and the tags is repaired by the next
//! operation; racing operations converge, since each sync reads the pointers
//! again after writing and goes round again if they moved.

use aws_sdk_ec2::types::Image as Ec2Image;
use serde::Serialize;
use tracing::{info, instrument};

use super::marks::{Marked, ProtectionChange, TagChange, mark};
use super::members;
use super::pointers::{
    Action, Record, Validation, Why, Written, channel_map, history, pointer_name, pointers,
    read_pointer, reason, record, rollback_target, validation, write_pointer,
};
use super::regional::{self, Place, RegionalMove};
use crate::aws::sdk::Answer;
use crate::aws::{Context, images};
use crate::error::{Error, Result};
use crate::ids::{AmiId, Channel, RecipeName};
use crate::tags::{self, Stage};

/// Rounds [`sync`] makes before giving up on pointers that keep moving.
const MAX_SYNC_ROUNDS: usize = 5;

/// What an operation did to a channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moved {
    /// The recipe.
    pub recipe: RecipeName,
    /// The channel.
    pub channel: Channel,
    /// The pointer parameter.
    pub parameter: String,
    /// The image the pointer named before.
    pub from: Option<AmiId>,
    /// The image it names now (absent: the channel is gone).
    pub to: Option<AmiId>,
    /// The pointer's version now.
    pub version: Option<i64>,
    /// False when there was nothing to do.
    pub changed: bool,
    /// What deploy tools see now, in words.
    pub message: String,
    /// Regional pointers and tags changed to agree with the home pointers
    /// (including repairs of an earlier, interrupted operation).
    #[serde(flatten)]
    pub synced: Synced,
}

/// What a [`sync`] changed to bring everything in line with the home
/// pointers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Synced {
    /// Image tags changed, in every region.
    pub tags: Vec<TagChange>,
    /// Deregistration protection turned on or off, in every region.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub protection: Vec<ProtectionChange>,
    /// Distribution regions' pointers moved (or left, with the problem).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub regional: Vec<RegionalMove>,
}

impl Synced {
    fn absorb(&mut self, marked: Marked) {
        self.tags.extend(marked.tags);
        self.protection.extend(marked.protection);
    }

    /// Each pointer left behind the home one (a region without an available
    /// copy, a member account out of reach, a write SSM still validates), in
    /// words: what `kiln doctor` still has to move.
    pub fn left(&self) -> Vec<String> {
        self.regional
            .iter()
            .filter_map(|m| {
                let problem = m.problem.as_deref()?;
                let account = m
                    .account
                    .as_deref()
                    .map(|a| format!(" (account {a})"))
                    .unwrap_or_default();
                Some(format!("{}{account} {}: {problem}", m.region, m.parameter))
            })
            .collect()
    }
}

/// What a move did: done (the pointer shows it, the tags agree), or
/// written and waiting for SSM to validate it ([`confirm`] it later).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Move {
    /// The channel names the image (or nothing had to change).
    Moved(Moved),
    /// Written; SSM has not shown it yet.
    Written(Written),
}

/// Seconds between two reads of a pointer when a caller waits for it.
const POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Points `recipe`'s `channel` at `image` and waits until SSM has accepted
/// it (retrying while SSM still validates an earlier write): for callers
/// that may wait, such as the CLI. Lambdas use [`start_promote`] and
/// [`confirm`] in separate steps.
pub async fn promote(
    ctx: &Context,
    recipe: &RecipeName,
    channel: &Channel,
    image: &AmiId,
    why: Why<'_>,
    force: bool,
) -> Result<Moved> {
    let written =
        when_settled(|| start_promote(ctx, recipe, channel, image, why, force, None)).await?;
    settle(ctx, written).await
}

/// Moves `recipe`'s `channel` back (see [`start_rollback`]) and waits
/// until SSM has accepted it, as [`promote`] does.
pub async fn rollback(
    ctx: &Context,
    recipe: &RecipeName,
    channel: &Channel,
    why: Why<'_>,
) -> Result<Moved> {
    let written = when_settled(|| start_rollback(ctx, recipe, channel, why, None)).await?;
    settle(ctx, written).await
}

/// Writes `recipe`'s `channel` pointer to `image`. Refused, with nothing
/// changed, when the image does not exist in this region (deregistered, or
/// in another region than the pointer), is not available, was not built by
/// `recipe`, or has not passed its test (unless `force`); and, when
/// `expected` names the pointer version the caller saw (0: no pointer), when
/// the pointer has moved since, unless this very move moved it (a retry:
/// the move is reported, not made twice). Promoting the image the channel
/// already names changes nothing and says so.
#[instrument(skip(ctx, why))]
pub async fn start_promote(
    ctx: &Context,
    recipe: &RecipeName,
    channel: &Channel,
    image: &AmiId,
    why: Why<'_>,
    force: bool,
    expected: Option<i64>,
) -> Result<Move> {
    let record = record(Action::Promote, why, None)?;
    let refuse = |reason: String| Error::PromotionRefused {
        image: image.to_string(),
        channel: channel.to_string(),
        reason,
    };
    let Some(described) = images::describe(ctx, image).await? else {
        return Err(refuse(gone(ctx)));
    };
    if images::is_disabled(&described) {
        return Err(refuse(format!(
            "it is disabled (retired by retention); `kiln restore {recipe} {image}` brings it back"
        )));
    }
    if !images::is_available(&described) {
        return Err(refuse(format!(
            "it is {}, not available",
            images::state_name(&described)
        )));
    }
    if let Some(reason) = images::not_built_by(&described, recipe) {
        return Err(refuse(reason));
    }
    let stage = tags::value(described.tags(), tags::STAGE).unwrap_or("untagged");
    let tested = stage == Stage::Tested.as_ref();
    if !tested && !force {
        return Err(refuse(format!(
            "it is {stage}, not tested; promote it anyway with --force and a reason"
        )));
    }
    let regions = regional::regions(ctx, recipe);
    if let Some(reason) = regional::missing_copy(ctx, &regions, image).await? {
        return Err(refuse(reason));
    }
    let parameter = pointer_name(recipe, channel);
    let from = read_pointer(ctx, &parameter).await?;
    let found = from.as_ref().map_or(0, |(_, v)| *v);
    if let Some(done) = retried(ctx, recipe, channel, expected, found, &record).await? {
        return Ok(done);
    }
    if from.as_ref().is_some_and(|(current, _)| current == image) {
        let version = from.map(|(_, v)| v);
        return Ok(Move::Moved(Moved {
            message: format!("{image} is already on {channel}; nothing changed"),
            synced: sync(ctx, recipe).await?,
            ..unchanged(recipe, channel, parameter, Some(image.clone()), version)
        }));
    }
    let record = Record {
        forced: !tested,
        ..record
    };
    let written = write_pointer(ctx, recipe, channel, image, &record, from).await?;
    info!(%image, version = written.version, "promotion written");
    Ok(Move::Written(written))
}

/// Writes `recipe`'s `channel` pointer back to the image it named before its
/// current one. Repeated rollbacks walk back through the history: each
/// returns to the image the current one replaced, skipping images that were
/// rolled back from. `expected` as for [`start_promote`].
#[instrument(skip(ctx, why))]
pub async fn start_rollback(
    ctx: &Context,
    recipe: &RecipeName,
    channel: &Channel,
    why: Why<'_>,
    expected: Option<i64>,
) -> Result<Move> {
    let versions = history(ctx, recipe, channel).await?;
    let found = versions.last().map_or(0, |v| v.version);
    let record = record(Action::Rollback, why, None)?;
    if let Some(done) = retried(ctx, recipe, channel, expected, found, &record).await? {
        return Ok(done);
    }
    let nothing = |reason: &str| Error::NothingToRollBack {
        channel: channel.to_string(),
        reason: reason.to_owned(),
    };
    let current = versions
        .last()
        .ok_or_else(|| nothing("the channel has no pointer"))?;
    let target = rollback_target(&versions)
        .ok_or_else(|| nothing("its current image is the first one in the history kiln has"))?;
    let image: AmiId = target.image_id.parse()?;
    let usable = images::describe(ctx, &image)
        .await?
        .is_some_and(|i| images::is_available(&i));
    let refuse = |reason: String| Error::PromotionRefused {
        image: image.to_string(),
        channel: channel.to_string(),
        reason,
    };
    if !usable {
        return Err(refuse(format!(
            "the image version {} named is no longer available ({})",
            target.version,
            gone(ctx)
        )));
    }
    let regions = regional::regions(ctx, recipe);
    if let Some(reason) = regional::missing_copy(ctx, &regions, &image).await? {
        return Err(refuse(reason));
    }
    let record = Record {
        to_version: Some(target.version),
        ..record
    };
    let before = current
        .image_id
        .parse()
        .ok()
        .map(|id: AmiId| (id, current.version));
    let written = write_pointer(ctx, recipe, channel, &image, &record, before).await?;
    info!(%image, version = written.version, "rollback written");
    Ok(Move::Written(written))
}

/// A move `written` once SSM has accepted it: the tags are brought in line
/// and the move is done; still [`Move::Written`] while SSM validates it;
/// [`Error::PointerNotValidated`] when it never will (the tags are left as
/// they were).
#[instrument(skip(ctx))]
pub async fn confirm(ctx: &Context, written: Written) -> Result<Move> {
    match validation(ctx, &written).await? {
        Validation::Pending => Ok(Move::Written(written)),
        Validation::Refused(reason) => Err(Error::PointerNotValidated {
            parameter: written.parameter,
            image: written.image.to_string(),
            version: written.version,
            reason,
        }),
        Validation::Accepted => {
            let Written {
                recipe,
                channel,
                action,
                parameter,
                image,
                version,
                before,
                ..
            } = written;
            let moved = match action {
                Action::Promote => format!("{channel} now names {image} (version {version})"),
                Action::Rollback => format!("{channel} rolled back to {image} (version {version})"),
            };
            info!(%image, version, "accepted");
            Ok(Move::Moved(Moved {
                message: format!(
                    "{moved}{}: deploy tools resolving {parameter} get it",
                    was(before.as_ref())
                ),
                synced: sync(ctx, &recipe).await?,
                recipe,
                channel,
                parameter,
                from: before.map(|(id, _)| id),
                to: Some(image),
                version: Some(version),
                changed: true,
            }))
        }
    }
}

/// Reads `moved` again until SSM has decided on it: for callers that may
/// wait. Ends within [`pointers::VALIDATION_TIMEOUT`](super::pointers::VALIDATION_TIMEOUT).
pub async fn settle(ctx: &Context, mut moved: Move) -> Result<Moved> {
    loop {
        match moved {
            Move::Moved(done) => return Ok(done),
            Move::Written(written) => {
                tokio::time::sleep(POLL).await;
                moved = confirm(ctx, written).await?;
            }
        }
    }
}

/// Runs `write` again while SSM still validates an earlier write of the
/// pointer ([`Error::PointerPending`]), for as long as a validation may take.
async fn when_settled<F, Fut>(mut write: F) -> Result<Move>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Move>>,
{
    let deadline = tokio::time::Instant::now() + super::pointers::VALIDATION_TIMEOUT.unsigned_abs();
    loop {
        match write().await {
            Err(Error::PointerPending { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(POLL).await;
            }
            other => return other,
        }
    }
}

/// When the caller expected the pointer at version `expected` and it is at
/// `found`: `None` when it is where expected (or nothing was expected); the
/// move, done, when the version found is this very move (same action,
/// reason and actor: an earlier attempt of the request made it); else
/// [`Error::PointerMoved`].
async fn retried(
    ctx: &Context,
    recipe: &RecipeName,
    channel: &Channel,
    expected: Option<i64>,
    found: i64,
    record: &Record,
) -> Result<Option<Move>> {
    let Some(expected) = expected.filter(|expected| *expected != found) else {
        return Ok(None);
    };
    let parameter = pointer_name(recipe, channel);
    let versions = history(ctx, recipe, channel).await?;
    let same = |r: &Record| {
        r.action == record.action && r.reason == record.reason && r.actor == record.actor
    };
    let Some(done) = versions
        .iter()
        .rev()
        .find(|v| v.version == found)
        .filter(|v| found > expected && v.record.as_ref().is_some_and(same))
    else {
        return Err(Error::PointerMoved {
            parameter,
            expected,
            found,
        });
    };
    let image: AmiId = done.image_id.parse()?;
    let from = versions
        .iter()
        .find(|v| v.version == expected)
        .and_then(|v| v.image_id.parse().ok());
    Ok(Some(Move::Moved(Moved {
        message: format!(
            "{channel} names {image} (version {found}): an earlier attempt of this move wrote it"
        ),
        synced: sync(ctx, recipe).await?,
        recipe: recipe.clone(),
        channel: channel.clone(),
        parameter,
        from,
        to: Some(image),
        version: Some(found),
        changed: true,
    })))
}

/// Removes `recipe`'s `channel`: the pointer is deleted (with its history),
/// so deploy tools resolving it fail instead of launching a stale image.
#[instrument(skip(ctx, why))]
pub async fn demote(
    ctx: &Context,
    recipe: &RecipeName,
    channel: &Channel,
    why: Why<'_>,
) -> Result<Moved> {
    let reason = reason(why)?;
    let parameter = pointer_name(recipe, channel);
    let Some((image, version)) = read_pointer(ctx, &parameter).await? else {
        return Ok(Moved {
            message: format!("{channel} has no pointer ({parameter}); nothing changed"),
            synced: sync(ctx, recipe).await?,
            ..unchanged(recipe, channel, parameter.clone(), None, None)
        });
    };
    ctx.ssm()
        .delete_parameter()
        .name(&parameter)
        .send()
        .await
        .or_aws("DeleteParameter")?;
    info!(%image, version, %reason, actor = why.actor, "demoted");
    Ok(Moved {
        message: format!(
            "{channel} removed (it named {image}, version {version}): {parameter} no longer exists, \
             so launches resolving it fail until the next promotion; its history went with it"
        ),
        synced: sync(ctx, recipe).await?,
        recipe: recipe.clone(),
        channel: channel.clone(),
        parameter,
        from: Some(image),
        to: None,
        version: None,
        changed: true,
    })
}

/// Brings everything derived from `recipe`'s pointers in line with them:
/// the image a channel names carries it in `kiln:channel`, the image a
/// rollback would return to carries it in `kiln:previous`, no other image
/// carries it, and exactly those images are protected from deregistration; in each of the recipe's distribution regions, the channel's
/// pointer names the region's copy of the home image ([`regional::follow`])
/// and each copy carries the tags of the image it copies; in each member
/// account of the recipe's pointer roles, the channel's pointers name the
/// images shared with it ([`members::follow`]). Goes round again
/// while the pointers move under it. Returns what it changed.
#[instrument(skip(ctx))]
pub async fn sync(ctx: &Context, recipe: &RecipeName) -> Result<Synced> {
    let distribution = regional::distribution(ctx, recipe);
    let regions = &distribution.regions;
    let mut synced = Synced::default();
    for _ in 0..MAX_SYNC_ROUNDS {
        let map = channel_map(ctx, recipe).await?;
        let home = recipe_images(ctx, recipe).await?;
        let standing = |image: &Ec2Image| image.image_id().and_then(|id| map.images.get(id));
        synced.absorb(mark(ctx, None, &home, standing).await?);
        for region in regions {
            let there = ctx.in_region(region);
            let place = Place {
                owner: &there,
                writer: &there,
                account: None,
            };
            let moved = regional::follow(ctx, &place, recipe, &map.pointers).await?;
            synced.regional.extend(moved);
            let copies = recipe_images(&there, recipe).await?;
            let standing = |copy: &Ec2Image| regional::standing_of_copy(&map.images, copy);
            synced.absorb(mark(&there, Some(region), &copies, standing).await?);
        }
        let roles = &distribution.pointer_roles;
        let moved = members::follow(ctx, recipe, roles, regions, &map.pointers).await?;
        synced.regional.extend(moved);
        if pointers(ctx, recipe).await? == map.pointers {
            return Ok(synced);
        }
    }
    Err(Error::PointersMoving {
        recipe: recipe.to_string(),
    })
}

/// Every image of `recipe` in this account and region.
pub(crate) async fn recipe_images(ctx: &Context, recipe: &RecipeName) -> Result<Vec<Ec2Image>> {
    images::own(ctx, vec![tags::filter(tags::RECIPE, recipe.as_str())]).await
}

fn gone(ctx: &Context) -> String {
    let region = ctx
        .ec2()
        .config()
        .region()
        .map_or_else(|| "this region".to_owned(), ToString::to_string);
    format!(
        "no such image in {region}: it is deregistered, or lives in another region \
         (a pointer names images of its own region: copy the image here first)"
    )
}

fn was(from: Option<&(AmiId, i64)>) -> String {
    from.map(|(id, v)| format!(" (was {id}, version {v})"))
        .unwrap_or_default()
}

fn unchanged(
    recipe: &RecipeName,
    channel: &Channel,
    parameter: String,
    image: Option<AmiId>,
    version: Option<i64>,
) -> Moved {
    Moved {
        recipe: recipe.clone(),
        channel: channel.clone(),
        parameter,
        from: image.clone(),
        to: image,
        version,
        changed: false,
        message: String::new(),
        synced: Synced::default(),
    }
}
