//! The launch template a group launches from: read from the group, the
//! image a version launches, and the version kiln adds for an image.

use aws_sdk_autoscaling::types::{
    AutoScalingGroup, DesiredConfiguration, LaunchTemplate, LaunchTemplateSpecification,
    MixedInstancesPolicy,
};
use aws_sdk_ec2::types::{LaunchTemplateVersion, RequestLaunchTemplateData};
use serde::Serialize;

use crate::aws::Context;
use crate::aws::sdk::Answer;
use crate::error::{Error, Result};
use crate::ids::{AmiId, Channel};

/// Start of the launch template version description kiln writes.
const VERSION_DESCRIPTION: &str = "kiln";

/// The launch template a group launches from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Template {
    /// The template's id.
    pub id: Option<String>,
    /// The template's name, when its id is unknown (requests name a template
    /// by one or the other, never both).
    pub name: Option<String>,
    /// The version the group uses (a number: kiln refuses `$Latest` and
    /// `$Default`, which a new version would change at once).
    pub version: String,
    /// The group's mixed instances policy, when it has one.
    #[serde(skip)]
    mixed: Option<MixedInstancesPolicy>,
}

impl Template {
    fn spec(&self, version: &str) -> LaunchTemplateSpecification {
        LaunchTemplateSpecification::builder()
            .set_launch_template_id(self.id.clone())
            .set_launch_template_name(self.name.clone())
            .version(version)
            .build()
    }

    /// The group's configuration with `version` of its template.
    pub(super) fn desired(&self, version: &str) -> DesiredConfiguration {
        let spec = self.spec(version);
        match &self.mixed {
            Some(mixed) => {
                let template = mixed.launch_template();
                DesiredConfiguration::builder()
                    .mixed_instances_policy(
                        MixedInstancesPolicy::builder()
                            .launch_template(
                                LaunchTemplate::builder()
                                    .launch_template_specification(spec)
                                    .set_overrides(template.map(|t| t.overrides().to_vec()))
                                    .build(),
                            )
                            .set_instances_distribution(mixed.instances_distribution().cloned())
                            .build(),
                    )
                    .build()
            }
            None => DesiredConfiguration::builder()
                .launch_template(spec)
                .build(),
        }
    }
}

/// The launch template of `group`, or why kiln cannot roll it.
pub(super) fn template(group: &AutoScalingGroup) -> std::result::Result<Template, String> {
    let mixed = group.mixed_instances_policy();
    let spec = match (group.launch_template(), mixed) {
        (Some(spec), _) => spec,
        (None, Some(mixed)) => {
            let template = mixed.launch_template();
            if template.is_some_and(|t| {
                t.overrides()
                    .iter()
                    .any(|o| o.launch_template_specification().is_some())
            }) {
                return Err(
                    "its mixed instances overrides name launch templates of their own; \
                            kiln rolls groups with one launch template"
                        .into(),
                );
            }
            template
                .and_then(LaunchTemplate::launch_template_specification)
                .ok_or("its mixed instances policy has no launch template")?
        }
        (None, None) => {
            return Err(
                "it uses a launch configuration; kiln rolls groups with a launch template \
                        (launch configurations are deprecated)"
                    .into(),
            );
        }
    };
    let version = spec.version().unwrap_or("$Default");
    if version.parse::<u64>().is_err() {
        return Err(format!(
            "it uses launch template version {version}; pin a version number (a new version would \
             change {version} at once, and a refresh to it cannot roll back)"
        ));
    }
    let id = spec.launch_template_id().map(str::to_owned);
    Ok(Template {
        name: id
            .is_none()
            .then(|| spec.launch_template_name().map(str::to_owned))
            .flatten(),
        id,
        version: version.to_owned(),
        mixed: mixed.cloned(),
    })
}

/// The image a version of `template` launches.
pub async fn template_image(ctx: &Context, template: &Template) -> Result<Option<String>> {
    Ok(describe_version(ctx, template, &template.version)
        .await?
        .and_then(|v| v.launch_template_data)
        .and_then(|d| d.image_id))
}

/// The image version `version` of `template` launches, when kiln made that
/// version (for a release of that image).
pub(super) async fn kiln_image(
    ctx: &Context,
    template: &Template,
    version: &str,
) -> Result<Option<String>> {
    Ok(describe_version(ctx, template, version)
        .await?
        .filter(|v| {
            v.version_description()
                .is_some_and(|d| d.starts_with(&format!("{VERSION_DESCRIPTION} ")))
        })
        .and_then(|v| v.launch_template_data)
        .and_then(|d| d.image_id))
}

/// Version `version` (a number, or `$Latest`) of `template`.
async fn describe_version(
    ctx: &Context,
    template: &Template,
    version: &str,
) -> Result<Option<LaunchTemplateVersion>> {
    let found = ctx
        .ec2()
        .describe_launch_template_versions()
        .set_launch_template_id(template.id.clone())
        .set_launch_template_name(template.name.clone())
        .versions(version)
        .send()
        .await
        .or_aws("DescribeLaunchTemplateVersions")?;
    Ok(found
        .launch_template_versions
        .unwrap_or_default()
        .into_iter()
        .next())
}

/// A version of the group's template that launches `image`: the template's
/// latest when kiln made it for this image (a retried step makes no second
/// one), else a new one copied from the group's version with only the image
/// changed.
pub(super) async fn version_for(
    ctx: &Context,
    template: &Template,
    image: &AmiId,
    channel: &Channel,
) -> Result<String> {
    let description = format!("{VERSION_DESCRIPTION} {channel}: {image}");
    let latest = describe_version(ctx, template, "$Latest").await?;
    let reusable = latest.as_ref().filter(|v| {
        v.version_description() == Some(description.as_str())
            && v.launch_template_data().and_then(|d| d.image_id()) == Some(image.as_str())
    });
    if let Some(number) = reusable.and_then(|v| v.version_number()) {
        return Ok(number.to_string());
    }
    let created = ctx
        .ec2()
        .create_launch_template_version()
        .set_launch_template_id(template.id.clone())
        .set_launch_template_name(template.name.clone())
        .source_version(&template.version)
        .version_description(description)
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id(image.as_str())
                .build(),
        )
        .send()
        .await
        .or_aws("CreateLaunchTemplateVersion")?;
    created
        .launch_template_version()
        .and_then(|v| v.version_number())
        .map(|n| n.to_string())
        .ok_or_else(|| Error::Aws {
            operation: "CreateLaunchTemplateVersion",
            code: "NoVersion".into(),
            message: "the answer named no version".into(),
        })
}
