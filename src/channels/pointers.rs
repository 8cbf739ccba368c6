//! The pointers: one SSM parameter per recipe and channel,
//! `/kiln/<recipe>/<channel>` (data type `aws:ec2:image`), whose value is the
//! AMI deploy tools launch (a launch template can say
//! `resolve:ssm:/kiln/<recipe>/prod`). Its version history is the channel's
//! history: each version's description records the move (action, reason,
//! actor) as JSON, and SSM records who wrote it. The pointers are the single
//! source of truth about the channels: everything else (tags, reports) is
//! derived from them.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ssm::operation::get_parameter_history::GetParameterHistoryError;
use aws_sdk_ssm::types::ParameterType;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::aws::sdk;
use crate::aws::{Context, images};
use crate::error::{Error, Result};
use crate::ids::{AmiId, Channel, RecipeName};

/// Where the pointers live: `/kiln/<recipe>/<channel>`.
pub const POINTER_ROOT: &str = "/kiln";
/// How a launch template names an image SSM resolves at launch:
/// `resolve:ssm:<parameter>[:<version or label>]`.
pub const RESOLVE_SSM: &str = "resolve:ssm:";
/// The data type of a pointer: SSM checks the value is an image id.
const POINTER_DATA_TYPE: &str = "aws:ec2:image";
/// Longest parameter description SSM accepts.
const MAX_DESCRIPTION_LEN: usize = 1024;
/// Longest reason kept in the record (the rest of the description is JSON).
const MAX_REASON_LEN: usize = 600;

/// The pointer parameter of `recipe`'s `channel`.
pub fn pointer_name(recipe: &RecipeName, channel: &Channel) -> String {
    format!("{POINTER_ROOT}/{recipe}/{channel}")
}

