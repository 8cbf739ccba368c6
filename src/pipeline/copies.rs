//! Distribute the tested image (copy-image): a copy in each of the recipe's
//! distribution regions (`[distribution]`), started with `CopyImage` in the
//! region (a copy is made in its destination region), encrypted (with the
//! region's key from the recipe, or that region's default EBS key), tagged
//! as the source is plus the source's id and region; then, once every copy
//! is available, launch permission for the recipe's accounts and OUs on the
//! image and each copy.
//!
//! Nothing here waits: [`start`] starts every copy and [`poll`] reports where
//! they stand, and the build state machine waits between polls. One task
//! follows every region's copy (not a Map with an iteration per region), so
//! a long copy to many regions costs one poll's history events per round,
//! not one per region (see the test below). A start is idempotent: each
//! copy's client token is made from the build and the region, so a retried
//! start answers the copies the first one began; sharing is idempotent too.
//!
//! The snapshots are not shared (no `createVolumePermission`): an account
//! with launch permission can launch the image without them (EC2 User
//! Guide, "Share an AMI with specific AWS accounts"); the key that encrypts
//! them must be shared through its key policy instead (docs/distribution.md).

use aws_sdk_ec2::types::{
    ImageState as Ec2ImageState, LaunchPermission, LaunchPermissionModifications, ResourceType, Tag,
};
use tracing::{info, instrument};

use super::requests::{CopyAction, CopyRequest};
use super::state::{Distribution, Image, ImageState, RegionCopy, Source, Trigger};
use crate::aws::sdk::{self, Answer};
use crate::aws::{Context, images};
use crate::error::{Error, Result};
use crate::ids::{AmiId, BuildId};
use crate::recipe::Recipe;
use crate::tags;

/// copy-image: [`start`] or [`poll`], as the request says.
pub async fn handle(ctx: &Context, request: CopyRequest) -> Result<Distribution> {
    let recipe = ctx.recipe(&request.trigger.recipe)?;
    let trigger = &request.trigger;
    match &request.action {
        CopyAction::Start => start(ctx, &recipe, trigger, &request.source, &request.image).await,
        CopyAction::Poll { distribution } => {
            poll(ctx, &recipe, trigger, &request.image, distribution).await
        }
    }
}

/// Starts (or, on a retry, finds) the copy of the tested `image` in each of
/// the regions resolve-source checked; with no copy to make, shares it at once.
#[instrument(skip_all, fields(build_id = %trigger.build_id, image = %image.image_id))]
pub async fn start(
    ctx: &Context,
    recipe: &Recipe,
    trigger: &Trigger,
    source: &Source,
    image: &Image,
) -> Result<Distribution> {
    image.require_available("copy")?;
    let mut copies = Vec::with_capacity(source.copy_regions.len());
    for region in &source.copy_regions {
        let image_id = copy(ctx, recipe, &trigger.build_id, &image.image_id, region).await?;
        info!(%region, copy = %image_id, "copy started");
        copies.push(RegionCopy {
            region: region.clone(),
            image_id,
            state: ImageState::Pending,
        });
    }
    let distribution = Distribution {
        copies,
        state: ImageState::Pending,
        shared_with: Vec::new(),
        polling: trigger.begin(),
    };
    if distribution.copies.is_empty() {
        return share(ctx, recipe, image, distribution).await;
    }
    Ok(distribution)
}

/// Where the copies stand: pending while any is; failed (the first failed
/// copy's reason) or timed out (`distribution.copy_timeout_seconds`) as an
/// error; when every copy is available, the image and its copies are shared.
#[instrument(skip_all, fields(build_id = %trigger.build_id, image = %image.image_id))]
pub async fn poll(
    ctx: &Context,
    recipe: &Recipe,
    trigger: &Trigger,
    image: &Image,
    distribution: &Distribution,
) -> Result<Distribution> {
    let mut copies = distribution.copies.clone();
    for copy in copies.iter_mut().filter(|c| c.state == ImageState::Pending) {
        copy.state = state(ctx, &image.image_id, copy).await?;
    }
    if let Some(copy) = copies.iter().find(|c| c.state == ImageState::Pending) {
        let timeout_seconds = recipe.file.distribution.copy_timeout_seconds;
        if distribution.polling.overdue(timeout_seconds) {
            return Err(Error::CopyTimedOut {
                image: image.image_id.to_string(),
                copy: copy.image_id.to_string(),
                region: copy.region.clone(),
                timeout_seconds,
            });
        }
        return Ok(Distribution {
            copies,
            polling: trigger.pace(&distribution.polling),
            ..distribution.clone()
        });
    }
    let copied = Distribution {
        copies,
        ..distribution.clone()
    };
    share(ctx, recipe, image, copied).await
}

