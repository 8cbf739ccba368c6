//! A channel in every distribution region: the home region's pointer (the
//! build region's) is the truth; each of the recipe's distribution regions
//! has a pointer of the same name (`/kiln/<recipe>/<channel>` there, so a
//! launch template of that region resolves it as it would at home) naming
//! that region's copy of the image the home pointer names.
//!
//! Regional pointers follow the home ones the way tags do: every operation
//! ends with a sync ([`follow`], from `promotion::sync`), and `kiln doctor`
//! runs it, so a move interrupted between the home write and the regional
//! ones is rolled forward by the next operation. A move is refused, before
//! anything is written anywhere, when a distribution region has no available
//! copy of its image ([`missing_copy`]). Each regional version records the
//! home version it follows, with the home move's reason and actor.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Image as Ec2Image;
use serde::Serialize;
use tracing::info;

use super::pointers::{self, Action, Record, Standing, pointer_name, read_pointer, write_pointer};
use crate::aws::sdk::Answer;
use crate::aws::{Context, images};
use crate::error::{Error, Result};
use crate::ids::{AmiId, Channel, RecipeName};
use crate::recipe::schema::Distribution;
use crate::tags;

/// A pointer kiln moved to follow the home one (in a distribution region,
/// or in a member account), or could not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionalMove {
    /// The region.
    pub region: String,
    /// The member account, when not the home one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The pointer there.
    pub parameter: String,
    /// The image it named before (absent: it did not exist).
    pub from: Option<String>,
    /// The image it names now (absent: removed, or left as it was).
    pub to: Option<AmiId>,
    /// Why it was left as it was, when it could not follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The `[distribution]` of `recipe` (empty when it does not load here: its
/// regional and member pointers are then neither checked nor moved).
pub fn distribution(ctx: &Context, recipe: &RecipeName) -> Distribution {
    ctx.recipe(recipe)
        .map(|r| r.file.distribution)
        .unwrap_or_default()
}

/// The distribution regions of `recipe` ([`distribution`]'s).
pub fn regions(ctx: &Context, recipe: &RecipeName) -> Vec<String> {
    distribution(ctx, recipe).regions
}

/// The copy of `image` (made in region `home`) in `there`'s region, if any.
pub async fn copy_of(there: &Context, image: &str, home: &str) -> Result<Option<Ec2Image>> {
    let found = images::own(
        there,
        vec![
            tags::filter(tags::COPY_OF, image),
            tags::filter(tags::COPY_OF_REGION, home),
        ],
    )
    .await?;
    Ok(found.into_iter().next())
}

/// Why `image` cannot be on a channel in every one of `regions`: the first
/// region without an available copy of it, in words; `None` when each has one.
pub async fn missing_copy(
    ctx: &Context,
    regions: &[String],
    image: &AmiId,
) -> Result<Option<String>> {
    let home = ctx.region()?;
    for region in regions {
        let there = ctx.in_region(region);
        match copy_of(&there, image.as_str(), &home).await? {
            None => {
                return Ok(Some(format!(
                    "{region} (a distribution region) has no copy of it: kiln distribute copies it"
                )));
            }
            Some(copy) if !images::is_available(&copy) => {
                return Ok(Some(format!(
                    "its copy {} in {region} is {}, not available",
                    images::id(&copy).map(|i| i.to_string()).unwrap_or_default(),
                    images::state_name(&copy)
                )));
            }
            Some(_) => {}
        }
    }
    Ok(None)
}

/// Where a channel's pointers follow the home ones: a region of the home
/// account, or a region of a member account ([`super::members`]).
pub struct Place<'a> {
    /// The home account in the region: where the image to name is found
    /// (the home image in the home region, its copy elsewhere).
    pub owner: &'a Context,
    /// Where the pointers are read and written: the owner, or a member
    /// account's role in the region.
    pub writer: &'a Context,
    /// The member account, when not the home one.
    pub account: Option<&'a str>,
}

