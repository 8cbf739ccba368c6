//! Kiln's instances as EC2 holds them: the live ones of a build (found by its
//! `kiln:build-id` tag, never by ids in a state document), their state, and
//! their end.

use aws_sdk_ec2::types::{Filter, InstanceStateName};
use tracing::{info, instrument};

use super::Context;
use super::sdk::{self, Answer};
use crate::error::Result;
use crate::ids::{BuildId, InstanceId};
use crate::tags::{self, Role};

/// Instance states that still cost money or hold a volume.
const LIVE_STATES: &[InstanceStateName] = &[
    InstanceStateName::Pending,
    InstanceStateName::Running,
    InstanceStateName::Stopping,
    InstanceStateName::Stopped,
];

/// Matches instances not terminated nor on their way there.
pub(crate) fn live_state_filter() -> Filter {
    Filter::builder()
        .name("instance-state-name")
        .set_values(Some(
            LIVE_STATES.iter().map(|s| s.as_str().to_owned()).collect(),
        ))
        .build()
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
    let pages = ctx
        .ec2()
        .describe_instances()
        .set_filters(Some(filters))
        .into_paginator()
        .send();
    Ok(sdk::all(pages, "DescribeInstances")
        .await?
        .iter()
        .flat_map(|page| page.reservations())
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
    ctx.ec2()
        .terminate_instances()
        .set_instance_ids(Some(ids.iter().map(ToString::to_string).collect()))
        .send()
        .await
        .or_missing("TerminateInstances", |err| {
            sdk::code_in(err, &["InvalidInstanceID.NotFound"])
        })?;
    info!(instances = ?ids, "terminated");
    Ok(ids.to_vec())
}

/// The state of one instance, or `None` when EC2 no longer knows it.
pub async fn state(ctx: &Context, instance: &InstanceId) -> Result<Option<InstanceStateName>> {
    let found = ctx
        .ec2()
        .describe_instances()
        .instance_ids(instance.as_str())
        .send()
        .await
        .or_missing("DescribeInstances", |err| {
            sdk::code_in(err, &["InvalidInstanceID.NotFound"])
        })?;
    Ok(found.and_then(|output| {
        output
            .reservations()
            .iter()
            .flat_map(|reservation| reservation.instances())
            .find_map(|i| i.state().and_then(|s| s.name()).cloned())
    }))
}
