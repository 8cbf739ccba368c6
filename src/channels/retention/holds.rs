//! What holds on to an image besides the pointers: instances (in any state
//! but terminated), launch template versions (naming it, or pinning a
//! pointer version that names it), and the fleet audit's latest report (an
//! instance seen running it in any audited account or region).

use std::collections::BTreeMap;

use aws_sdk_ec2::types::InstanceStateName;
use jiff::Timestamp;
use serde::Serialize;

use crate::aws::sdk;
use crate::aws::{Context, images};
use crate::channels::pointers::{POINTER_ROOT, RESOLVE_SSM};
use crate::error::Result;
use crate::fleet::publish;

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

/// Image id -> the instances (not terminated) launched from it.
pub(super) async fn instances_using(
    ctx: &Context,
    ids: &[String],
) -> Result<BTreeMap<String, Vec<String>>> {
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
pub(super) async fn templates_naming(ctx: &Context) -> Result<BTreeMap<String, Vec<String>>> {
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

/// Where the latest fleet audit saw an image running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sighting {
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// Instances on the image there.
    pub instances: u64,
}

/// What the latest fleet audit saw running, by image id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Audited {
    /// The report read (`s3://bucket/key`); absent: no report was found.
    pub report: Option<String>,
    /// When the audit ran.
    pub generated_at: Option<Timestamp>,
    /// Image id -> where it ran.
    #[serde(skip)]
    pub seen: BTreeMap<String, Vec<Sighting>>,
}

/// What the fleet audit's latest report saw running
/// ([`publish::latest`]; nothing when there is none).
pub(super) async fn audited(ctx: &Context) -> Result<Audited> {
    let Some((location, report)) = publish::latest(ctx).await? else {
        return Ok(Audited::default());
    };
    let mut seen: BTreeMap<String, Vec<Sighting>> = BTreeMap::new();
    for row in report.images.iter().filter(|row| row.instances > 0) {
        seen.entry(row.image_id.clone())
            .or_default()
            .push(Sighting {
                account: row.account.clone(),
                region: row.region.clone(),
                instances: row.instances,
            });
    }
    Ok(Audited {
        report: Some(location),
        generated_at: Some(report.generated_at),
        seen,
    })
}
