//! `kiln distribute <recipe>`: bring a recipe's channels to every
//! distribution region. `[distribution]` is not part of the fingerprint, so
//! adding a region copies nothing by itself: this copies the images the
//! channels name, and those a rollback would return to, to each distribution
//! region that has no copy of them (as a build does: the region's key, the
//! source's tags, a client token per image and region, so running it again
//! finds its copies), then, once the caller has followed the copies until
//! they are available ([`follow`]), shares them and moves the regional
//! pointers ([`finish`]).

use serde::Serialize;
use tracing::info;

use crate::aws::{Context, images};
use crate::channels::promotion::{self, Synced};
use crate::channels::{pointers, regional};
use crate::error::{Error, Result};
use crate::ids::{AmiId, BuildId};
use crate::pipeline::copies;
use crate::pipeline::state::{ImageState, RegionCopy};
use crate::recipe::Recipe;
use crate::tags;

/// One image of a channel, in one distribution region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Copied {
    /// The image the channels know (in the build region).
    pub source: AmiId,
    /// Its copy.
    #[serde(flatten)]
    pub copy: RegionCopy,
    /// Whether this run started the copy (else it was there already).
    pub started: bool,
}

/// What a distribution did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Distributed {
    /// Every copy of every channel image, in every distribution region.
    pub copies: Vec<Copied>,
    /// The launch permissions granted on them.
    pub shared_with: Vec<String>,
    /// The regional pointers and tags moved once the copies were there.
    #[serde(flatten)]
    pub synced: Synced,
}

/// Starts a copy of each image `recipe`'s channels name (or would roll back
/// to) in each distribution region that has none; answers every copy, the
/// ones there already included.
pub async fn start(ctx: &Context, recipe: &Recipe) -> Result<Vec<Copied>> {
    let home = ctx.region()?;
    let map = pointers::channel_map(ctx, &recipe.name).await?;
    let mut found = Vec::new();
    for image_id in map.images.keys() {
        let source: AmiId = image_id.parse()?;
        let described = images::describe(ctx, &source).await?.ok_or_else(|| {
            Error::InvalidInput(format!(
                "{source}, which a channel of {} names, does not exist in {home}: run kiln doctor",
                recipe.name
            ))
        })?;
        let build: BuildId = tags::value(described.tags(), tags::BUILD_ID)
            .ok_or_else(|| Error::InvalidInput(format!("{source} has no {} tag", tags::BUILD_ID)))?
            .parse()?;
        for region in &recipe.file.distribution.regions {
            let there = ctx.in_region(region);
            let existing = regional::copy_of(&there, image_id, &home).await?;
            let (image_id, state, started) = match existing.as_ref().and_then(images::id) {
                Some(id) => {
                    let available = existing.as_ref().is_some_and(images::is_available);
                    let state = if available {
                        ImageState::Available
                    } else {
                        ImageState::Pending
                    };
                    (id, state, false)
                }
                None => {
                    let id = copies::copy(ctx, recipe, &build, &source, region).await?;
                    info!(%source, %region, copy = %id, "copy started");
                    (id, ImageState::Pending, true)
                }
            };
            found.push(Copied {
                source: source.clone(),
                copy: RegionCopy {
                    region: region.clone(),
                    image_id,
                    state,
                },
                started,
            });
        }
    }
    Ok(found)
}

/// Reads each pending copy again; answers how many are still pending. A
/// copy that failed is [`Error::CopyFailed`].
pub async fn follow(ctx: &Context, copies: &mut [Copied]) -> Result<usize> {
    let mut pending = 0;
    for copied in copies
        .iter_mut()
        .filter(|c| c.copy.state == ImageState::Pending)
    {
        copied.copy.state = copies::state(ctx, &copied.source, &copied.copy).await?;
        pending += usize::from(copied.copy.state == ImageState::Pending);
    }
    Ok(pending)
}

/// Once every copy is available: shares each channel image and its copies
/// with the recipe's accounts and OUs, then moves the regional pointers and
/// tags.
pub async fn finish(ctx: &Context, recipe: &Recipe, copies: Vec<Copied>) -> Result<Distributed> {
    let mut shared_with = Vec::new();
    for image_id in pointers::channel_map(ctx, &recipe.name)
        .await?
        .images
        .keys()
    {
        let source: AmiId = image_id.parse()?;
        let of: Vec<RegionCopy> = copies
            .iter()
            .filter(|c| c.source == source)
            .map(|c| c.copy.clone())
            .collect();
        shared_with = copies::grant(ctx, recipe, &source, &of).await?;
    }
    let synced = promotion::sync(ctx, &recipe.name).await?;
    Ok(Distributed {
        copies,
        shared_with,
        synced,
    })
}
