//! The images of a recipe, what uses each, and retention: deregister old
//! images with their snapshots, never one that anything still needs.
//!
//! An image is kept when it is among the newest `keep`, on a channel, what a
//! channel would roll back to (both read from the pointers, not the tags,
//! and read again right before each deregistration), used by an instance in
//! any state but terminated, or named by any version of any launch template
//! (by its id, or by a pinned version of a kiln pointer); or when any of its
//! copies in the recipe's distribution regions is named by that region's
//! pointer, used by an instance there or named by a launch template there.
//! An image goes with its copies.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::InstanceStateName;
use serde::Serialize;
use tracing::{info, instrument};

use super::pointers::{self, POINTER_ROOT, RESOLVE_SSM, Standing};
use super::{promotion, regional};
use crate::aws::sdk;
use crate::aws::{Context, images};
use crate::error::{Error, Result};
use crate::ids::{AmiId, Channel, RecipeName};
use crate::tags;

/// Instance states in which an instance still holds its image.
const HOLDING_STATES: &[InstanceStateName] = &[
    InstanceStateName::Pending,
    InstanceStateName::Running,
    InstanceStateName::ShuttingDown,
    InstanceStateName::Stopping,
    InstanceStateName::Stopped,
];
/// Most values one `DescribeInstances` filter takes.
const MAX_FILTER_VALUES: usize = 200;

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
    /// Its EC2 state.
    pub state: String,
    /// Its `kiln:stage`.
    pub stage: Option<String>,
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
            stage: tags::value(image.tags(), tags::STAGE).map(str::to_owned),
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

/// Why retention keeps an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, strum::Display)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Keep {
    /// Among the newest `keep` images.
    #[strum(to_string = "among the newest {0}")]
    Newest(usize),
    /// A channel names it.
    #[strum(to_string = "on channel {0}")]
    OnChannel(String),
    /// A channel would roll back to it.
    #[strum(to_string = "previous on channel {0}")]
    Previous(String),
    /// Instances hold it.
    #[strum(to_string = "used by {0}")]
    UsedBy(String),
    /// Launch template versions name it.
    #[strum(to_string = "in launch template {0}")]
    InLaunchTemplate(String),
}

/// An image retention keeps, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kept {
    /// The image.
    pub image_id: AmiId,
    /// Its name.
    pub name: String,
    /// Every reason it stays.
    pub why: Vec<Keep>,
}

/// An image retention removed (or would, on a dry run).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pruned {
    /// The image.
    pub image_id: AmiId,
    /// Its name.
    pub name: String,
    /// When it was made.
    pub created: Option<String>,
    /// Its snapshots, deleted with it.
    pub snapshots: Vec<String>,
    /// Its copies, deregistered with it (with their snapshots).
    pub copies: Vec<CopyInfo>,
}

/// What a retention run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pruning {
    /// The recipe.
    pub recipe: RecipeName,
    /// Nothing was removed: `pruned` is what would go.
    pub dry_run: bool,
    /// The images removed.
    pub pruned: Vec<Pruned>,
    /// The images kept, each with its reasons.
    pub kept: Vec<Kept>,
}

/// Deregisters the images of `recipe` beyond the newest `keep` and deletes
/// their snapshots, except those something still needs (see the module).
/// With `dry_run`, only reports.
#[instrument(skip(ctx))]
pub async fn prune(
    ctx: &Context,
    recipe: &RecipeName,
    keep: usize,
    dry_run: bool,
) -> Result<Pruning> {
    if keep == 0 {
        return Err(Error::InvalidInput(
            "keep at least 1 image: the newest may belong to a build still running".into(),
        ));
    }
    let mut report = Pruning {
        recipe: recipe.clone(),
        dry_run,
        pruned: Vec::new(),
        kept: Vec::new(),
    };
    for (rank, mut info) in images(ctx, recipe).await?.into_iter().enumerate() {
        if !dry_run && reasons(&info, rank, keep).is_empty() {
            // A promotion may have moved a pointer since the images were
            // read: read the pointers again right before deregistering.
            info.standing = pointers::channel_map(ctx, recipe)
                .await?
                .images
                .remove(info.image_id.as_str())
                .unwrap_or_default();
        }
        let why = reasons(&info, rank, keep);
        if !why.is_empty() {
            report.kept.push(Kept {
                image_id: info.image_id,
                name: info.name,
                why,
            });
            continue;
        }
        if !dry_run {
            // The copies first: a run stopped halfway leaves a source with
            // fewer copies (found again next time), never a copy without
            // its source.
            for copy in &info.copies {
                let there = ctx.in_region(&copy.region);
                images::deregister(&there, &copy.image_id, &copy.snapshots).await?;
            }
            images::deregister(ctx, &info.image_id, &info.snapshots).await?;
            info!(image = %info.image_id, copies = info.copies.len(), "pruned");
        }
        report.pruned.push(Pruned {
            image_id: info.image_id,
            name: info.name,
            created: info.created,
            snapshots: info.snapshots,
            copies: info.copies,
        });
    }
    Ok(report)
}

