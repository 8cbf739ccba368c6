//! Clean up after a build, whatever happened to it: terminate every instance
//! the build launched (found by its `kiln:build-id` tag, not by ids in the
//! state, so a crash between steps leaks nothing), and deregister the build's
//! images with their snapshots, unless the recipe keeps failed images for
//! inspection: then they are tagged `kiln:stage=failed`. An image on a channel
//! or previous on one (by its recipe's pointers, or by its tags) is never
//! touched. Safe to run any number of times.
//!
//! The build state machine's own cleanup removes even a tested image: a
//! failed build delivers none. Cleanups from outside the build (an execution
//! that was stopped or timed out, the sweep) cannot tell, and keep tested
//! images.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use tracing::{info, instrument};

use crate::aws::Context;
use crate::builder;
use crate::error::{Error, Result};
use crate::promotion::{self, ChannelMap};
use crate::recipe::Recipe;
use crate::state::{AmiId, BuildId, Cleanup, RecipeName};
use crate::tags::{self, Stage};

/// Which images of a build a cleanup keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// Keep images, tagged `kiln:stage=failed`, instead of deregistering them
    /// (the recipe's `keep_failed`).
    pub keep_failed: bool,
    /// Keep images that passed their test.
    pub keep_tested: bool,
}

impl Policy {
    /// The build state machine's cleanup of its own failed build: a failed
    /// build delivers no image, tested or not. `recipe` (when it still loads)
    /// says whether failed images are kept.
    pub fn failed_build(recipe: Option<&Recipe>) -> Self {
        Self {
            keep_failed: recipe.is_some_and(|r| r.file.image.keep_failed),
            keep_tested: false,
        }
    }

    /// A cleanup from outside the build (an execution that ended without
    /// its own cleanup, the sweep): it cannot tell whether a tested image was
    /// delivered, so keeps it.
    pub fn outside_build(recipe: Option<&Recipe>) -> Self {
        Self {
            keep_tested: true,
            ..Self::failed_build(recipe)
        }
    }
}

/// Cleans up build `build_id` under `policy`; returns what it removed.
#[instrument(skip(ctx))]
pub async fn cleanup(ctx: &Context, build_id: &BuildId, policy: Policy) -> Result<Cleanup> {
    let planned = plan(ctx, build_id, policy).await?;
    let done = apply(ctx, &planned).await?;
    info!(?done, "cleaned up");
    Ok(done)
}

/// What a cleanup of `build_id` under `policy` would remove, touching nothing.
pub async fn plan(ctx: &Context, build_id: &BuildId, policy: Policy) -> Result<Cleanup> {
    let mut planned = Cleanup {
        terminated: builder::live_instances(ctx, build_id, None)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect(),
        ..Cleanup::default()
    };
    let mut kept = Vec::new();
    let mut pointers: BTreeMap<String, ChannelMap> = BTreeMap::new();
    for image in build_images(ctx, build_id).await? {
        let Some(id) = image.image_id().and_then(|id| id.parse::<AmiId>().ok()) else {
            continue;
        };
        // On a channel or previous on one: by the pointers (the truth), and by
        // the tags (a pointer write not yet visible, or another recipe's).
        let mut promoted = [tags::CHANNEL, tags::PREVIOUS]
            .iter()
            .any(|key| tags::value(image.tags(), key).is_some());
        let recipe =
            tags::value(image.tags(), tags::RECIPE).and_then(|r| r.parse::<RecipeName>().ok());
        if let Some(recipe) = recipe {
            let map = match pointers.entry(recipe.to_string()) {
                Entry::Occupied(found) => found.into_mut(),
                Entry::Vacant(slot) => slot.insert(promotion::channel_map(ctx, &recipe).await?),
            };
            promoted |= map.images.contains_key(id.as_str());
        }
        let stage = tags::value(image.tags(), tags::STAGE);
        if promoted || (policy.keep_tested && stage == Some(Stage::Tested.as_ref())) {
            kept.push(id);
        } else if !policy.keep_failed {
            planned
                .deleted_snapshots
                .extend(crate::image::snapshot_ids(&image));
            planned.deregistered.push(id);
        } else {
            if stage != Some(Stage::Failed.as_ref()) {
                planned.kept_failed.push(id.clone());
            }
            kept.push(id);
        }
    }
    planned
        .deleted_snapshots
        .extend(leftover_snapshots(ctx, build_id, &kept, &planned.deleted_snapshots).await?);
    Ok(planned)
}

/// Carries out a plan: terminates, deregisters, deletes, tags failed.
async fn apply(ctx: &Context, planned: &Cleanup) -> Result<Cleanup> {
    let terminated = builder::terminate_ids(ctx, &planned.terminated).await?;
    for id in &planned.deregistered {
        deregister(ctx, id).await?;
    }
    for snapshot in &planned.deleted_snapshots {
        delete_snapshot(ctx, snapshot).await?;
    }
    for id in &planned.kept_failed {
        crate::image::set_stage(ctx, id, Stage::Failed).await?;
    }
    Ok(Cleanup {
        terminated,
        ..planned.clone()
    })
}

/// The build's image snapshots left behind (an earlier cleanup that
/// deregistered their image and then failed), except those of `kept` images
/// and those already `planned`.
async fn leftover_snapshots(
    ctx: &Context,
    build_id: &BuildId,
    kept: &[AmiId],
    planned: &[String],
) -> Result<Vec<String>> {
    let output = ctx
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(tags::filter(tags::BUILD_ID, build_id.as_str()))
        .send()
        .await
        .map_err(|err| Error::aws("DescribeSnapshots", err))?;
    Ok(output
        .snapshots()
        .iter()
        .filter(|snapshot| {
            let image = tags::value(snapshot.tags(), tags::IMAGE_ID);
            !kept.iter().any(|k| Some(k.as_str()) == image)
        })
        .filter_map(|snapshot| snapshot.snapshot_id())
        .filter(|id| !planned.iter().any(|p| p == id))
        .map(str::to_owned)
        .collect())
}

/// Every image this account made for the build, in any state.
async fn build_images(ctx: &Context, build_id: &BuildId) -> Result<Vec<aws_sdk_ec2::types::Image>> {
    let output = ctx
        .ec2
        .describe_images()
        .owners("self")
        .filters(tags::filter(tags::BUILD_ID, build_id.as_str()))
        .send()
        .await
        .map_err(|err| Error::aws("DescribeImages", err))?;
    Ok(output.images.unwrap_or_default())
}

/// Deregisters image `id` (already gone counts as done).
async fn deregister(ctx: &Context, id: &AmiId) -> Result<()> {
    match ctx
        .ec2
        .deregister_image()
        .image_id(id.as_str())
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if Error::code_of(&err).is_some_and(|c| c.starts_with("InvalidAMIID")) => Ok(()),
        Err(err) => Err(Error::aws("DeregisterImage", err)),
    }
}

/// Deregisters image `id` and deletes its `snapshots` (retention).
pub(crate) async fn deregister_with_snapshots(
    ctx: &Context,
    id: &AmiId,
    snapshots: &[String],
) -> Result<()> {
    deregister(ctx, id).await?;
    for snapshot in snapshots {
        delete_snapshot(ctx, snapshot).await?;
    }
    Ok(())
}

async fn delete_snapshot(ctx: &Context, snapshot: &str) -> Result<()> {
    match ctx.ec2.delete_snapshot().snapshot_id(snapshot).send().await {
        Ok(_) => Ok(()),
        Err(err) if Error::code_of(&err) == Some("InvalidSnapshot.NotFound") => Ok(()),
        Err(err) => Err(Error::aws("DeleteSnapshot", err)),
    }
}
