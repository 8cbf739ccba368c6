//! The build's copies of its image, one in each of the recipe's
//! distribution regions (`[distribution]`): started with `CopyImage` in the
//! region (a copy is made in its destination region), encrypted (with the
//! region's key from the recipe, or that region's default EBS key), tagged
//! as the source is plus the source's id and region, then followed until
//! each is available or has failed. Nothing here waits: the caller polls.
//!
//! A start is idempotent: its client token is made from the build and the
//! region, so a retried start answers the copy the first one began.

use aws_sdk_ec2::types::{ImageState, ResourceType, Tag};
use serde::{Deserialize, Serialize};

use crate::aws::sdk::{self, Answer};
use crate::aws::{Context, images};
use crate::error::{Error, Result};
use crate::ids::{AmiId, BuildId};
use crate::recipe::Recipe;
use crate::tags;

/// One region's copy of the build's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionCopy {
    /// The region the copy is in.
    pub region: String,
    /// The copy.
    pub image_id: AmiId,
}

/// Where a copy stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyState {
    /// Still being copied.
    Pending,
    /// Ready to launch and share.
    Available,
    /// EC2 gave up on it (the reason it gives), or it is gone.
    Failed(String),
}

/// Starts (or, on a retry, finds) the copy of `source` into `region`, built
/// by `build_id` of `recipe`.
pub async fn start(
    ctx: &Context,
    recipe: &Recipe,
    build_id: &BuildId,
    source: &AmiId,
    region: &str,
) -> Result<RegionCopy> {
    let home = ctx
        .config
        .region()
        .map(ToString::to_string)
        .ok_or_else(|| {
            Error::InvalidInput("no region is configured: the build's region is needed".into())
        })?;
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
    let there = ctx.in_region(region);
    let copied = there
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
    let image_id = copied
        .image_id()
        .ok_or_else(|| {
            Error::InvalidInput(format!("CopyImage into {region} answered no image id"))
        })?
        .parse()?;
    Ok(RegionCopy {
        region: region.to_owned(),
        image_id,
    })
}

/// Where `copy` stands now.
pub async fn state(ctx: &Context, copy: &RegionCopy) -> Result<CopyState> {
    let there = ctx.in_region(&copy.region);
    let Some(image) = images::describe(&there, &copy.image_id).await? else {
        return Ok(CopyState::Failed(format!(
            "{} is gone from {}",
            copy.image_id, copy.region
        )));
    };
    Ok(match image.state() {
        Some(ImageState::Available) => CopyState::Available,
        Some(ImageState::Pending) | None => CopyState::Pending,
        Some(other) => CopyState::Failed(format!(
            "the copy {} in {} is {}: {}",
            copy.image_id,
            copy.region,
            other.as_str(),
            image
                .state_reason()
                .and_then(|r| r.message())
                .unwrap_or("EC2 gives no reason")
        )),
    })
}
