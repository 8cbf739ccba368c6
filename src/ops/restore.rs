//! `kiln restore <recipe> <image>`: bring back an image retention retired
//! before it is deregistered. The image and its copies in the recipe's
//! distribution regions are enabled again (`EnableImage`), lose their
//! deprecation time and `kiln:disabled-at`, and get back the launch
//! permissions the recipe grants: AWS drops every launch permission when it
//! disables an image and gives none back when it enables it (EC2 User Guide,
//! "Disable an Amazon EC2 AMI"). Retention keeps a restored image only while
//! a rule holds it: promote it, or launch it, or it is retired again.

use serde::Serialize;
use tracing::info;

use crate::aws::{Context, images};
use crate::channels::regional;
use crate::error::{Error, Result};
use crate::ids::{AmiId, RecipeName};
use crate::pipeline::copies;
use crate::pipeline::state::{ImageState, RegionCopy};
use crate::tags;

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Restored {
    /// The recipe.
    pub recipe: RecipeName,
    /// The image.
    pub image_id: AmiId,
    /// Its copies, restored with it.
    pub copies: Vec<RegionCopy>,
    /// The launch permissions granted again.
    pub shared_with: Vec<String>,
    /// False when the image was neither disabled nor deprecated.
    pub changed: bool,
}

/// Restores `image` of `recipe` and its copies (see the module). Refused,
/// with nothing changed, for a recipe that does not load (its
/// `[distribution]` says whom to share with) and, as `RestoreRefused`, for an
/// image that does not exist here or was not built by the recipe.
pub async fn restore(ctx: &Context, recipe: &RecipeName, image: &AmiId) -> Result<Restored> {
    let refuse = |reason: String| Error::RestoreRefused {
        image: image.to_string(),
        reason,
    };
    let loaded = ctx.recipe(recipe)?;
    let home = ctx.region()?;
    let described = images::describe(ctx, image)
        .await?
        .ok_or_else(|| refuse(format!("no such image in {home} (deregistered already?)")))?;
    if let Some(reason) = images::not_built_by(&described, recipe) {
        return Err(refuse(reason));
    }
    let mut retired = vec![(ctx.clone(), described)];
    let mut copies = Vec::new();
    for region in &loaded.file.distribution.regions {
        let there = ctx.in_region(region);
        if let Some(copy) = regional::copy_of(&there, image.as_str(), &home).await? {
            if let Some(id) = images::id(&copy) {
                copies.push(RegionCopy {
                    region: region.clone(),
                    image_id: id,
                    state: ImageState::Available,
                });
            }
            retired.push((there, copy));
        }
    }
    let mut changed = false;
    for (there, found) in &retired {
        let Some(id) = found.image_id() else { continue };
        if images::is_disabled(found) {
            images::set_enabled(there, id, true).await?;
            changed = true;
        }
        if found.deprecation_time().is_some() {
            images::deprecate(there, id, None).await?;
            changed = true;
        }
        if tags::value(found.tags(), tags::DISABLED_AT).is_some() {
            images::set_tag(there, id, tags::DISABLED_AT, None).await?;
        }
    }
    let shared_with = copies::grant(ctx, &loaded, image, &copies).await?;
    info!(%image, copies = copies.len(), changed, "restored");
    Ok(Restored {
        recipe: recipe.clone(),
        image_id: image.clone(),
        copies,
        shared_with,
        changed,
    })
}
