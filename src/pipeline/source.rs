//! Resolve the source: which official image to build from, and whether the
//! build is needed at all.

use aws_sdk_ec2::types::{Image as Ec2Image, ImageState};
use tracing::info;

use super::state::{Source, Trigger};
use crate::aws::sdk::Answer;
use crate::aws::{Context, images};
use crate::error::{Error, Problem, Result};
use crate::ids::{AmiId, Fingerprint};
use crate::recipe::{Recipe, SourceLookup};
use crate::tags;

/// resolve-source: [`resolve`] for the trigger's recipe, with the time the
/// build has run so far.
pub async fn handle(ctx: &Context, trigger: Trigger) -> Result<Source> {
    let recipe = ctx.recipe(&trigger.recipe)?;
    let source = resolve(ctx, &recipe, trigger.force).await?;
    Ok(Source {
        duration_seconds: trigger.elapsed_seconds(),
        ..source
    })
}

/// Finds the source image through the recipe's parameter, refuses one that is
/// not trusted, not available or not what the recipe needs, and tells whether
/// an image with the same fingerprint exists (`skip`, unless `force`).
pub async fn resolve(ctx: &Context, recipe: &Recipe, force: bool) -> Result<Source> {
    let started_at = jiff::Timestamp::now();
    check_regions(ctx, recipe).await?;
    let (source_ami, image) = find_source(ctx, recipe).await?;
    check_source(recipe, &source_ami, &image)?;
    let fingerprint = recipe.fingerprint(&source_ami);
    let existing_image_id = if force {
        None
    } else {
        find_built(ctx, recipe, &fingerprint).await?
    };
    let source_name = image.name().unwrap_or_default().to_owned();
    info!(recipe = %recipe.name, %source_ami, %fingerprint, existing = ?existing_image_id, "resolved source");
    Ok(Source {
        serial: serial(&source_name),
        source_name,
        root_device_name: image.root_device_name().unwrap_or("/dev/sda1").to_owned(),
        skip: existing_image_id.is_some(),
        existing_image_id,
        fingerprint,
        source_ami,
        started_at,
        duration_seconds: None,
        copy_regions: recipe.file.distribution.regions.clone(),
        distributes: recipe.file.distribution.distributes(),
    })
}

/// Refuses, before anything is launched, distribution regions this account
/// cannot copy to: one AWS does not have in this partition (`DescribeRegions`
/// with every region), one not enabled here (an opt-in region not opted in),
/// or the build region itself.
async fn check_regions(ctx: &Context, recipe: &Recipe) -> Result<()> {
    let wanted = &recipe.file.distribution.regions;
    if wanted.is_empty() {
        return Ok(());
    }
    let output = ctx
        .ec2()
        .describe_regions()
        .all_regions(true)
        .send()
        .await
        .or_aws("DescribeRegions")?;
    let home = ctx.config.region().map(|r| r.as_ref());
    let problems: Vec<Problem> = wanted
        .iter()
        .filter_map(|region| {
            let found = output
                .regions()
                .iter()
                .find(|r| r.region_name() == Some(region.as_str()));
            let message = match found {
                _ if Some(region.as_str()) == home => {
                    format!("{region} is the build region: the image is made there, copies go elsewhere")
                }
                None => format!(
                    "{region} is not a region of this account's partition: CopyImage cannot copy across partitions"
                ),
                Some(r) if r.opt_in_status() == Some("not-opted-in") => format!(
                    "{region} is not enabled in this account: enable it (Account settings, Regions) or remove it"
                ),
                Some(_) => return None,
            };
            Some(Problem {
                field: "distribution.regions".into(),
                message,
            })
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidRecipe {
            recipe: recipe.dir.display().to_string(),
            problems,
        })
    }
}