fn reasons(info: &ImageInfo, rank: usize, keep: usize) -> Vec<Keep> {
    let mut why = Vec::new();
    if rank < keep {
        why.push(Keep::Newest(keep));
    }
    why.extend(
        info.standing
            .channels
            .iter()
            .map(|c| Keep::OnChannel(c.to_string())),
    );
    why.extend(
        info.standing
            .previous
            .iter()
            .map(|c| Keep::Previous(c.to_string())),
    );
    if !info.instances.is_empty() {
        why.push(Keep::UsedBy(info.instances.join(", ")));
    }
    if !info.launch_templates.is_empty() {
        why.push(Keep::InLaunchTemplate(info.launch_templates.join(", ")));
    }
    for copy in &info.copies {
        let there = |what: String| format!("{what} in {}", copy.region);
        why.extend(
            copy.channels
                .iter()
                .map(|c| Keep::OnChannel(there(c.to_string()))),
        );
        if !copy.instances.is_empty() {
            why.push(Keep::UsedBy(there(copy.instances.join(", "))));
        }
        if !copy.launch_templates.is_empty() {
            why.push(Keep::InLaunchTemplate(there(
                copy.launch_templates.join(", "),
            )));
        }
    }
    why
}

/// Image id -> the instances (not terminated) launched from it.
async fn instances_using(ctx: &Context, ids: &[String]) -> Result<BTreeMap<String, Vec<String>>> {
    let mut using: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for batch in ids.chunks(MAX_FILTER_VALUES) {
        let pages = ctx
            .ec2()
            .describe_instances()
            .filters(images::filter("image-id", batch.iter().cloned()))
            .filters(images::filter(
                "instance-state-name",
                HOLDING_STATES.iter().map(InstanceStateName::as_str),
            ))
            .into_paginator()
            .send();
        for page in sdk::all(pages, "DescribeInstances").await? {
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                if let (Some(image), Some(id)) = (instance.image_id(), instance.instance_id()) {
                    using
                        .entry(image.to_owned())
                        .or_default()
                        .push(id.to_owned());
                }
            }
        }
    }
    Ok(using)
}

/// Image id -> the launch template versions (`lt-…:version`) naming it.
async fn templates_naming(ctx: &Context) -> Result<BTreeMap<String, Vec<String>>> {
    let mut naming: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut pinned = BTreeMap::new();
    let templates = ctx
        .ec2()
        .describe_launch_templates()
        .into_paginator()
        .items()
        .send();
    for template in sdk::all(templates, "DescribeLaunchTemplates").await? {
        let Some(template_id) = template.launch_template_id() else {
            continue;
        };
        let versions = ctx
            .ec2()
            .describe_launch_template_versions()
            .launch_template_id(template_id)
            .into_paginator()
            .items()
            .send();
        for version in sdk::all(versions, "DescribeLaunchTemplateVersions").await? {
            let named = version
                .launch_template_data()
                .and_then(|data| data.image_id())
                .unwrap_or_default();
            if let Some(image) = launched_image(ctx, named, &mut pinned).await? {
                naming.entry(image).or_default().push(format!(
                    "{template_id}:{}",
                    version.version_number().unwrap_or_default()
                ));
            }
        }
    }
    Ok(naming)
}

/// The image a launch template's `ImageId` launches, as far as retention
/// can tell: an AMI id as it is; for a pinned version (or label) of a kiln
/// pointer, `resolve:ssm:/kiln/<recipe>/<channel>:3`, the image that
/// version names (`pinned` remembers those read). An unpinned pointer names
/// what its channel names now, which retention keeps anyway; another
/// parameter is not kiln's to read.
async fn launched_image(
    ctx: &Context,
    image_id: &str,
    pinned: &mut BTreeMap<String, Option<String>>,
) -> Result<Option<String>> {
    let Some(parameter) = image_id.strip_prefix(RESOLVE_SSM) else {
        return Ok((!image_id.is_empty()).then(|| image_id.to_owned()));
    };
    let ours = parameter.starts_with(&format!("{POINTER_ROOT}/")) && parameter.contains(':');
    if !ours {
        return Ok(None);
    }
    if let Some(known) = pinned.get(parameter) {
        return Ok(known.clone());
    }
    let image = ctx.parameter(parameter).await?.and_then(|p| p.value);
    pinned.insert(parameter.to_owned(), image.clone());
    Ok(image)
}
