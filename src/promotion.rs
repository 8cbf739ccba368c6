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
//! alone by [`sync_tags`], which every operation ends with and `kiln doctor`
//! runs. A crash between a pointer write and the tags is repaired by the next
//! operation; racing operations converge, since each sync reads the pointers
//! again after writing and goes round again if they moved.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::Image as Ec2Image;
use aws_sdk_ssm::types::ParameterType;
use serde::{Deserialize, Serialize};
use tracing::{info, instrument};

use crate::aws::Context;
use crate::error::{Error, Result};
use crate::state::{AmiId, Channel, RecipeName};
use crate::tags::{self, Stage};

/// Where the pointers live: `/kiln/<recipe>/<channel>`.
pub const POINTER_ROOT: &str = "/kiln";
/// The data type of a pointer: SSM checks the value is an image id.
const POINTER_DATA_TYPE: &str = "aws:ec2:image";
/// Longest parameter description SSM accepts.
const MAX_DESCRIPTION_LEN: usize = 1024;
/// Longest reason kept in the record (the rest of the description is JSON).
const MAX_REASON_LEN: usize = 600;
/// Rounds [`sync_tags`] makes before giving up on pointers that keep moving.
const MAX_SYNC_ROUNDS: usize = 5;

/// The pointer parameter of `recipe`'s `channel`.
pub fn pointer_name(recipe: &RecipeName, channel: &Channel) -> String {
    format!("{POINTER_ROOT}/{recipe}/{channel}")
}

/// How a pointer version came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Action {
    /// An image was promoted to the channel.
    Promote,
    /// The channel went back to an earlier image.
    Rollback,
}

/// What a pointer version records, as JSON in its description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The move.
    pub action: Action,
    /// Why, in the mover's words.
    pub reason: String,
    /// Who says they moved it (SSM also records the authenticated caller).
    pub actor: String,
    /// Promoted without having passed its test.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
    /// For a rollback: the version it returned to (see [`rollback`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_version: Option<i64>,
}

/// One version of a pointer: one move in the channel's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Version {
    /// The parameter version (1, 2, ...).
    pub version: i64,
    /// The image it named.
    pub image_id: String,
    /// When it was written (RFC 3339).
    pub at: Option<String>,
    /// Who wrote it, as SSM records the caller.
    pub by: Option<String>,
    /// The move, when kiln wrote it.
    pub record: Option<Record>,
}

/// Who moves a pointer, and why.
#[derive(Debug, Clone, Copy)]
pub struct Why<'a> {
    /// Why: required, it goes into the history.
    pub reason: &'a str,
    /// Who (a person's name, or the automation's).
    pub actor: &'a str,
}

/// A tag kiln changed to make the tags agree with the pointers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagChange {
    /// The image.
    pub image_id: String,
    /// The tag key.
    pub key: &'static str,
    /// Its value before (absent: no tag).
    pub from: Option<String>,
    /// Its value after (absent: tag removed).
    pub to: Option<String>,
}

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
    /// Tags changed to agree with the pointers (including repairs of an
    /// earlier, interrupted operation).
    pub tags: Vec<TagChange>,
}

/// The input of the promote Lambda: one move of one channel, or a retention
/// run over a recipe's images.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// [`promote`].
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
    },
    /// [`rollback`].
    Rollback {
        /// The recipe.
        recipe: RecipeName,
        /// The channel.
        channel: Channel,
        /// Why.
        reason: String,
        /// Who (default: the Lambda itself).
        actor: Option<String>,
    },
    /// [`demote`].
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
    /// [`crate::rollout::advance`]: one step of a release, as the release
    /// state machine carries it.
    Release {
        /// The release.
        release: crate::rollout::Release,
    },
    /// [`crate::retention::prune`].
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

