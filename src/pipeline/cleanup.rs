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

use tracing::{info, instrument, warn};

use super::state::{Cleanup, Trigger};
use crate::aws::{Context, images, instances};
use crate::channels::pointers::{self, ChannelMap};
use crate::error::Result;
use crate::ids::{AmiId, BuildId, RecipeName};
use crate::recipe::Recipe;
use crate::security;
use crate::tags::{self, Stage};

/// Which images of a build a cleanup keeps, and where it looks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// Keep images, tagged `kiln:stage=failed`, instead of deregistering them
    /// (the recipe's `keep_failed`).
    pub keep_failed: bool,
    /// Keep images that passed their test.
    pub keep_tested: bool,
    /// The regions besides this one where the build may have copies (the
    /// recipe's distribution regions).
    pub copy_regions: Vec<String>,
}

impl Policy {
    /// The build state machine's cleanup of its own failed build: a failed
    /// build delivers no image, tested or not. `recipe` (when it still loads)
    /// says whether failed images are kept.
    pub fn failed_build(recipe: Option<&Recipe>) -> Self {
        Self {
            keep_failed: recipe.is_some_and(|r| r.file.image.keep_failed),
            keep_tested: false,
            copy_regions: recipe
                .map(|r| r.file.distribution.regions.clone())
                .unwrap_or_default(),
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

/// The build state machine's cleanup of its own failed build (`trigger`'s):
/// every instance of the build, and its images unless the recipe keeps
/// failed ones. A recipe that no longer loads does not stop it: it keeps
/// nothing.
#[instrument(skip_all, fields(build_id = %trigger.build_id))]
pub async fn failed_build(ctx: &Context, trigger: &Trigger) -> Result<Cleanup> {
    let recipe = ctx
        .recipe(&trigger.recipe)
        .inspect_err(|err| warn!(%err, "recipe unreadable; deregistering the build's images"))
        .ok();
    let done = cleanup(
        ctx,
        &trigger.build_id,
        &Policy::failed_build(recipe.as_ref()),
    )
    .await?;
    Ok(Cleanup {
        duration_seconds: trigger.elapsed_seconds(),
        ..done
    })
}

/// Cleans up build `build_id` under `policy`, here and in each of the
/// policy's copy regions; returns what it removed.
#[instrument(skip(ctx))]
pub async fn cleanup(ctx: &Context, build_id: &BuildId, policy: &Policy) -> Result<Cleanup> {
    let mut done = Cleanup::default();
    for there in regions(ctx, policy) {
        let planned = plan_here(&there, build_id, policy).await?;
        done.absorb(apply(&there, &planned).await?);
    }
    info!(?done, "cleaned up");
    Ok(done)
}

/// What a cleanup of `build_id` under `policy` would remove, here and in
/// each of the policy's copy regions, touching nothing.
pub async fn plan(ctx: &Context, build_id: &BuildId, policy: &Policy) -> Result<Cleanup> {
    let mut planned = Cleanup::default();
    for there in regions(ctx, policy) {
        planned.absorb(plan_here(&there, build_id, policy).await?);
    }
    Ok(planned)
}

/// This region's context, then one for each of `policy`'s copy regions.
fn regions(ctx: &Context, policy: &Policy) -> Vec<Context> {
    std::iter::once(ctx.clone())
        .chain(policy.copy_regions.iter().map(|r| ctx.in_region(r)))
        .collect()
}

/// What a cleanup of `build_id` under `policy` would remove in `ctx`'s region.
async fn plan_here(ctx: &Context, build_id: &BuildId, policy: &Policy) -> Result<Cleanup> {
    let mut planned = Cleanup {
        terminated: instances::live_instances(ctx, build_id, None)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect(),
        ..Cleanup::default()
    };
    let mut kept = Vec::new();
    let mut pointers: BTreeMap<String, ChannelMap> = BTreeMap::new();
    let build_tag = tags::filter(tags::BUILD_ID, build_id.as_str());
    for image in images::own(ctx, vec![build_tag]).await? {
        let Some(id) = images::id(&image) else {
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
                Entry::Vacant(slot) => slot.insert(pointers::channel_map(ctx, &recipe).await?),
            };
            promoted |= map.images.contains_key(id.as_str());
        }
        let stage = tags::value(image.tags(), tags::STAGE);
        if promoted || (policy.keep_tested && stage == Some(Stage::Tested.as_ref())) {
            kept.push((id, images::snapshot_ids(&image)));
        } else if !policy.keep_failed {
            planned
                .deleted_snapshots
                .extend(images::snapshot_ids(&image));
            planned.deregistered.push(id);
        } else {
            if stage != Some(Stage::Failed.as_ref()) {
                planned.kept_failed.push(id.clone());
            }
            kept.push((id, images::snapshot_ids(&image)));
        }
    }
    planned
        .deleted_snapshots
        .extend(leftover_snapshots(ctx, build_id, &kept, &planned.deleted_snapshots).await?);
    Ok(planned)
}

/// Carries out a plan: terminates, deregisters, deletes, tags failed.
async fn apply(ctx: &Context, planned: &Cleanup) -> Result<Cleanup> {
    let terminated = instances::terminate_ids(ctx, &planned.terminated).await?;
    for id in &planned.deregistered {
        images::deregister(ctx, id, &[]).await?;
        security::forget(ctx, id).await?;
    }
    for snapshot in &planned.deleted_snapshots {
        images::delete_snapshot(ctx, snapshot).await?;
    }
    for id in &planned.kept_failed {
        images::set_stage(ctx, id, Stage::Failed).await?;
    }
    Ok(Cleanup {
        terminated,
        ..planned.clone()
    })
}

/// The build's image snapshots left behind (an earlier cleanup that
/// deregistered their image and then failed, or an image deregistered while
/// still pending), except those of `kept` images (by the images' block
/// device mappings, or by the snapshot's `kiln:image-id`) and those already
/// `planned`.
async fn leftover_snapshots(
    ctx: &Context,
    build_id: &BuildId,
    kept: &[(AmiId, Vec<String>)],
    planned: &[String],
) -> Result<Vec<String>> {
    let found = images::own_snapshots(ctx, tags::filter(tags::BUILD_ID, build_id.as_str())).await?;
    let of_kept = |snapshot: &&aws_sdk_ec2::types::Snapshot| {
        let image = tags::value(snapshot.tags(), tags::IMAGE_ID);
        let id = snapshot.snapshot_id().unwrap_or_default();
        kept.iter()
            .any(|(k, snapshots)| Some(k.as_str()) == image || snapshots.iter().any(|s| s == id))
    };
    Ok(found
        .iter()
        .filter(|snapshot| !of_kept(snapshot))
        .filter_map(|snapshot| snapshot.snapshot_id())
        .filter(|id| !planned.iter().any(|p| p == id))
        .map(str::to_owned)
        .collect())
}