/// The source image and its description, as the recipe finds it.
async fn find_source(ctx: &Context, recipe: &Recipe) -> Result<(AmiId, Ec2Image)> {
    match ctx.settings.source_lookup(recipe) {
        SourceLookup::Parameter(parameter) => {
            let ami = read_parameter(ctx, parameter).await?;
            let image = images::describe(ctx, &ami).await?.ok_or_else(|| {
                Error::SourceNotFound(format!(
                    "{ami} (from {parameter}) does not exist or was deregistered"
                ))
            })?;
            Ok((ami, image))
        }
        SourceLookup::NamePattern(pattern) => {
            let spec = &recipe.file.source;
            let image =
                images::newest_named(ctx, &spec.owners, pattern, spec.architecture.as_ref())
                    .await?
                    .ok_or_else(|| {
                        Error::SourceNotFound(format!(
                            "no available {} image of {} is named like {pattern:?}",
                            spec.architecture,
                            spec.owners.join(", ")
                        ))
                    })?;
            let ami = images::id(&image).ok_or_else(|| {
                Error::SourceNotFound(format!(
                    "EC2 gave an image named like {pattern:?} without an id"
                ))
            })?;
            Ok((ami, image))
        }
    }
}

async fn read_parameter(ctx: &Context, parameter: &str) -> Result<AmiId> {
    let found = ctx
        .parameter(parameter)
        .await?
        .ok_or_else(|| Error::SourceNotFound(format!("parameter {parameter} does not exist")))?;
    let value = found.value().unwrap_or_default();
    value.parse().map_err(|_| {
        Error::SourceNotFound(format!(
            "parameter {parameter} holds {value:?}, not an AMI id"
        ))
    })
}

/// Every rule a source image must pass before anything is launched from it.
fn check_source(recipe: &Recipe, ami: &AmiId, image: &Ec2Image) -> Result<()> {
    let spec = &recipe.file.source;
    let owner = image.owner_id().unwrap_or_default();
    if !spec.owners.iter().any(|allowed| allowed == owner) {
        return Err(Error::UntrustedSource {
            image: ami.to_string(),
            owner: owner.to_owned(),
            allowed: spec.owners.join(", "),
        });
    }
    if !images::is_available(image) {
        return Err(Error::SourceNotAvailable {
            image: ami.to_string(),
            state: images::state_name(image).to_owned(),
        });
    }
    let mismatch = |reason: String| {
        Err(Error::SourceMismatch {
            image: ami.to_string(),
            reason,
        })
    };
    let architecture = image
        .architecture()
        .map(|a| a.as_str())
        .unwrap_or("unknown");
    if architecture != spec.architecture.as_ref() {
        return mismatch(format!(
            "architecture is {architecture}, the recipe needs {}",
            spec.architecture
        ));
    }
    let root = image
        .root_device_type()
        .map(|t| t.as_str())
        .unwrap_or("unknown");
    if root != "ebs" {
        return mismatch(format!(
            "root device is {root}; kiln bakes EBS-backed images only"
        ));
    }
    if recipe.file.image.ena_required && image.ena_support() != Some(true) {
        return mismatch("it has no ENA support and the recipe requires ENA".to_owned());
    }
    Ok(())
}

/// The newest available image of this recipe built from the same fingerprint
/// that passed its test (a candidate left by an interrupted build does not count).
async fn find_built(
    ctx: &Context,
    recipe: &Recipe,
    fingerprint: &Fingerprint,
) -> Result<Option<AmiId>> {
    let mut found = images::own(
        ctx,
        vec![
            tags::filter(tags::RECIPE, recipe.name.as_str()),
            tags::filter(tags::FINGERPRINT, fingerprint.as_str()),
            tags::filter(tags::STAGE, tags::Stage::Tested.as_ref()),
            images::filter("state", [ImageState::Available.as_str()]),
        ],
    )
    .await?;
    found.sort_by_key(|image| image.creation_date().unwrap_or_default().to_owned());
    Ok(found.last().and_then(images::id))
}

/// The release serial at the end of an image name:
/// `ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20241109.1` gives `20241109.1`.
fn serial(name: &str) -> Option<String> {
    let last = name.rsplit('-').next()?;
    let looks_like_serial = last.len() >= 8
        && last.starts_with(|c: char| c.is_ascii_digit())
        && last.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    looks_like_serial.then(|| last.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_is_read_from_canonical_names() {
        assert_eq!(
            serial("ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20241109.1")
                .as_deref(),
            Some("20241109.1")
        );
        assert_eq!(
            serial("ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250115").as_deref(),
            Some("20250115")
        );
        assert_eq!(serial("my-image"), None);
        assert_eq!(serial("build-42"), None);
    }
}