/// Points `recipe`'s `channel` at `image`. Refused, with nothing changed, when
/// the image does not exist in this region (deregistered, or in another
/// region than the pointer), is not available, was not built by `recipe`, or
/// has not passed its test (unless `force`). Promoting the image the channel
/// already names changes nothing and says so.
#[instrument(skip(ctx, why))]
pub async fn promote(
    ctx: &Context,
    recipe: &RecipeName,
    channel: &Channel,
    image: &AmiId,
    why: Why<'_>,
    force: bool,
) -> Result<Moved> {
    let record = record(Action::Promote, why, None)?;
    let refuse = |reason: String| Error::PromotionRefused {
        image: image.to_string(),
        channel: channel.to_string(),
        reason,
    };
    let Some(described) = describe(ctx, image).await? else {
        return Err(refuse(gone(ctx)));
    };
    let state = described.state().map_or("unknown", |s| s.as_str());
    if state != "available" {
        return Err(refuse(format!("it is {state}, not available")));
    }
    match tags::value(described.tags(), tags::RECIPE) {
        Some(built_by) if built_by == recipe.as_str() => {}
        Some(other) => return Err(refuse(format!("it was built by recipe {other}"))),
        None => {
            return Err(refuse(
                "it was not built by kiln (no kiln:recipe tag)".into(),
            ));
        }
    }
    let stage = tags::value(described.tags(), tags::STAGE).unwrap_or("untagged");
    let tested = stage == Stage::Tested.as_ref();
    if !tested && !force {
        return Err(refuse(format!(
            "it is {stage}, not tested; promote it anyway with --force and a reason"
        )));
    }
    let parameter = pointer_name(recipe, channel);
    let from = read_pointer(ctx, &parameter).await?;
    if from.as_ref().is_some_and(|(current, _)| current == image) {
        let version = from.map(|(_, v)| v);
        return Ok(Moved {
            message: format!("{image} is already on {channel}; nothing changed"),
            tags: sync_tags(ctx, recipe).await?,
            ..unchanged(recipe, channel, parameter, Some(image.clone()), version)
        });
    }
    let record = Record {
        forced: !tested,
        ..record
    };
    let version = write_pointer(ctx, &parameter, image, &record).await?;
    info!(%image, version, "promoted");
    Ok(Moved {
        message: format!(
            "{channel} now names {image}{}: deploy tools resolving {parameter} get it",
            was(from.as_ref())
        ),
        tags: sync_tags(ctx, recipe).await?,
        recipe: recipe.clone(),
        channel: channel.clone(),
        parameter,
        from: from.map(|(id, _)| id),
        to: Some(image.clone()),
        version: Some(version),
        changed: true,
    })
}

/// Moves `recipe`'s `channel` back to the image it named before its current
/// one. Repeated rollbacks walk back through the history: each returns to the
/// image the current one replaced, skipping images that were rolled back from.
#[instrument(skip(ctx, why))]
pub async fn rollback(
    ctx: &Context,
    recipe: &RecipeName,
    channel: &Channel,
    why: Why<'_>,
) -> Result<Moved> {
    let parameter = pointer_name(recipe, channel);
    let versions = history(ctx, recipe, channel).await?;
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
    let usable = describe(ctx, &image)
        .await?
        .is_some_and(|i| i.state().is_some_and(|s| s.as_str() == "available"));
    if !usable {
        return Err(Error::PromotionRefused {
            image: image.to_string(),
            channel: channel.to_string(),
            reason: format!(
                "the image version {} named is no longer available ({})",
                target.version,
                gone(ctx)
            ),
        });
    }
    let record = record(Action::Rollback, why, Some(target.version))?;
    let version = write_pointer(ctx, &parameter, &image, &record).await?;
    let from: Option<AmiId> = current.image_id.parse().ok();
    info!(%image, version, "rolled back");
    Ok(Moved {
        message: format!(
            "{channel} rolled back to {image} (version {}){}: deploy tools resolving {parameter} get it",
            target.version,
            was(from
                .as_ref()
                .map(|id| (id.clone(), current.version))
                .as_ref())
        ),
        tags: sync_tags(ctx, recipe).await?,
        recipe: recipe.clone(),
        channel: channel.clone(),
        parameter,
        from,
        to: Some(image),
        version: Some(version),
        changed: true,
    })
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
            tags: sync_tags(ctx, recipe).await?,
            ..unchanged(recipe, channel, parameter.clone(), None, None)
        });
    };
    ctx.ssm
        .delete_parameter()
        .name(&parameter)
        .send()
        .await
        .map_err(|err| Error::aws("DeleteParameter", err))?;
    info!(%image, version, %reason, actor = why.actor, "demoted");
    Ok(Moved {
        message: format!(
            "{channel} removed (it named {image}, version {version}): {parameter} no longer exists, \
             so launches resolving it fail until the next promotion; its history went with it"
        ),
        tags: sync_tags(ctx, recipe).await?,
        recipe: recipe.clone(),
        channel: channel.clone(),
        parameter,
        from: Some(image),
        to: None,
        version: None,
        changed: true,
    })
}

