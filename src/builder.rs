//! Launch and terminate kiln's instances: locked down, tagged, never launched twice.
//!
//! Builders (and, later, test instances) get IMDSv2 only, no key pair, a
//! security group without inbound rules, an encrypted root volume and the
//! build's tags on the instance and its volumes.

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, IamInstanceProfileSpecification,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceType, ResourceType,
    ShutdownBehavior, VolumeType,
};
use sha2::{Digest, Sha256};
use tracing::{info, instrument, warn};

use crate::aws::Context;
use crate::error::{Error, Result};
use crate::recipe::Recipe;
use crate::state::{AmiId, BuildId, Builder, InstanceId, Source};
use crate::tags::{self, Role};

/// The security group kiln creates per VPC when a recipe names none.
pub const SECURITY_GROUP_NAME: &str = "kiln-builder";
/// Instance states that still cost money or hold a volume.
const LIVE_STATES: &[&str] = &["pending", "running", "stopping", "stopped"];
/// `RunInstances` codes after which the next instance type may still work.
const CAPACITY_CODES: &[&str] = &[
    "InsufficientInstanceCapacity",
    "Unsupported",
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
];

/// Launches the build's builder from the source image, or returns the one
/// this build already launched.
#[instrument(skip_all, fields(build_id = %build_id, recipe = %recipe.name))]
pub async fn launch(
    ctx: &Context,
    recipe: &Recipe,
    build_id: &BuildId,
    source: &Source,
) -> Result<Builder> {
    crate::image::name(recipe, build_id, source)?;
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
    if let Some(existing) = live_instances(ctx, build_id, Some(role))
        .await?
        .into_iter()
        .next()
    {
        info!(instance = %existing.0, "instance already launched for this build");
        return Ok(existing);
    }
    let group = security_group(ctx, recipe).await?;
    let mut tried = Vec::new();
    for instance_type in &recipe.file.builder.instance_types {
        let launched = run_instance(ctx, launch, &group, instance_type).await;
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
    tags.push(tags::tag(
        "Name",
        format!("kiln-{role} {} {build_id}", recipe.name),
    ));
    let output = ctx
        .ec2
        .run_instances()
        .image_id(image.as_str())
        .instance_type(InstanceType::from(instance_type))
        .min_count(1)
        .max_count(1)
        .client_token(client_token(build_id, role, instance_type))
        .iam_instance_profile(
            IamInstanceProfileSpecification::builder()
                .name(&spec.instance_profile)
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

/// A `ClientToken` unique to (build, role, type): a retried call never launches
/// twice, and a different instance type is a different request.
fn client_token(build_id: &BuildId, role: Role, instance_type: &str) -> String {
    let digest = Sha256::digest(format!("{build_id}\0{role}\0{instance_type}"));
    format!("kiln-{}", &hex::encode(digest)[..40])
}

/// The live (not terminated) instances of the build, of `role` or of any
/// role, with their types.
pub async fn live_instances(
    ctx: &Context,
    build_id: &BuildId,
    role: Option<Role>,
) -> Result<Vec<(InstanceId, String)>> {
    let mut filters = vec![
        tags::filter(tags::BUILD_ID, build_id.as_str()),
        live_state_filter(),
    ];
    filters.extend(role.map(|role| tags::filter(tags::ROLE, role.as_ref())));
    let output = ctx
        .ec2
        .describe_instances()
        .set_filters(Some(filters))
        .send()
        .await
        .map_err(|err| Error::aws("DescribeInstances", err))?;
    Ok(output
        .reservations()
        .iter()
        .flat_map(|reservation| reservation.instances())
        .filter_map(|instance| {
            let id = instance.instance_id()?.parse().ok()?;
            let instance_type = instance
                .instance_type()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default();
            Some((id, instance_type))
        })
        .collect())
}

/// Matches instances not terminated nor on their way there.
pub(crate) fn live_state_filter() -> Filter {
    Filter::builder()
        .name("instance-state-name")
        .set_values(Some(LIVE_STATES.iter().map(|s| (*s).to_owned()).collect()))
        .build()
}

/// Terminates every live instance of the build, of `role` or of any role.
/// Idempotent: an instance already gone counts as terminated. Returns what it
/// terminated.
#[instrument(skip(ctx))]
pub async fn terminate(
    ctx: &Context,
    build_id: &BuildId,
    role: Option<Role>,
) -> Result<Vec<InstanceId>> {
    let ids: Vec<InstanceId> = live_instances(ctx, build_id, role)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    terminate_ids(ctx, &ids).await
}

/// Terminates `ids`; an instance already gone counts as terminated.
pub(crate) async fn terminate_ids(ctx: &Context, ids: &[InstanceId]) -> Result<Vec<InstanceId>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let result = ctx
        .ec2
        .terminate_instances()
        .set_instance_ids(Some(ids.iter().map(ToString::to_string).collect()))
        .send()
        .await;
    match result {
        Ok(_) => {
            info!(instances = ?ids, "terminated");
            Ok(ids.to_vec())
        }
        Err(err) if Error::code_of(&err) == Some("InvalidInstanceID.NotFound") => Ok(ids.to_vec()),
        Err(err) => Err(Error::aws("TerminateInstances", err)),
    }
}

/// The state of one instance, or `None` when EC2 no longer knows it.
pub async fn instance_state(ctx: &Context, instance: &InstanceId) -> Result<Option<String>> {
    let result = ctx
        .ec2
        .describe_instances()
        .instance_ids(instance.as_str())
        .send()
        .await;
    match result {
        Ok(output) => Ok(output
            .reservations()
            .iter()
            .flat_map(|reservation| reservation.instances())
            .find_map(|i| {
                i.state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_owned())
            })),
        Err(err) if Error::code_of(&err) == Some("InvalidInstanceID.NotFound") => Ok(None),
        Err(err) => Err(Error::aws("DescribeInstances", err)),
    }
}

/// The security group for builders: the recipe's, checked to admit nothing,
/// or kiln's own group in the VPC (created with no inbound rules when missing).
async fn security_group(ctx: &Context, recipe: &Recipe) -> Result<String> {
    let spec = &recipe.file.builder;
    if let Some(group) = &spec.security_group_id {
        let output = ctx
            .ec2
            .describe_security_groups()
            .group_ids(group)
            .send()
            .await
            .map_err(|err| Error::aws("DescribeSecurityGroups", err))?;
        let inbound = output
            .security_groups()
            .first()
            .map_or(0, |g| g.ip_permissions().len());
        return refuse_inbound(group, inbound).map(|()| group.clone());
    }
    let vpc = vpc_of(ctx, spec.subnet_id.as_deref()).await?;
    if let Some(group) = find_kiln_group(ctx, &vpc).await? {
        return Ok(group);
    }
    let created = ctx
        .ec2
        .create_security_group()
        .group_name(SECURITY_GROUP_NAME)
        .description("kiln image builders: no inbound traffic; outbound for SSM and packages")
        .vpc_id(&vpc)
        .tag_specifications(tags::specification(
            ResourceType::SecurityGroup,
            &[
                tags::tag(tags::ROLE, Role::BuilderSg.as_ref()),
                tags::tag("Name", SECURITY_GROUP_NAME),
            ],
        ))
        .send()
        .await;
    match created {
        Ok(output) => {
            let group = output.group_id().unwrap_or_default().to_owned();
            info!(%group, %vpc, "created the kiln builder security group");
            Ok(group)
        }
        Err(err) if Error::code_of(&err) == Some("InvalidGroup.Duplicate") => {
            find_kiln_group(ctx, &vpc)
                .await?
                .ok_or_else(|| Error::aws("CreateSecurityGroup", err))
        }
        Err(err) => Err(Error::aws("CreateSecurityGroup", err)),
    }
}

async fn find_kiln_group(ctx: &Context, vpc: &str) -> Result<Option<String>> {
    let output = ctx
        .ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .filters(
            Filter::builder()
                .name("group-name")
                .values(SECURITY_GROUP_NAME)
                .build(),
        )
        .send()
        .await
        .map_err(|err| Error::aws("DescribeSecurityGroups", err))?;
    let Some(group) = output.security_groups().first() else {
        return Ok(None);
    };
    let id = group.group_id().unwrap_or_default().to_owned();
    refuse_inbound(&id, group.ip_permissions().len())?;
    Ok(Some(id))
}

fn refuse_inbound(group: &str, rules: usize) -> Result<()> {
    if rules == 0 {
        Ok(())
    } else {
        Err(Error::InsecureSecurityGroup {
            group: group.to_owned(),
            rules,
        })
    }
}

/// The VPC builders of a recipe with builder subnet `subnet` run in.
pub(crate) async fn vpc_of(ctx: &Context, subnet: Option<&str>) -> Result<String> {
    let vpc = match subnet {
        Some(subnet) => ctx
            .ec2
            .describe_subnets()
            .subnet_ids(subnet)
            .send()
            .await
            .map_err(|err| Error::aws("DescribeSubnets", err))?
            .subnets()
            .first()
            .and_then(|s| s.vpc_id().map(str::to_owned)),
        None => ctx
            .ec2
            .describe_vpcs()
            .filters(Filter::builder().name("is-default").values("true").build())
            .send()
            .await
            .map_err(|err| Error::aws("DescribeVpcs", err))?
            .vpcs()
            .first()
            .and_then(|v| v.vpc_id().map(str::to_owned)),
    };
    vpc.ok_or_else(|| match subnet {
        Some(subnet) => Error::InvalidInput(format!("subnet {subnet} does not exist")),
        None => Error::InvalidInput(
            "the region has no default VPC: set builder.subnet_id in the recipe".into(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_tokens_fit_ec2_and_differ_per_type() {
        let build: BuildId = "b1".parse().expect("id");
        let a = client_token(&build, Role::Builder, "t3.small");
        assert!(a.len() <= 64);
        assert_eq!(a, client_token(&build, Role::Builder, "t3.small"));
        assert_ne!(a, client_token(&build, Role::Builder, "t3a.small"));
        assert_ne!(a, client_token(&build, Role::Test, "t3.small"));
    }
}
