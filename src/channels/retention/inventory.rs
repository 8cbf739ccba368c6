//! The images of a recipe and everything that holds on to each, in the
//! build region and in each distribution region (`kiln images`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use tracing::instrument;

use super::holds::{instances_using, templates_naming};
use crate::aws::{Context, images};
use crate::channels::pointers::{self, Standing};
use crate::channels::{promotion, regional};
use crate::error::Result;
use crate::ids::{AmiId, Channel, RecipeName};
use crate::security::scan::Counts;
use crate::tags;

/// One image of a recipe and everything that holds on to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageInfo {
    /// The image.
    pub image_id: AmiId,
    /// Its name.
    pub name: String,
    /// When EC2 made it (RFC 3339).
    pub created: Option<String>,
    /// Whole days since then.
    pub age_days: Option<i64>,
    /// Its EC2 state (`available`, `disabled`, ...).
    pub state: String,
    /// Deregistration protection is on.
    pub protected: bool,
    /// When it is (or was) deprecated (RFC 3339).
    pub deprecation_time: Option<String>,
    /// When retention disabled it (its `kiln:disabled-at`).
    pub disabled_at: Option<String>,
    /// When an instance last launched from it, as EC2 reports it (up to a
    /// day late).
    pub last_launched: Option<String>,
    /// When it reached its stage (`kiln:staged-at`): its own test launched
    /// before.
    pub staged_at: Option<String>,
    /// Its `kiln:stage`.
    pub stage: Option<String>,
    /// Its CRITICAL and HIGH vulnerabilities when it was tested
    /// (`kiln:findings`); none when it was never scanned.
    pub findings: Option<Counts>,
    /// The build that made it.
    pub build_id: Option<String>,
    /// Where it stands on the channels, by the pointers.
    #[serde(flatten)]
    pub standing: Standing,
    /// Instances (not terminated) running or stopped on it.
    pub instances: Vec<String>,
    /// Launch template versions naming it (`lt-…:version`).
    pub launch_templates: Vec<String>,
    /// The snapshots backing it.
    pub snapshots: Vec<String>,
    /// Its copies in the recipe's distribution regions.
    pub copies: Vec<CopyInfo>,
}

/// One distribution region's copy of an image, and what holds on to it there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CopyInfo {
    /// The region.
    pub region: String,
    /// The copy.
    pub image_id: AmiId,
    /// Its EC2 state.
    pub state: String,
    /// Deregistration protection is on.
    pub protected: bool,
    /// When it is (or was) deprecated (RFC 3339).
    pub deprecation_time: Option<String>,
    /// When an instance last launched from it.
    pub last_launched: Option<String>,
    /// The channels whose pointer in the region names it (a regional
    /// pointer not yet moved with the home one holds its copy too).
    pub channels: BTreeSet<Channel>,
    /// Instances (not terminated) in the region running or stopped on it.
    pub instances: Vec<String>,
    /// Launch template versions of the region naming it.
    pub launch_templates: Vec<String>,
    /// The snapshots backing it.
    pub snapshots: Vec<String>,
}

/// Every image of `recipe`, newest first, with what holds on to each (and
/// on to each of its copies).
#[instrument(skip(ctx))]
pub async fn images(ctx: &Context, recipe: &RecipeName) -> Result<Vec<ImageInfo>> {
    let mut found = promotion::recipe_images(ctx, recipe).await?;
    // Newest first; EC2 dates have whole seconds, so ties go by id.
    found.sort_by(|a, b| (b.creation_date(), b.image_id()).cmp(&(a.creation_date(), a.image_id())));
    let ids: Vec<String> = found
        .iter()
        .filter_map(|i| i.image_id().map(str::to_owned))
        .collect();
    let mut standing = pointers::channel_map(ctx, recipe).await?.images;
    let mut instances = instances_using(ctx, &ids).await?;
    let mut templates = templates_naming(ctx).await?;
    let now = jiff::Timestamp::now();
    let mut infos = Vec::new();
    for image in found {
        let Some(id) = images::id(&image) else {
            continue;
        };
        let created = image.creation_date().map(str::to_owned);
        let age_days = created
            .as_deref()
            .and_then(|c| c.parse::<jiff::Timestamp>().ok())
            .map(|c| now.duration_since(c).as_secs() / 86_400);
        infos.push(ImageInfo {
            name: image.name().unwrap_or_default().to_owned(),
            state: images::state_name(&image).to_owned(),
            protected: images::is_protected(&image),
            deprecation_time: image.deprecation_time().map(str::to_owned),
            disabled_at: tags::value(image.tags(), tags::DISABLED_AT).map(str::to_owned),
            last_launched: image.last_launched_time().map(str::to_owned),
            staged_at: tags::value(image.tags(), tags::STAGED_AT).map(str::to_owned),
            stage: tags::value(image.tags(), tags::STAGE).map(str::to_owned),
            findings: tags::value(image.tags(), tags::FINDINGS).and_then(Counts::of_tag),
            build_id: tags::value(image.tags(), tags::BUILD_ID).map(str::to_owned),
            standing: standing.remove(id.as_str()).unwrap_or_default(),
            instances: instances.remove(id.as_str()).unwrap_or_default(),
            launch_templates: templates.remove(id.as_str()).unwrap_or_default(),
            snapshots: images::snapshot_ids(&image),
            copies: Vec::new(),
            created,
            age_days,
            image_id: id,
        });
    }
    for region in regional::regions(ctx, recipe) {
        let home = ctx.region()?;
        for (source, copy) in copies_in(&ctx.in_region(&region), recipe, &home).await? {
            if let Some(info) = infos.iter_mut().find(|i| i.image_id.as_str() == source) {
                info.copies.push(copy);
            }
        }
    }
    Ok(infos)
}

/// The copies of `recipe`'s images (made in `home`) in `there`'s region, by
/// their source's id, with what holds on to each there.
async fn copies_in(
    there: &Context,
    recipe: &RecipeName,
    home: &str,
) -> Result<Vec<(String, CopyInfo)>> {
    let region = there.region()?;
    let found: Vec<_> = promotion::recipe_images(there, recipe)
        .await?
        .into_iter()
        .filter(|i| tags::value(i.tags(), tags::COPY_OF_REGION) == Some(home))
        .collect();
    let ids: Vec<String> = found
        .iter()
        .filter_map(|i| i.image_id().map(str::to_owned))
        .collect();
    let mut instances = instances_using(there, &ids).await?;
    let mut templates = templates_naming(there).await?;
    let mut named: BTreeMap<String, BTreeSet<Channel>> = BTreeMap::new();
    for (channel, (image, _)) in pointers::pointers(there, recipe).await? {
        named.entry(image).or_default().insert(channel);
    }
    let mut copies = Vec::new();
    for image in &found {
        let (Some(id), Some(source)) =
            (images::id(image), tags::value(image.tags(), tags::COPY_OF))
        else {
            continue;
        };
        copies.push((
            source.to_owned(),
            CopyInfo {
                region: region.clone(),
                state: images::state_name(image).to_owned(),
                protected: images::is_protected(image),
                deprecation_time: image.deprecation_time().map(str::to_owned),
                last_launched: image.last_launched_time().map(str::to_owned),
                channels: named.remove(id.as_str()).unwrap_or_default(),
                instances: instances.remove(id.as_str()).unwrap_or_default(),
                launch_templates: templates.remove(id.as_str()).unwrap_or_default(),
                snapshots: images::snapshot_ids(image),
                image_id: id,
            },
        ));
    }
    Ok(copies)
}