/// Every version of `recipe`'s `channel` pointer, oldest first; empty when
/// the channel has no pointer.
pub async fn history(
    ctx: &Context,
    recipe: &RecipeName,
    channel: &Channel,
) -> Result<Vec<Version>> {
    let parameter = pointer_name(recipe, channel);
    let mut versions = Vec::new();
    let mut pages = ctx
        .ssm
        .get_parameter_history()
        .name(&parameter)
        .max_results(50)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_parameter_not_found()) =>
            {
                return Ok(Vec::new());
            }
            Err(err) => return Err(Error::aws("GetParameterHistory", err)),
        };
        versions.extend(page.parameters().iter().map(|p| Version {
            version: p.version(),
            image_id: p.value().unwrap_or_default().to_owned(),
            at: p.last_modified_date().map(ToString::to_string),
            by: p.last_modified_user().map(str::to_owned),
            record: p.description().and_then(|d| serde_json::from_str(d).ok()),
        }));
    }
    versions.sort_by_key(|v| v.version);
    Ok(versions)
}

/// The image each channel of `recipe` names: channel -> (image, version).
pub async fn pointers(
    ctx: &Context,
    recipe: &RecipeName,
) -> Result<BTreeMap<Channel, (String, i64)>> {
    let prefix = format!("{POINTER_ROOT}/{recipe}/");
    let mut found = BTreeMap::new();
    let mut pages = ctx
        .ssm
        .get_parameters_by_path()
        .path(format!("{POINTER_ROOT}/{recipe}"))
        .recursive(false)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| Error::aws("GetParametersByPath", err))?;
        for parameter in page.parameters() {
            let channel = parameter
                .name()
                .and_then(|name| name.strip_prefix(&prefix))
                .and_then(|name| name.parse::<Channel>().ok());
            if let Some(channel) = channel {
                let value = parameter.value().unwrap_or_default().to_owned();
                found.insert(channel, (value, parameter.version()));
            }
        }
    }
    Ok(found)
}

/// Where an image stands on the channels, by the pointers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Standing {
    /// The channels that name it.
    pub channels: BTreeSet<Channel>,
    /// The channels a rollback would return to it.
    pub previous: BTreeSet<Channel>,
}

/// Every channel pointer of a recipe, and where each image stands by them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelMap {
    /// Channel -> (image, pointer version).
    pub pointers: BTreeMap<Channel, (String, i64)>,
    /// Image id -> its standing; images on no channel are absent.
    pub images: BTreeMap<String, Standing>,
}

/// Reads every pointer of `recipe` and its history: which image each channel
/// names, and which it would roll back to.
pub async fn channel_map(ctx: &Context, recipe: &RecipeName) -> Result<ChannelMap> {
    let pointers = pointers(ctx, recipe).await?;
    let mut images: BTreeMap<String, Standing> = BTreeMap::new();
    for (channel, (image, _)) in &pointers {
        images
            .entry(image.clone())
            .or_default()
            .channels
            .insert(channel.clone());
        let versions = history(ctx, recipe, channel).await?;
        if let Some(target) = rollback_target(&versions).filter(|t| &t.image_id != image) {
            images
                .entry(target.image_id.clone())
                .or_default()
                .previous
                .insert(channel.clone());
        }
    }
    Ok(ChannelMap { pointers, images })
}

