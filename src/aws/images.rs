//! Kiln's images as EC2 holds them: lookups of this account's images (every
//! page, every state, disabled and deprecated ones too), one image by id,
//! their snapshots, their tags, their lifecycle (deregistration protection,
//! deprecation, disabling) and their removal. Every query of kiln's own
//! images goes through `own`, of its snapshots through `own_snapshots`.
//!
//! `DescribeImages` leaves disabled images out unless asked to include them
//! (API reference, DescribeImages `IncludeDisabled`): every lookup here asks,
//! or a disabled image would look deregistered.

use aws_sdk_ec2::types::{Filter, Image, ImageState, Snapshot};

use super::Context;
use super::sdk::{self, Answer};
use crate::error::Result;
use crate::ids::{AmiId, RecipeName};
use crate::tags::{self, Stage};

/// Every image this account owns that matches all `filters`, in any state.
pub(crate) async fn own(ctx: &Context, filters: Vec<Filter>) -> Result<Vec<Image>> {
    let pages = ctx
        .ec2()
        .describe_images()
        .owners("self")
        .include_deprecated(true)
        .include_disabled(true)
        .set_filters(Some(filters))
        .into_paginator()
        .send();
    Ok(sdk::all(pages, "DescribeImages")
        .await?
        .into_iter()
        .flat_map(|page| page.images.unwrap_or_default())
        .collect())
}

/// The newest available image of `owners` whose name matches `pattern`
/// (EC2's `name` filter, wildcards included) with `architecture`, as
/// Packer's `most_recent` picks it: the latest creation date, the later name
/// on a tie. Deprecated images are left out (DescribeImages leaves out
/// deprecated images of other owners unless asked; an owner's own are kept
/// out by their deprecation time).
pub(crate) async fn newest_named(
    ctx: &Context,
    owners: &[String],
    pattern: &str,
    architecture: &str,
) -> Result<Option<Image>> {
    let pages = ctx
        .ec2()
        .describe_images()
        .set_owners(Some(owners.to_vec()))
        .filters(filter("name", [pattern]))
        .filters(filter("state", [ImageState::Available.as_str()]))
        .filters(filter("architecture", [architecture]))
        .into_paginator()
        .send();
    let now = jiff::Timestamp::now();
    let deprecated = |image: &Image| {
        image
            .deprecation_time()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .is_some_and(|t| t <= now)
    };
    Ok(sdk::all(pages, "DescribeImages")
        .await?
        .into_iter()
        .flat_map(|page| page.images.unwrap_or_default())
        .filter(|image| !deprecated(image))
        .max_by(|a, b| (a.creation_date(), a.name()).cmp(&(b.creation_date(), b.name()))))
}

/// Every snapshot this account owns that matches `filter`.
pub(crate) async fn own_snapshots(ctx: &Context, filter: Filter) -> Result<Vec<Snapshot>> {
    let pages = ctx
        .ec2()
        .describe_snapshots()
        .owner_ids("self")
        .filters(filter)
        .into_paginator()
        .send();
    Ok(sdk::all(pages, "DescribeSnapshots")
        .await?
        .into_iter()
        .flat_map(|page| page.snapshots.unwrap_or_default())
        .collect())
}

/// A filter on a property of an image (`name`, `image-id`, `state`).
pub(crate) fn filter(name: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(Into::into).collect()))
        .build()
}

/// Image `id` in this region, whoever owns it and in any state; `None` when
/// EC2 does not know it (never existed, deregistered, or of another region).
pub(crate) async fn describe(ctx: &Context, id: &AmiId) -> Result<Option<Image>> {
    let found = ctx
        .ec2()
        .describe_images()
        .image_ids(id.as_str())
        .include_deprecated(true)
        .include_disabled(true)
        .send()
        .await
        .or_missing("DescribeImages", |err| {
            sdk::code_starts(err, "InvalidAMIID")
        })?;
    Ok(found.and_then(|output| output.images.unwrap_or_default().into_iter().next()))
}

/// The image's id, when EC2 gave a well-formed one.
pub(crate) fn id(image: &Image) -> Option<AmiId> {
    image.image_id().and_then(|id| id.parse().ok())
}

/// Whether the image can be launched.
pub(crate) fn is_available(image: &Image) -> bool {
    image.state() == Some(&ImageState::Available)
}

/// Why the image is not one of `recipe`'s (by its `kiln:recipe` tag), or
/// `None` when it is.
pub(crate) fn not_built_by(image: &Image, recipe: &RecipeName) -> Option<String> {
    match tags::value(image.tags(), tags::RECIPE) {
        Some(built_by) if built_by == recipe.as_str() => None,
        Some(other) => Some(format!("it was built by recipe {other}")),
        None => Some("it was not built by kiln (no kiln:recipe tag)".into()),
    }
}

/// Whether the image is disabled: it cannot launch until `EnableImage`.
pub(crate) fn is_disabled(image: &Image) -> bool {
    image.state() == Some(&ImageState::Disabled)
}

