//! Clean up after a failed build, whatever failed: terminate every instance
//! the build launched (found by its `kiln:build-id` tag, not by ids in the
//! state, so a crash between steps leaks nothing), and deregister every image
//! of the build with its snapshots (a failed build delivers no image, even one
//! whose test passed before a later step failed), unless the recipe keeps
//! failed images for inspection: then they are tagged `kiln:stage=failed`.
//! An image on a channel (`kiln:channel`) is never touched. Safe to run any
//! number of times.

use aws_sdk_ec2::types::Image as Ec2Image;
use tracing::{info, instrument};

use crate::aws::Context;
use crate::builder;
use crate::error::{Error, Result};
use crate::state::{AmiId, BuildId, Cleanup};
use crate::tags::{self, Stage};

/// Cleans up build `build_id`; `keep_failed` keeps its images, tagged
/// `kiln:stage=failed`, instead of deregistering them.
#[instrument(skip(ctx))]
pub async fn cleanup(ctx: &Context, build_id: &BuildId, keep_failed: bool) -> Result<Cleanup> {
    let mut done = Cleanup {
        terminated: builder::terminate(ctx, build_id, None).await?,
        ..Cleanup::default()
    };
    let mut kept = Vec::new();
    for image in build_images(ctx, build_id).await? {
        let Some(id) = image.image_id().and_then(|id| id.parse::<AmiId>().ok()) else {
            continue;
        };
        if tags::value(image.tags(), tags::CHANNEL).is_some() {
            kept.push(id);
        } else if !keep_failed {
            done.deleted_snapshots
                .extend(deregister(ctx, &id, crate::image::snapshot_ids(&image)).await?);
            done.deregistered.push(id);
        } else {
            if tags::value(image.tags(), tags::STAGE) != Some(Stage::Failed.as_ref()) {
                crate::image::set_stage(ctx, &id, Stage::Failed).await?;
                done.kept_failed.push(id.clone());
            }
            kept.push(id);
        }
    }
    done.deleted_snapshots
        .extend(sweep_snapshots(ctx, build_id, &kept).await?);
    info!(?done, "cleaned up");
    Ok(done)
}

/// Deletes the build's image snapshots left behind (an earlier cleanup that
/// deregistered their image and then failed), except those of `kept` images.
async fn sweep_snapshots(ctx: &Context, build_id: &BuildId, kept: &[AmiId]) -> Result<Vec<String>> {
    let output = ctx
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(tags::filter(tags::BUILD_ID, build_id.as_str()))
        .send()
        .await
        .map_err(|err| Error::aws("DescribeSnapshots", err))?;
    let mut deleted = Vec::new();
    for snapshot in output.snapshots() {
        let image = tags::value(snapshot.tags(), tags::IMAGE_ID);
        if kept.iter().any(|k| Some(k.as_str()) == image) {
            continue;
        }
        if let Some(id) = snapshot.snapshot_id() {
            delete_snapshot(ctx, id).await?;
            deleted.push(id.to_owned());
        }
    }
    Ok(deleted)
}

/// Every image this account made for the build, in any state.
async fn build_images(ctx: &Context, build_id: &BuildId) -> Result<Vec<Ec2Image>> {
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

/// Deregisters image `id` and deletes its `snapshots`; returns the snapshots deleted.
pub(crate) async fn deregister(
    ctx: &Context,
    id: &AmiId,
    snapshots: Vec<String>,
) -> Result<Vec<String>> {
    match ctx
        .ec2
        .deregister_image()
        .image_id(id.as_str())
        .send()
        .await
    {
        Ok(_) => {}
        Err(err) if Error::code_of(&err).is_some_and(|c| c.starts_with("InvalidAMIID")) => {}
        Err(err) => return Err(Error::aws("DeregisterImage", err)),
    }
    for snapshot in &snapshots {
        delete_snapshot(ctx, snapshot).await?;
    }
    Ok(snapshots)
}

async fn delete_snapshot(ctx: &Context, snapshot: &str) -> Result<()> {
    match ctx.ec2.delete_snapshot().snapshot_id(snapshot).send().await {
        Ok(_) => Ok(()),
        Err(err) if Error::code_of(&err) == Some("InvalidSnapshot.NotFound") => Ok(()),
        Err(err) => Err(Error::aws("DeleteSnapshot", err)),
    }
}