/// Starts (or finds) the copy of `source` into `region`, built by `build_id`
/// of `recipe`; answers its id.
pub async fn copy(
    ctx: &Context,
    recipe: &Recipe,
    build_id: &BuildId,
    source: &AmiId,
    region: &str,
) -> Result<AmiId> {
    let home = ctx.region()?;
    let image = images::describe(ctx, source)
        .await?
        .ok_or_else(|| Error::InvalidInput(format!("{source} does not exist in {home}")))?;
    let mut copy_tags: Vec<Tag> = image
        .tags()
        .iter()
        .filter(|t| t.key().is_some_and(|k| !k.starts_with("aws:")))
        .cloned()
        .collect();
    copy_tags.push(tags::tag(tags::COPY_OF, source.as_str()));
    copy_tags.push(tags::tag(tags::COPY_OF_REGION, home.as_str()));
    let key = recipe.file.distribution.kms_keys.get(region);
    let copied = ctx
        .in_region(region)
        .ec2()
        .copy_image()
        .source_image_id(source.as_str())
        .source_region(&home)
        .name(image.name().unwrap_or(source.as_str()))
        .set_description(image.description().map(str::to_owned))
        .encrypted(true)
        .set_kms_key_id(key.cloned())
        .client_token(sdk::client_token(&[build_id.as_str(), region]))
        .tag_specifications(tags::specification(ResourceType::Image, &copy_tags))
        .tag_specifications(tags::specification(ResourceType::Snapshot, &copy_tags))
        .send()
        .await
        .or_aws("CopyImage")?;
    copied
        .image_id()
        .ok_or_else(|| {
            Error::InvalidInput(format!("CopyImage into {region} answered no image id"))
        })?
        .parse()
}

/// Where `copy` of `source` stands now: pending or available, or the
/// copy's failure as [`Error::CopyFailed`] (EC2's reason, or that it is gone).
pub async fn state(ctx: &Context, source: &AmiId, copy: &RegionCopy) -> Result<ImageState> {
    let failed = |reason: String| Error::CopyFailed {
        image: source.to_string(),
        copy: copy.image_id.to_string(),
        region: copy.region.clone(),
        reason,
    };
    let there = ctx.in_region(&copy.region);
    let image = images::describe(&there, &copy.image_id)
        .await?
        .ok_or_else(|| failed("the copy no longer exists".into()))?;
    match image.state() {
        Some(Ec2ImageState::Available) => Ok(ImageState::Available),
        Some(Ec2ImageState::Pending) | None => Ok(ImageState::Pending),
        Some(other) => Err(failed(format!(
            "it is {}: {}",
            other.as_str(),
            image
                .state_reason()
                .and_then(|r| r.message())
                .unwrap_or("EC2 gives no reason")
        ))),
    }
}

/// Grants launch permission to the recipe's accounts and OUs on `image` and
/// every copy in `distribution`; answers the distribution available.
async fn share(
    ctx: &Context,
    recipe: &Recipe,
    image: &Image,
    distribution: Distribution,
) -> Result<Distribution> {
    let shared_with = grant(ctx, recipe, &image.image_id, &distribution.copies).await?;
    Ok(Distribution {
        state: ImageState::Available,
        shared_with,
        ..distribution
    })
}

/// Grants launch permission to `recipe`'s accounts and OUs on `image` (in
/// this region) and on each of `copies` (adding a permission an image has
/// already changes nothing); answers who may launch them.
pub async fn grant(
    ctx: &Context,
    recipe: &Recipe,
    image: &AmiId,
    copies: &[RegionCopy],
) -> Result<Vec<String>> {
    let wanted = &recipe.file.distribution;
    let permissions: Vec<LaunchPermission> = wanted
        .accounts
        .iter()
        .map(|account| LaunchPermission::builder().user_id(account).build())
        .chain(wanted.organizational_units.iter().map(|unit| {
            LaunchPermission::builder()
                .organizational_unit_arn(unit)
                .build()
        }))
        .collect();
    if permissions.is_empty() {
        return Ok(Vec::new());
    }
    let everywhere = std::iter::once((ctx.clone(), image)).chain(
        copies
            .iter()
            .map(|copy| (ctx.in_region(&copy.region), &copy.image_id)),
    );
    for (there, image_id) in everywhere {
        there
            .ec2()
            .modify_image_attribute()
            .image_id(image_id.as_str())
            .launch_permission(
                LaunchPermissionModifications::builder()
                    .set_add(Some(permissions.clone()))
                    .build(),
            )
            .send()
            .await
            .or_aws("ModifyImageAttribute")?;
    }
    info!(targets = permissions.len(), "shared");
    Ok(wanted
        .accounts
        .iter()
        .chain(&wanted.organizational_units)
        .cloned()
        .collect())
}
