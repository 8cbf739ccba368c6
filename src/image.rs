//! Bake the image: `CreateImage` from the provisioned builder, then poll until
//! it is available, verified and tagged, and the builder is gone.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, Image as Ec2Image, ResourceType};
use tracing::{info, instrument};

use crate::aws::Context;
use crate::builder;
use crate::error::{Error, Result};
use crate::recipe::{self, Recipe};
use crate::state::{AmiId, BuildId, Builder, Image, ImageState, Source, Trigger};
use crate::tags::{self, Role, Stage};

/// Longest image name EC2 accepts.
const MAX_NAME_LEN: usize = 128;
/// Longest image description EC2 accepts.
const MAX_DESCRIPTION_LEN: usize = 255;

/// The build's image name from the recipe's template. Deterministic for a
/// build, so a retried call finds the image it already made.
pub fn name(recipe: &Recipe, build_id: &BuildId, source: &Source) -> Result<String> {
    let values = BTreeMap::from([
        ("recipe", recipe.name.to_string()),
        ("build_id", build_id.to_string()),
        ("date", source.started_at.strftime("%Y%m%d").to_string()),
        ("fingerprint", source.fingerprint.short().to_owned()),
        ("source_ami", source.source_ami.to_string()),
    ]);
    let name = recipe::render_name(&recipe.file.image.name, &values);
    if name.len() < 3 || name.len() > MAX_NAME_LEN || !name.chars().all(recipe::is_image_name_char)
    {
        return Err(Error::InvalidInput(format!(
            "image name {name:?} is not a valid AMI name (3-{MAX_NAME_LEN} characters); shorten image.name or the build id"
        )));
    }
    Ok(name)
}

/// Starts imaging the builder, or returns the image this build already started.
#[instrument(skip_all, fields(build_id = %trigger.build_id))]
pub async fn start(
    ctx: &Context,
    recipe: &Recipe,
    trigger: &Trigger,
    source: &Source,
    builder: &Builder,
) -> Result<Image> {
    let build_id = &trigger.build_id;
    let image_name = name(recipe, build_id, source)?;
    if let Some(existing) = find_by_name(ctx, &image_name).await? {
        info!(image = ?existing.image_id(), "image already started for this build");
        return to_state(existing, image_name, trigger);
    }
    let mut image_tags = tags::build_tags(&recipe.name, build_id, Role::Image);
    image_tags.extend([
        tags::tag(tags::FINGERPRINT, source.fingerprint.as_str()),
        tags::tag(tags::SOURCE_AMI, source.source_ami.as_str()),
        tags::tag(tags::STAGE, Stage::Candidate.as_ref()),
        tags::tag("Name", &image_name),
    ]);
    image_tags.extend(recipe.file.image.tags.iter().map(|(k, v)| tags::tag(k, v)));
    let created = ctx
        .ec2
        .create_image()
        .instance_id(builder.builder_instance_id.as_str())
        .name(&image_name)
        .description(description(recipe, source))
        .no_reboot(false)
        .tag_specifications(tags::specification(ResourceType::Image, &image_tags))
        .send()
        .await;
    let image_id = match created {
        Ok(output) => output.image_id().unwrap_or_default().to_owned(),
        // Another attempt of this call won the race: take its image.
        Err(err) if Error::code_of(&err) == Some("InvalidAMIName.Duplicate") => {
            let existing = find_by_name(ctx, &image_name)
                .await?
                .ok_or_else(|| Error::aws("CreateImage", err))?;
            return to_state(existing, image_name, trigger);
        }
        Err(err) => return Err(Error::aws("CreateImage", err)),
    };
    info!(%image_id, %image_name, "image started");
    Ok(Image {
        image_id: parse_id(&image_id)?,
        image_name,
        state: ImageState::Pending,
        polling: trigger.begin(),
    })
}