/// Whether deregistration protection is on (`enabled-with-cooldown` or
/// `enabled-without-cooldown`; `disabled` otherwise). AWS reports no
/// cooldown still running after protection was turned off: a deregistration
/// may still be refused for 24 hours after this says no.
pub(crate) fn is_protected(image: &Image) -> bool {
    image
        .deregistration_protection()
        .is_some_and(|p| p.starts_with("enabled"))
}

/// Turns image `id`'s deregistration protection on (with AWS's 24-hour
/// cooldown, so turning it off does not expose the image at once) or off.
pub(crate) async fn protect(ctx: &Context, id: &str, on: bool) -> Result<()> {
    if on {
        ctx.ec2()
            .enable_image_deregistration_protection()
            .image_id(id)
            .with_cooldown(true)
            .send()
            .await
            .map(drop)
            .or_aws("EnableImageDeregistrationProtection")
    } else {
        ctx.ec2()
            .disable_image_deregistration_protection()
            .image_id(id)
            .send()
            .await
            .map(drop)
            .or_aws("DisableImageDeregistrationProtection")
    }
}

/// Gives image `id` a deprecation time (`at`, which must not be in the
/// past; EC2 rounds it to the minute), or with `None` takes it away.
pub(crate) async fn deprecate(ctx: &Context, id: &str, at: Option<jiff::Timestamp>) -> Result<()> {
    match at {
        Some(at) => ctx
            .ec2()
            .enable_image_deprecation()
            .image_id(id)
            .deprecate_at(aws_smithy_types::DateTime::from_secs(at.as_second()))
            .send()
            .await
            .map(drop)
            .or_aws("EnableImageDeprecation"),
        None => ctx
            .ec2()
            .disable_image_deprecation()
            .image_id(id)
            .send()
            .await
            .map(drop)
            .or_aws("DisableImageDeprecation"),
    }
}

/// Disables image `id` (no launch, no sharing; its launch permissions are
/// dropped) or, with `enabled`, makes it available again.
pub(crate) async fn set_enabled(ctx: &Context, id: &str, enabled: bool) -> Result<()> {
    if enabled {
        ctx.ec2()
            .enable_image()
            .image_id(id)
            .send()
            .await
            .map(drop)
            .or_aws("EnableImage")
    } else {
        ctx.ec2()
            .disable_image()
            .image_id(id)
            .send()
            .await
            .map(drop)
            .or_aws("DisableImage")
    }
}

/// The image's state as EC2 words it (`pending`, `failed`, ...).
pub(crate) fn state_name(image: &Image) -> &str {
    image.state().map_or("unknown", ImageState::as_str)
}

/// The snapshots backing an image.
pub(crate) fn snapshot_ids(image: &Image) -> Vec<String> {
    image
        .block_device_mappings()
        .iter()
        .filter_map(|mapping| {
            mapping
                .ebs()
                .and_then(|ebs| ebs.snapshot_id())
                .map(str::to_owned)
        })
        .collect()
}

/// Moves an image to `stage` (its `kiln:stage` tag), noting when
/// (`kiln:staged-at`).
pub(crate) async fn set_stage(ctx: &Context, image: &AmiId, stage: Stage) -> Result<()> {
    ctx.ec2()
        .create_tags()
        .resources(image.as_str())
        .tags(tags::tag(tags::STAGE, stage.as_ref()))
        .tags(tags::tag(
            tags::STAGED_AT,
            jiff::Timestamp::now().to_string(),
        ))
        .send()
        .await
        .map(drop)
        .or_aws("CreateTags")
}

/// Sets tag `key` of `resource` to `value`, or removes it with `None`.
pub(crate) async fn set_tag(
    ctx: &Context,
    resource: &str,
    key: &str,
    value: Option<&str>,
) -> Result<()> {
    match value {
        Some(value) => ctx
            .ec2()
            .create_tags()
            .resources(resource)
            .tags(tags::tag(key, value))
            .send()
            .await
            .map(drop)
            .or_aws("CreateTags"),
        None => ctx
            .ec2()
            .delete_tags()
            .resources(resource)
            .tags(aws_sdk_ec2::types::Tag::builder().key(key).build())
            .send()
            .await
            .map(drop)
            .or_aws("DeleteTags"),
    }
}

/// Deregisters image `id` and deletes its `snapshots`; what is gone already
/// counts as done.
pub(crate) async fn deregister(ctx: &Context, id: &AmiId, snapshots: &[String]) -> Result<()> {
    ctx.ec2()
        .deregister_image()
        .image_id(id.as_str())
        .send()
        .await
        .or_missing("DeregisterImage", |err| {
            sdk::code_starts(err, "InvalidAMIID")
        })?;
    for snapshot in snapshots {
        delete_snapshot(ctx, snapshot).await?;
    }
    Ok(())
}

/// Deletes snapshot `id`; one gone already counts as done.
pub(crate) async fn delete_snapshot(ctx: &Context, id: &str) -> Result<()> {
    ctx.ec2()
        .delete_snapshot()
        .snapshot_id(id)
        .send()
        .await
        .or_missing("DeleteSnapshot", |err| {
            sdk::code_in(err, &["InvalidSnapshot.NotFound"])
        })
        .map(drop)
}
