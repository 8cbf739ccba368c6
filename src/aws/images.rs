//! Kiln's images as EC2 holds them: lookups of this account's images (every
//! page, every state), one image by id, their snapshots, their tags, and
//! their removal. Every query of kiln's own images goes through [`own`], of
//! its snapshots through [`own_snapshots`].

use aws_sdk_ec2::types::{Filter, Image, ImageState, Snapshot};

use super::Context;
use super::sdk::{self, Answer};
use crate::error::Result;
use crate::ids::AmiId;
use crate::tags::{self, Stage};

/// Every image this account owns that matches all `filters`, in any state.
pub(crate) async fn own(ctx: &Context, filters: Vec<Filter>) -> Result<Vec<Image>> {
    let pages = ctx
        .ec2()
        .describe_images()
        .owners("self")
        .include_deprecated(true)
        .set_filters(Some(filters))
        .into_paginator()
        .send();
    Ok(sdk::all(pages, "DescribeImages")
        .await?
        .into_iter()
        .flat_map(|page| page.images.unwrap_or_default())
        .collect())
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

/// Moves an image to `stage` (its `kiln:stage` tag).
pub(crate) async fn set_stage(ctx: &Context, image: &AmiId, stage: Stage) -> Result<()> {
    set_tag(ctx, image.as_str(), tags::STAGE, Some(stage.as_ref())).await
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