/// Brings every image tag of `recipe` in line with its pointers: the image a
/// channel names carries it in `kiln:channel`, the image a rollback would
/// return to carries it in `kiln:previous`, no other image carries it. Goes
/// round again while the pointers move under it. Returns what it changed.
#[instrument(skip(ctx))]
pub async fn sync_tags(ctx: &Context, recipe: &RecipeName) -> Result<Vec<TagChange>> {
    let mut changes = Vec::new();
    for _ in 0..MAX_SYNC_ROUNDS {
        let ChannelMap {
            pointers: before,
            images: mut desired,
        } = channel_map(ctx, recipe).await?;
        for image in recipe_images(ctx, recipe).await? {
            let Some(id) = image.image_id() else { continue };
            let wanted = desired.remove(id).unwrap_or_default();
            for (key, channels) in [
                (tags::CHANNEL, wanted.channels),
                (tags::PREVIOUS, wanted.previous),
            ] {
                let to = (!channels.is_empty()).then(|| {
                    channels
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                });
                let from = tags::value(image.tags(), key).map(str::to_owned);
                if from != to {
                    set_tag(ctx, id, key, to.as_deref()).await?;
                    changes.push(TagChange {
                        image_id: id.to_owned(),
                        key,
                        from,
                        to,
                    });
                }
            }
        }
        let after = pointers(ctx, recipe).await?;
        if after == before {
            return Ok(changes);
        }
    }
    Err(Error::PointersMoving {
        recipe: recipe.to_string(),
    })
}

/// The version a rollback returns to: the one whose image the current
/// version replaced. A rollback version stands where the version it returned
/// to stands, so repeated rollbacks walk back and never return to an image
/// that was rolled back from.
fn rollback_target(versions: &[Version]) -> Option<&Version> {
    let position = |version: i64| -> Option<i64> {
        let found = versions.iter().find(|v| v.version == version)?;
        Some(match &found.record {
            Some(Record {
                action: Action::Rollback,
                to_version: Some(to),
                ..
            }) => *to,
            _ => found.version,
        })
    };
    let current = position(versions.last()?.version)?;
    let target = position(current - 1)?;
    versions.iter().find(|v| v.version == target)
}

/// The rollback that moved a channel off `image`, if one did: a rollback
/// version right after a version naming it.
pub fn rolled_back_from<'a>(versions: &'a [Version], image: &str) -> Option<&'a Version> {
    versions.windows(2).find_map(|pair| {
        let rollback = matches!(
            pair[1].record,
            Some(Record {
                action: Action::Rollback,
                ..
            })
        );
        (rollback && pair[0].image_id == image).then_some(&pair[1])
    })
}

/// The reason of a move: required, and short enough for the record.
fn reason(why: Why<'_>) -> Result<String> {
    let reason = why.reason.trim();
    if reason.is_empty() {
        return Err(Error::InvalidInput(
            "a reason is required: it goes into the channel's history".into(),
        ));
    }
    let mut reason = reason.to_owned();
    crate::text::truncate(&mut reason, MAX_REASON_LEN);
    Ok(reason)
}

fn record(action: Action, why: Why<'_>, to_version: Option<i64>) -> Result<Record> {
    Ok(Record {
        action,
        reason: reason(why)?,
        actor: why.actor.chars().take(100).collect(),
        forced: false,
        to_version,
    })
}

async fn write_pointer(
    ctx: &Context,
    parameter: &str,
    image: &AmiId,
    record: &Record,
) -> Result<i64> {
    let description = description(record)?;
    let output = ctx
        .ssm
        .put_parameter()
        .name(parameter)
        .value(image.as_str())
        .r#type(ParameterType::String)
        .data_type(POINTER_DATA_TYPE)
        .overwrite(true)
        .description(description)
        .send()
        .await
        .map_err(|err| Error::aws("PutParameter", err))?;
    Ok(output.version())
}

/// The record as a parameter description: JSON within SSM's 1,024 bytes (a
/// reason full of characters JSON escapes is shortened further).
fn description(record: &Record) -> Result<String> {
    let mut record = record.clone();
    loop {
        let json = serde_json::to_string(&record)
            .map_err(|err| Error::InvalidInput(format!("cannot record the move: {err}")))?;
        if json.len() <= MAX_DESCRIPTION_LEN || record.reason.is_empty() {
            return Ok(json);
        }
        let shorter = record.reason.len() * 3 / 4;
        crate::text::truncate(&mut record.reason, shorter);
    }
}

async fn read_pointer(ctx: &Context, parameter: &str) -> Result<Option<(AmiId, i64)>> {
    let Some(found) = ctx.parameter(parameter).await? else {
        return Ok(None);
    };
    let image = found.value().unwrap_or_default().parse()?;
    Ok(Some((image, found.version())))
}