/// Reports on the image: pending, or available once its snapshots are tagged,
/// the builder is terminated and ENA support is verified. Still pending past
/// the recipe's `image.timeout_seconds` is [`Error::ImageTimedOut`].
#[instrument(skip_all, fields(build_id = %trigger.build_id, image = %image.image_id))]
pub async fn poll(
    ctx: &Context,
    recipe: &Recipe,
    trigger: &Trigger,
    image: &Image,
) -> Result<Image> {
    let build_id = &trigger.build_id;
    let failed = |reason: String| Error::ImageFailed {
        image: image.image_id.to_string(),
        reason,
    };
    let output = ctx
        .ec2
        .describe_images()
        .image_ids(image.image_id.as_str())
        .send()
        .await
        .map_err(|err| match Error::code_of(&err) {
            Some(code) if code.starts_with("InvalidAMIID") => {
                failed("the image no longer exists".into())
            }
            _ => Error::aws("DescribeImages", err),
        })?;
    let described = output
        .images()
        .first()
        .ok_or_else(|| failed("the image no longer exists".into()))?;
    let state = described.state().map(|s| s.as_str()).unwrap_or("unknown");
    match state {
        "pending" => {
            let timeout_seconds = recipe.file.image.timeout_seconds;
            let running = jiff::Timestamp::now().duration_since(image.polling.since);
            if running.as_secs() > i64::from(timeout_seconds) {
                return Err(Error::ImageTimedOut {
                    image: image.image_id.to_string(),
                    timeout_seconds,
                });
            }
            Ok(Image {
                polling: trigger.pace(&image.polling),
                ..image.clone()
            })
        }
        "available" => {
            tag_snapshots(ctx, recipe, build_id, &image.image_id, described).await?;
            builder::terminate(ctx, build_id, Some(Role::Builder)).await?;
            if recipe.file.image.ena_required && described.ena_support() != Some(true) {
                set_stage(ctx, &image.image_id, Stage::Failed).await?;
                return Err(Error::EnaMissing {
                    image: image.image_id.to_string(),
                });
            }
            info!("image available");
            Ok(Image {
                state: ImageState::Available,
                ..image.clone()
            })
        }
        other => {
            let reason = described
                .state_reason()
                .and_then(|r| r.message())
                .unwrap_or("no reason given");
            Err(failed(format!("state {other}: {reason}")))
        }
    }
}

/// Moves an image to `stage` (its `kiln:stage` tag).
pub(crate) async fn set_stage(ctx: &Context, image: &AmiId, stage: Stage) -> Result<()> {
    ctx.ec2
        .create_tags()
        .resources(image.as_str())
        .tags(tags::tag(tags::STAGE, stage.as_ref()))
        .send()
        .await
        .map_err(|err| Error::aws("CreateTags", err))?;
    Ok(())
}

/// The snapshots backing an image.
pub(crate) fn snapshot_ids(image: &Ec2Image) -> Vec<String> {
    image
        .block_device_mappings()
        .iter()
        .filter_map(|mapping| {
            mapping
                .ebs()
                .and_then(|ebs| ebs.snapshot_id())
                .map(str::to_owned)
        })
        .collect()
}

async fn find_by_name(ctx: &Context, name: &str) -> Result<Option<Ec2Image>> {
    let output = ctx
        .ec2
        .describe_images()
        .owners("self")
        .filters(Filter::builder().name("name").values(name).build())
        .send()
        .await
        .map_err(|err| Error::aws("DescribeImages", err))?;
    Ok(output.images.unwrap_or_default().into_iter().next())
}

fn to_state(image: Ec2Image, image_name: String, trigger: &Trigger) -> Result<Image> {
    let state = match image.state().map(|s| s.as_str()) {
        Some("available") => ImageState::Available,
        _ => ImageState::Pending,
    };
    Ok(Image {
        image_id: parse_id(image.image_id().unwrap_or_default())?,
        image_name,
        state,
        polling: trigger.begin(),
    })
}

fn parse_id(id: &str) -> Result<AmiId> {
    id.parse().map_err(|_| Error::Aws {
        operation: "CreateImage",
        code: "NoImageId".into(),
        message: format!("EC2 returned {id:?} as the image id"),
    })
}

fn description(recipe: &Recipe, source: &Source) -> String {
    let mut text = recipe.file.image.description.clone().unwrap_or_else(|| {
        format!(
            "kiln {} from {} ({})",
            recipe.name, source.source_name, source.source_ami
        )
    });
    crate::text::truncate(&mut text, MAX_DESCRIPTION_LEN);
    text
}

/// Tags the image's snapshots like the image, so a sweep or retention run finds them.
async fn tag_snapshots(
    ctx: &Context,
    recipe: &Recipe,
    build_id: &BuildId,
    image: &AmiId,
    described: &Ec2Image,
) -> Result<()> {
    let snapshots = snapshot_ids(described);
    if snapshots.is_empty() {
        return Ok(());
    }
    let mut snapshot_tags = tags::build_tags(&recipe.name, build_id, Role::Image);
    snapshot_tags.push(tags::tag(tags::IMAGE_ID, image.as_str()));
    ctx.ec2
        .create_tags()
        .set_resources(Some(snapshots))
        .set_tags(Some(snapshot_tags))
        .send()
        .await
        .map_err(|err| Error::aws("CreateTags", err))?;
    Ok(())
}
