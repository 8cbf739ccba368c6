//! Launch the build's instances (the builder, and the test instance): locked
//! down, tagged, never launched twice.
//!
//! Every instance gets IMDSv2 only, no key pair, a security group without
//! inbound rules, an encrypted root volume and the build's tags on the
//! instance and its volumes.

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, HttpTokensState, IamInstanceProfileSpecification,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceType, ResourceType,
    ShutdownBehavior, VolumeType,
};
use tracing::{info, instrument, warn};

use super::requests::LaunchRequest;
use super::state::{Builder, Source};
use crate::aws::{Context, instances, network, sdk};
use crate::error::{Error, Result};
use crate::ids::{AmiId, BuildId, InstanceId};
use crate::recipe::Recipe;
use crate::tags::{self, Role};
/// `RunInstances` codes after which the next instance type may still work.
const CAPACITY_CODES: &[&str] = &[
    "InsufficientInstanceCapacity",
    "Unsupported",
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
];

/// launch-builder: [`launch`] for the request's recipe.
pub async fn handle(ctx: &Context, request: LaunchRequest) -> Result<Builder> {
    let recipe = ctx.recipe(&request.trigger.recipe)?;
    launch(ctx, &recipe, &request.trigger.build_id, &request.source).await
}

/// Launches the build's builder from the source image, or returns the one
/// this build already launched.
#[instrument(skip_all, fields(build_id = %build_id, recipe = %recipe.name))]
pub async fn launch(
    ctx: &Context,
    recipe: &Recipe,
    build_id: &BuildId,
    source: &Source,
) -> Result<Builder> {
    // A name EC2 would refuse is found now, before anything is launched.
    recipe.image_name(source.name_inputs(build_id))?;
    let launch = Launch {
        recipe,
        build_id,
        role: Role::Builder,
        image: &source.source_ami,
        root_device_name: &source.root_device_name,
    };
    let (builder_instance_id, instance_type) = launch_instance(ctx, &launch).await?;
    Ok(Builder {
        builder_instance_id,
        instance_type,
    })
}

/// One instance for a build: who it is for, and what it boots.
pub(crate) struct Launch<'a> {
    /// The recipe giving the builder settings.
    pub recipe: &'a Recipe,
    /// The build the instance belongs to.
    pub build_id: &'a BuildId,
    /// What the instance is for.
    pub role: Role,
    /// The image it boots.
    pub image: &'a AmiId,
    /// The image's root device name.
    pub root_device_name: &'a str,
}

/// Launches one locked-down instance for the build, trying the recipe's
/// instance types in order. Idempotent: an instance of this build and role
/// that is already live is returned instead of launching another (the
/// `ClientToken` gives the same guarantee on AWS).
pub(crate) async fn launch_instance(
    ctx: &Context,
    launch: &Launch<'_>,
) -> Result<(InstanceId, String)> {
    let Launch {
        recipe,
        build_id,
        role,
        ..
    } = *launch;
    let profile = ctx.settings.instance_profile(recipe)?;
    if let Some(existing) = instances::live_instances(ctx, build_id, Some(role))
        .await?
        .into_iter()
        .next()
    {
        info!(instance = %existing.0, "instance already launched for this build");
        return Ok(existing);
    }
    let group = network::builder_group(ctx, &recipe.file.builder).await?;
    let mut tried = Vec::new();
    for instance_type in &recipe.file.builder.instance_types {
        let launched = run_instance(ctx, launch, profile, &group, instance_type).await;
        match launched {
            Ok(instance) => {
                info!(%instance, %instance_type, ?role, "launched");
                return Ok((instance, instance_type.clone()));
            }
            Err(RunError::Capacity(code)) => {
                warn!(%instance_type, %code, "no capacity, trying the next instance type");
                tried.push(format!("{instance_type}: {code}"));
            }
            Err(RunError::Other(err)) => return Err(err),
        }
    }
    Err(Error::NoCapacity {
        tried: tried.join(", "),
    })
}

enum RunError {
    Capacity(String),
    Other(Error),
}

async fn run_instance(
    ctx: &Context,
    launch: &Launch<'_>,
    profile: &str,
    security_group: &str,
    instance_type: &str,
) -> std::result::Result<InstanceId, RunError> {
    let Launch {
        recipe,
        build_id,
        role,
        image,
        root_device_name,
    } = *launch;
    let spec = &recipe.file.builder;
    let volume = &spec.root_volume;
    let mut tags = tags::build_tags(&recipe.name, build_id, role);
    tags.extend(spec.tags.iter().map(|(key, value)| tags::tag(key, value)));
    if !spec.tags.contains_key("Name") {
        tags.push(tags::tag(
            "Name",
            format!("kiln-{role} {} {build_id}", recipe.name),
        ));
    }
    let output = ctx
        .ec2()
        .run_instances()
        .image_id(image.as_str())
        .instance_type(InstanceType::from(instance_type))
        .min_count(1)
        .max_count(1)
        .client_token(sdk::client_token(&[
            build_id.as_str(),
            role.as_ref(),
            instance_type,
        ]))
        .iam_instance_profile(
            IamInstanceProfileSpecification::builder()
                .name(profile)
                .build(),
        )
        .metadata_options(
            InstanceMetadataOptionsRequest::builder()
                .http_tokens(HttpTokensState::Required)
                .http_endpoint(InstanceMetadataEndpointState::Enabled)
                .http_put_response_hop_limit(1)
                .build(),
        )
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name(root_device_name)
                .ebs(
                    EbsBlockDevice::builder()
                        .volume_size(volume.size_gib)
                        .volume_type(VolumeType::from(volume.volume_type.as_ref()))
                        .encrypted(volume.encrypted)
                        .set_kms_key_id(volume.kms_key_id.clone())
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        )
        .set_subnet_id(spec.subnet_id.clone())
        .security_group_ids(security_group)
        .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
        .tag_specifications(tags::specification(ResourceType::Instance, &tags))
        .tag_specifications(tags::specification(ResourceType::Volume, &tags))
        .send()
        .await
        .map_err(|err| match Error::code_of(&err) {
            Some(code) if CAPACITY_CODES.contains(&code) => RunError::Capacity(code.to_owned()),
            _ => RunError::Other(Error::aws("RunInstances", err)),
        })?;
    output
        .instances()
        .first()
        .and_then(|instance| instance.instance_id())
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| {
            RunError::Other(Error::Aws {
                operation: "RunInstances",
                code: "NoInstance".into(),
                message: "the response named no instance".into(),
            })
        })
}
