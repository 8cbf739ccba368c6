//! Where builders run: the VPC of a recipe's subnet (or the default VPC),
//! and a security group that admits nothing: the recipe's, checked, or
//! kiln's own `kiln-builder` group of the VPC, made with no inbound rules.

use aws_sdk_ec2::types::{Filter, ResourceType};
use tracing::info;

use super::Context;
use super::sdk::{self, Answer};
use crate::error::{Error, Result};
use crate::recipe::BuilderSpec;
use crate::tags::{self, Role};

/// The security group kiln creates per VPC when a recipe names none.
pub const SECURITY_GROUP_NAME: &str = "kiln-builder";

/// The security group for builders: the recipe's, checked to admit nothing,
/// or kiln's own group in the VPC (created with no inbound rules when missing).
pub(crate) async fn builder_group(ctx: &Context, spec: &BuilderSpec) -> Result<String> {
    if let Some(group) = &spec.security_group_id {
        let output = ctx
            .ec2()
            .describe_security_groups()
            .group_ids(group)
            .send()
            .await
            .or_aws("DescribeSecurityGroups")?;
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
        .ec2()
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
        .await
        // Another build made it a moment ago: take that one.
        .or_missing("CreateSecurityGroup", |err| {
            sdk::code_in(err, &["InvalidGroup.Duplicate"])
        })?;
    match created {
        Some(output) => {
            let group = output.group_id().unwrap_or_default().to_owned();
            info!(%group, %vpc, "created the kiln builder security group");
            Ok(group)
        }
        None => find_kiln_group(ctx, &vpc).await?.ok_or_else(|| Error::Aws {
            operation: "CreateSecurityGroup",
            code: "InvalidGroup.Duplicate".into(),
            message: format!("{SECURITY_GROUP_NAME} exists in {vpc} but cannot be found"),
        }),
    }
}

async fn find_kiln_group(ctx: &Context, vpc: &str) -> Result<Option<String>> {
    let output = ctx
        .ec2()
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
        .or_aws("DescribeSecurityGroups")?;
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

/// The VPC builders with builder subnet `subnet` run in.
pub(crate) async fn vpc_of(ctx: &Context, subnet: Option<&str>) -> Result<String> {
    let vpc = match subnet {
        Some(subnet) => ctx
            .ec2()
            .describe_subnets()
            .subnet_ids(subnet)
            .send()
            .await
            .or_aws("DescribeSubnets")?
            .subnets()
            .first()
            .and_then(|s| s.vpc_id().map(str::to_owned)),
        None => ctx
            .ec2()
            .describe_vpcs()
            .filters(Filter::builder().name("is-default").values("true").build())
            .send()
            .await
            .or_aws("DescribeVpcs")?
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

/// Kiln's builder security groups outside the `busy` VPCs that no network
/// interface uses and no CloudFormation stack manages.
pub(crate) async fn unused_builder_groups(
    ctx: &Context,
    busy: &std::collections::BTreeSet<String>,
) -> Result<Vec<String>> {
    let groups = ctx
        .ec2()
        .describe_security_groups()
        .filters(tags::filter(tags::ROLE, Role::BuilderSg.as_ref()))
        .send()
        .await
        .or_aws("DescribeSecurityGroups")?;
    let mut unused = Vec::new();
    for group in groups.security_groups() {
        let Some(id) = group.group_id() else { continue };
        // A group a stack manages (infra/template.yaml's) is the stack's to delete.
        let managed = group.tags().iter().any(|t| {
            t.key()
                .is_some_and(|k| k.starts_with("aws:cloudformation:"))
        });
        if managed || group.vpc_id().is_some_and(|vpc| busy.contains(vpc)) {
            continue;
        }
        let used = ctx
            .ec2()
            .describe_network_interfaces()
            .filters(Filter::builder().name("group-id").values(id).build())
            .send()
            .await
            .or_aws("DescribeNetworkInterfaces")?;
        if used.network_interfaces().is_empty() {
            unused.push(id.to_owned());
        }
    }
    Ok(unused)
}

/// Deletes security group `group`; one gone already, or taken by a build
/// that just started, is left as it is.
pub(crate) async fn delete_group(ctx: &Context, group: &str) -> Result<()> {
    ctx.ec2()
        .delete_security_group()
        .group_id(group)
        .send()
        .await
        .or_missing("DeleteSecurityGroup", |err| {
            sdk::code_in(err, &["InvalidGroup.NotFound", "DependencyViolation"])
        })
        .map(drop)
}
