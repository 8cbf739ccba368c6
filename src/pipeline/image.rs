//! Bake the image: `CreateImage` from the provisioned builder, then poll until
//! it is available, verified and tagged, and the builder is gone.

use aws_sdk_ec2::types::{
    AttributeValue, Image as Ec2Image, ImageState as Ec2ImageState, ImdsSupportValues, ResourceType,
};
use tracing::{info, instrument};

use super::requests::{ImageAction, ImageRequest};
use super::state::{Builder, Image, ImageState, Source, Trigger};
use crate::aws::sdk::{self, Answer};
use crate::aws::{Context, images, instances};
use crate::error::{Error, Result};
use crate::ids::AmiId;
use crate::recipe::Recipe;
use crate::tags::{self, Role, Stage};

/// Longest image description EC2 accepts.
const MAX_DESCRIPTION_LEN: usize = 255;

/// create-image: [`start`] or [`poll`], as the request says.
pub async fn handle(ctx: &Context, request: ImageRequest) -> Result<Image> {
    let recipe = ctx.recipe(&request.trigger.recipe)?;
    let trigger = &request.trigger;
    match &request.action {
        ImageAction::Start => start(ctx, &recipe, trigger, &request.source, &request.builder).await,
        ImageAction::Poll { image } => poll(ctx, &recipe, trigger, image).await,
    }
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
    let image_name = recipe.image_name(source.name_inputs(build_id))?;
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
    // The snapshots carry the build from their creation: a build that ends
    // while its image is pending leaves nothing cleanup cannot find (and
    // IAM lets cleanup delete only what carries a build tag).
    let snapshot_tags = tags::build_tags(&recipe.name, build_id, Role::Image);
    let created = ctx
        .ec2()
        .create_image()
        .instance_id(builder.builder_instance_id.as_str())
        .name(&image_name)
        .description(description(recipe, source))
        .no_reboot(false)
        .tag_specifications(tags::specification(ResourceType::Image, &image_tags))
        .tag_specifications(tags::specification(ResourceType::Snapshot, &snapshot_tags))
        .send()
        .await
        // Another attempt of this call won the race: take its image.
        .or_missing("CreateImage", |err| {
            sdk::code_in(err, &["InvalidAMIName.Duplicate"])
        })?;
    let Some(created) = created else {
        let existing = find_by_name(ctx, &image_name)
            .await?
            .ok_or_else(|| Error::Aws {
                operation: "CreateImage",
                code: "InvalidAMIName.Duplicate".into(),
                message: format!("an image named {image_name} exists but cannot be found"),
            })?;
        return to_state(existing, image_name, trigger);
    };
    let image_id = created.image_id().unwrap_or_default().to_owned();
    info!(%image_id, %image_name, "image started");
    Ok(Image {
        image_id: parse_id(&image_id)?,
        image_name,
        state: ImageState::Pending,
        polling: trigger.begin(),
    })
}

/// Reports on the image: pending, or available once its snapshots are tagged,
/// the builder is terminated, ENA support is verified and IMDSv2 required. Still pending past
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
    let described = images::describe(ctx, &image.image_id)
        .await?
        .ok_or_else(|| failed("the image no longer exists".into()))?;
    match described.state() {
        Some(Ec2ImageState::Pending) => {
            let timeout_seconds = recipe.file.image.timeout_seconds;
            if image.polling.overdue(timeout_seconds) {
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
        Some(Ec2ImageState::Available) => {
            tag_snapshots(ctx, &image.image_id, &described).await?;
            instances::terminate(ctx, build_id, Some(Role::Builder)).await?;
            if recipe.file.image.ena_required && described.ena_support() != Some(true) {
                images::set_stage(ctx, &image.image_id, Stage::Failed).await?;
                return Err(Error::EnaMissing {
                    image: image.image_id.to_string(),
                });
            }
            if recipe.file.image.require_imdsv2 {
                require_imdsv2(ctx, &described).await?;
            }
            info!("image available");
            Ok(Image {
                state: ImageState::Available,
                ..image.clone()
            })
        }
        _ => {
            let reason = described
                .state_reason()
                .and_then(|r| r.message())
                .unwrap_or("no reason given");
            Err(failed(format!(
                "state {}: {reason}",
                images::state_name(&described)
            )))
        }
    }
}

async fn find_by_name(ctx: &Context, name: &str) -> Result<Option<Ec2Image>> {
    let found = images::own(ctx, vec![images::filter("name", [name])]).await?;
    Ok(found.into_iter().next())
}

fn to_state(image: Ec2Image, image_name: String, trigger: &Trigger) -> Result<Image> {
    let state = if images::is_available(&image) {
        ImageState::Available
    } else {
        ImageState::Pending
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

/// Tells each of the image's snapshots which image it backs (they carry the
/// build's tags from their creation), so retention and the sweep can tell
/// a kept image's snapshots from leftovers.
async fn tag_snapshots(ctx: &Context, image: &AmiId, described: &Ec2Image) -> Result<()> {
    let snapshots = images::snapshot_ids(described);
    if snapshots.is_empty() {
        return Ok(());
    }
    ctx.ec2()
        .create_tags()
        .set_resources(Some(snapshots))
        .tags(tags::tag(tags::IMAGE_ID, image.as_str()))
        .send()
        .await
        .or_aws("CreateTags")?;
    Ok(())
}

/// Sets the image's `ImdsSupport` to `v2.0`: instances launched from it
/// require IMDSv2 (tokens) unless their launch says otherwise. AWS allows no
/// way back (ModifyImageAttribute, ImdsSupport), so it is set once the image
/// is available and has not failed, and only when it is not set already.
async fn require_imdsv2(ctx: &Context, described: &Ec2Image) -> Result<()> {
    if described.imds_support() == Some(&ImdsSupportValues::V20) {
        return Ok(());
    }
    ctx.ec2()
        .modify_image_attribute()
        .set_image_id(described.image_id().map(str::to_owned))
        .imds_support(
            AttributeValue::builder()
                .value(ImdsSupportValues::V20.as_str())
                .build(),
        )
        .send()
        .await
        .or_aws("ModifyImageAttribute")?;
    Ok(())
}