/// The image, when it exists in this region.
async fn describe(ctx: &Context, image: &AmiId) -> Result<Option<Ec2Image>> {
    match ctx
        .ec2
        .describe_images()
        .image_ids(image.as_str())
        .send()
        .await
    {
        Ok(output) => Ok(output.images.unwrap_or_default().into_iter().next()),
        Err(err) if Error::code_of(&err).is_some_and(|c| c.starts_with("InvalidAMIID")) => Ok(None),
        Err(err) => Err(Error::aws("DescribeImages", err)),
    }
}

/// Every image of `recipe` in this account and region.
pub(crate) async fn recipe_images(ctx: &Context, recipe: &RecipeName) -> Result<Vec<Ec2Image>> {
    let mut images = Vec::new();
    let mut pages = ctx
        .ec2
        .describe_images()
        .owners("self")
        .filters(tags::filter(tags::RECIPE, recipe.as_str()))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| Error::aws("DescribeImages", err))?;
        images.extend(page.images.unwrap_or_default());
    }
    Ok(images)
}

async fn set_tag(ctx: &Context, image: &str, key: &str, value: Option<&str>) -> Result<()> {
    match value {
        Some(value) => ctx
            .ec2
            .create_tags()
            .resources(image)
            .tags(tags::tag(key, value))
            .send()
            .await
            .map(drop)
            .map_err(|err| Error::aws("CreateTags", err)),
        None => ctx
            .ec2
            .delete_tags()
            .resources(image)
            .tags(aws_sdk_ec2::types::Tag::builder().key(key).build())
            .send()
            .await
            .map(drop)
            .map_err(|err| Error::aws("DeleteTags", err)),
    }
}

fn gone(ctx: &Context) -> String {
    let region = ctx
        .ec2
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
        tags: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(version: i64, image: &str, action: Action, to_version: Option<i64>) -> Version {
        Version {
            version,
            image_id: image.into(),
            at: None,
            by: None,
            record: Some(Record {
                action,
                reason: "r".into(),
                actor: "a".into(),
                forced: false,
                to_version,
            }),
        }
    }

    fn target(versions: &[Version]) -> Option<&str> {
        rollback_target(versions).map(|v| v.image_id.as_str())
    }

    #[test]
    fn rollbacks_walk_back_through_the_promotions() {
        let mut history = vec![
            version(1, "A", Action::Promote, None),
            version(2, "B", Action::Promote, None),
            version(3, "C", Action::Promote, None),
        ];
        assert_eq!(target(&history), Some("B"));
        history.push(version(4, "B", Action::Rollback, Some(2)));
        assert_eq!(target(&history), Some("A"));
        history.push(version(5, "A", Action::Rollback, Some(1)));
        assert_eq!(target(&history), None, "A was the first");
        history.push(version(6, "D", Action::Promote, None));
        assert_eq!(target(&history), Some("A"), "D replaced A");
    }

    #[test]
    fn a_rolled_back_image_is_never_returned_to() {
        let history = vec![
            version(1, "A", Action::Promote, None),
            version(2, "B", Action::Promote, None),
            version(3, "A", Action::Rollback, Some(1)),
            version(4, "C", Action::Promote, None),
        ];
        assert_eq!(target(&history), Some("A"), "C replaced A, not B");
    }

    #[test]
    fn an_image_rolled_back_from_is_found_in_the_history() {
        let history = vec![
            version(1, "A", Action::Promote, None),
            version(2, "B", Action::Promote, None),
            version(3, "A", Action::Rollback, Some(1)),
            version(4, "C", Action::Promote, None),
        ];
        assert_eq!(rolled_back_from(&history, "B").map(|v| v.version), Some(3));
        assert!(rolled_back_from(&history, "A").is_none());
        assert!(rolled_back_from(&history, "C").is_none());
    }

    #[test]
    fn a_reason_is_required_and_kept_short() {
        fn why(reason: &str) -> Why<'_> {
            Why {
                reason,
                actor: "ana",
            }
        }
        assert!(record(Action::Promote, why("  "), None).is_err());
        for long in [
            "x".repeat(5_000),
            "\"\n".repeat(2_000),
            "\u{e9}".repeat(3_000),
        ] {
            let kept = record(Action::Promote, why(&long), None).expect("record");
            let json = description(&kept).expect("json");
            assert!(json.len() <= MAX_DESCRIPTION_LEN, "{}", json.len());
            assert!(!kept.reason.is_empty());
        }
    }
}