/// The image `asked` names: an image id as it is, or a channel of `recipe`
/// (the image its pointer names now). An unknown channel, or a channel
/// without its recipe, is `InvalidInput`.
pub async fn image_named(ctx: &Context, recipe: Option<&RecipeName>, asked: &str) -> Result<AmiId> {
    if let Ok(image) = asked.parse::<AmiId>() {
        return Ok(image);
    }
    let channel: Channel = asked.parse().map_err(|_| {
        Error::InvalidInput(format!(
            "{asked:?} is neither an image id nor a channel name"
        ))
    })?;
    let recipe = recipe
        .ok_or_else(|| Error::InvalidInput(format!("{asked} is a channel: name its recipe")))?;
    let parameter = ctx
        .parameter(&pointer_name(recipe, &channel))
        .await?
        .ok_or_else(|| Error::InvalidInput(format!("recipe {recipe} has no channel {channel}")))?;
    parameter
        .value()
        .unwrap_or_default()
        .parse()
        .map_err(|_| Error::InvalidInput(format!("channel {channel} of {recipe} names no image")))
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
    /// For a rollback: the version it returned to (see [`rollback`](crate::channels::promotion::rollback)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_version: Option<i64>,
    /// For a distribution region's pointer: the home pointer's version it
    /// follows (`channels::regional`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follows: Option<i64>,
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

/// Every version of `recipe`'s `channel` pointer, oldest first; empty when
/// the channel has no pointer.
pub async fn history(
    ctx: &Context,
    recipe: &RecipeName,
    channel: &Channel,
) -> Result<Vec<Version>> {
    let parameter = pointer_name(recipe, channel);
    let pages = ctx
        .ssm()
        .get_parameter_history()
        .name(&parameter)
        .max_results(50)
        .into_paginator()
        .send();
    let missing = |err: &SdkError<GetParameterHistoryError, HttpResponse>| {
        err.as_service_error()
            .is_some_and(GetParameterHistoryError::is_parameter_not_found)
    };
    let Some(found) = sdk::all_or_missing(pages, "GetParameterHistory", missing).await? else {
        return Ok(Vec::new());
    };
    let mut versions: Vec<Version> = found
        .iter()
        .flat_map(|page| page.parameters())
        .map(|p| Version {
            version: p.version(),
            image_id: p.value().unwrap_or_default().to_owned(),
            at: p.last_modified_date().map(ToString::to_string),
            by: p.last_modified_user().map(str::to_owned),
            record: p.description().and_then(|d| serde_json::from_str(d).ok()),
        })
        .collect();
    versions.sort_by_key(|v| v.version);
    Ok(versions)
}

/// The image each channel of `recipe` names: channel -> (image, version).
pub async fn pointers(
    ctx: &Context,
    recipe: &RecipeName,
) -> Result<BTreeMap<Channel, (String, i64)>> {
    let prefix = format!("{POINTER_ROOT}/{recipe}/");
    let pages = ctx
        .ssm()
        .get_parameters_by_path()
        .path(format!("{POINTER_ROOT}/{recipe}"))
        .recursive(false)
        .into_paginator()
        .send();
    Ok(sdk::all(pages, "GetParametersByPath")
        .await?
        .iter()
        .flat_map(|page| page.parameters())
        .filter_map(|parameter| {
            let channel = parameter
                .name()?
                .strip_prefix(&prefix)?
                .parse::<Channel>()
                .ok()?;
            let value = parameter.value().unwrap_or_default().to_owned();
            Some((channel, (value, parameter.version())))
        })
        .collect())
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

/// The version a rollback returns to: the one whose image the current
/// version replaced. A rollback version stands where the version it returned
/// to stands, so repeated rollbacks walk back and never return to an image
/// that was rolled back from. Versions may be missing: one SSM did not accept
/// never shows.
pub(crate) fn rollback_target(versions: &[Version]) -> Option<&Version> {
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
    let before = versions.iter().rev().find(|v| v.version < current)?;
    let target = position(before.version)?;
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
pub(crate) fn reason(why: Why<'_>) -> Result<String> {
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

/// The record of a move.
pub(crate) fn record(action: Action, why: Why<'_>, to_version: Option<i64>) -> Result<Record> {
    Ok(Record {
        action,
        reason: reason(why)?,
        actor: why.actor.chars().take(100).collect(),
        forced: false,
        to_version,
        follows: None,
    })
}

/// How long kiln waits for SSM to validate a pointer write before it
/// concludes the write was not accepted. SSM names no time (validation
/// usually takes seconds); a value that fails it never shows.
pub const VALIDATION_TIMEOUT: SignedDuration = SignedDuration::from_secs(300);

/// A pointer version written and not yet confirmed: PutParameter answers
/// before SSM has validated an `aws:ec2:image` value, and a value that
/// fails the validation never becomes the parameter (PutParameter, DataType).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// The recipe.
    pub recipe: RecipeName,
    /// The channel.
    pub channel: Channel,
    /// The move.
    pub action: Action,
    /// The pointer parameter.
    pub parameter: String,
    /// The image written.
    pub image: AmiId,
    /// The version PutParameter gave it.
    pub version: i64,
    /// The image and version the pointer named before (absent: it was new).
    pub before: Option<(AmiId, i64)>,
    /// When it was written.
    pub written_at: Timestamp,
}

/// Where SSM's validation of a [`Written`] version stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    /// The version holds the image.
    Accepted,
    /// Not validated yet: read again later.
    Pending,
    /// It will never hold the image, for this reason.
    Refused(String),
}

/// Writes `image` to `recipe`'s `channel` pointer with `record` (`before`:
/// what the pointer named when the caller read it); SSM validates the value
/// afterwards ([`validation`]). A write while SSM still validates the last
/// one is [`Error::PointerPending`].
pub(crate) async fn write_pointer(
    ctx: &Context,
    recipe: &RecipeName,
    channel: &Channel,
    image: &AmiId,
    record: &Record,
    before: Option<(AmiId, i64)>,
) -> Result<Written> {
    let parameter = pointer_name(recipe, channel);
    let description = description(record)?;
    let output = ctx
        .ssm()
        .put_parameter()
        .name(&parameter)
        .value(image.as_str())
        .r#type(ParameterType::String)
        .data_type(POINTER_DATA_TYPE)
        .overwrite(true)
        .description(description)
        .send()
        .await
        .map_err(|err| {
            if sdk::code_in(&err, &["TooManyUpdates"]) {
                Error::PointerPending {
                    parameter: parameter.clone(),
                }
            } else {
                Error::aws("PutParameter", err)
            }
        })?;
    Ok(Written {
        recipe: recipe.clone(),
        channel: channel.clone(),
        action: record.action,
        parameter,
        image: image.clone(),
        version: output.version(),
        before,
        written_at: Timestamp::now(),
    })
}

/// Whether SSM accepted `written`: its version shows with its image
/// (accepted); a later version shows and it does not, its image is gone, or
/// [`VALIDATION_TIMEOUT`] passed (refused); else pending.
pub(crate) async fn validation(ctx: &Context, written: &Written) -> Result<Validation> {
    let current = read_pointer(ctx, &written.parameter).await?;
    let shown = match current {
        Some((image, version)) if version == written.version => Some(image),
        Some((_, version)) if version > written.version => {
            let selector = format!("{}:{}", written.parameter, written.version);
            match read_pointer(ctx, &selector).await? {
                Some((image, _)) => Some(image),
                None => {
                    return Ok(Validation::Refused(format!(
                        "version {version} was written after it, and it never showed"
                    )));
                }
            }
        }
        _ => None,
    };
    if let Some(image) = shown {
        return Ok(if image == written.image {
            Validation::Accepted
        } else {
            Validation::Refused(format!("version {} names {image}", written.version))
        });
    }
    let available = images::describe(ctx, &written.image)
        .await?
        .is_some_and(|i| images::is_available(&i));
    if !available {
        return Ok(Validation::Refused(format!(
            "{} is no longer an available image in this region",
            written.image
        )));
    }
    let waited = Timestamp::now().duration_since(written.written_at);
    if waited > VALIDATION_TIMEOUT {
        return Ok(Validation::Refused(format!(
            "it did not show within {} s",
            VALIDATION_TIMEOUT.as_secs()
        )));
    }
    Ok(Validation::Pending)
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

/// The image pointer `parameter` (or `parameter:version`) names and its
/// version, when it exists.
pub(crate) async fn read_pointer(ctx: &Context, parameter: &str) -> Result<Option<(AmiId, i64)>> {
    let Some(found) = ctx.parameter(parameter).await? else {
        return Ok(None);
    };
    let image = found.value().unwrap_or_default().parse()?;
    Ok(Some((image, found.version())))
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
                follows: None,
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
    fn a_version_ssm_did_not_accept_is_skipped() {
        let mut history = vec![
            version(1, "A", Action::Promote, None),
            version(3, "C", Action::Promote, None),
        ];
        assert_eq!(target(&history), Some("A"));
        history.push(version(4, "A", Action::Rollback, Some(1)));
        assert_eq!(target(&history), None);
        history.push(version(6, "D", Action::Promote, None));
        assert_eq!(target(&history), Some("A"));
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