/// Moves `recipe`'s pointers at `place` to follow `home` (channel -> (image,
/// version) in the home region): each names the region's image of the home
/// one (the home image itself in the home region, its copy elsewhere) in a
/// version that records it follows the home version (a pointer naming the
/// right image for an older home version is written again, so a regional
/// write SSM had not shown yet cannot stay behind a later home move), and a
/// channel the home region no longer has is removed. A home image with no
/// available copy here, or one a member account cannot see (not shared with
/// it), leaves the pointer as it is, reported with its problem.
pub async fn follow(
    ctx: &Context,
    place: &Place<'_>,
    recipe: &RecipeName,
    home: &BTreeMap<Channel, (String, i64)>,
) -> Result<Vec<RegionalMove>> {
    let home_region = ctx.region()?;
    let region = place.owner.region()?;
    let current = pointers::pointers(place.writer, recipe).await?;
    let mut moves = Vec::new();
    let mut report = |parameter: String, from: Option<String>, to, problem| {
        moves.push(RegionalMove {
            region: region.clone(),
            account: place.account.map(str::to_owned),
            parameter,
            from,
            to,
            problem,
        });
    };
    for (channel, (image, version)) in home {
        let parameter = pointer_name(recipe, channel);
        let last = pointers::history(place.writer, recipe, channel)
            .await?
            .pop();
        let from = last.as_ref().map(|v| v.image_id.clone());
        let follows = last.and_then(|v| v.record).and_then(|r| r.follows);
        let named = if region == home_region {
            image.parse::<AmiId>().ok()
        } else {
            copy_of(place.owner, image, &home_region)
                .await?
                .filter(images::is_available)
                .and_then(|c| images::id(&c))
        };
        let Some(named) = named else {
            report(
                parameter,
                from,
                None,
                Some(format!("no available copy of {image} here")),
            );
            continue;
        };
        if from.as_deref() == Some(named.as_str()) && follows == Some(*version) {
            continue;
        }
        if let Some(account) = place.account
            && images::describe(place.writer, &named).await?.is_none()
        {
            report(
                parameter,
                from,
                None,
                Some(format!(
                    "{named} is not shared with account {account}: kiln distribute shares it"
                )),
            );
            continue;
        }
        let record = followed(ctx, recipe, channel, *version).await?;
        let before = read_pointer(place.writer, &parameter).await?;
        match write_pointer(place.writer, recipe, channel, &named, &record, before).await {
            Ok(_) => {
                info!(%region, account = place.account, %channel, %named, version, "pointer follows home");
                report(parameter, from, Some(named), None);
            }
            Err(Error::PointerPending { .. }) => report(
                parameter,
                from,
                None,
                Some(
                    "SSM still validates an earlier write of it: the next operation or kiln \
                     doctor moves it"
                        .into(),
                ),
            ),
            Err(err) => return Err(err),
        }
    }
    for (channel, (image, _)) in current.iter().filter(|(c, _)| !home.contains_key(*c)) {
        let parameter = pointer_name(recipe, channel);
        place
            .writer
            .ssm()
            .delete_parameter()
            .name(&parameter)
            .send()
            .await
            .or_aws("DeleteParameter")?;
        info!(%region, account = place.account, %channel, "pointer removed: the home channel is gone");
        report(parameter, Some(image.clone()), None, None);
    }
    Ok(moves)
}

/// The record of a regional version following home version `version` of
/// `channel`: the home move's action, reason and actor, and the version it
/// follows.
async fn followed(
    ctx: &Context,
    recipe: &RecipeName,
    channel: &Channel,
    version: i64,
) -> Result<Record> {
    let history = pointers::history(ctx, recipe, channel).await?;
    let home = history
        .iter()
        .find(|v| v.version == version)
        .and_then(|v| v.record.clone());
    Ok(Record {
        action: home.as_ref().map_or(Action::Promote, |r| r.action),
        reason: home
            .as_ref()
            .map_or_else(|| "set outside kiln".to_owned(), |r| r.reason.clone()),
        actor: home.as_ref().map_or_else(String::new, |r| r.actor.clone()),
        forced: home.as_ref().is_some_and(|r| r.forced),
        to_version: None,
        follows: Some(version),
    })
}

/// Where each copy in a region stands: the standing of the home image it is
/// a copy of (by its `kiln:copy-of` tag), so a region's tags follow the home
/// pointers too.
pub fn standing_of_copy<'a>(
    home: &'a BTreeMap<String, Standing>,
    copy: &Ec2Image,
) -> Option<&'a Standing> {
    home.get(tags::value(copy.tags(), tags::COPY_OF)?)
}
