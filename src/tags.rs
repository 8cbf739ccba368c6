//! The tags kiln puts on everything it creates: the contract with sweeps,
//! audits, IAM conditions and deploy tools.

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use crate::ids::{BuildId, RecipeName};

/// `kiln:recipe`: the recipe a resource belongs to.
pub const RECIPE: &str = "kiln:recipe";
/// `kiln:build-id`: the build that created a resource.
pub const BUILD_ID: &str = "kiln:build-id";
/// `kiln:role`: what a resource is for (see [`Role`]).
pub const ROLE: &str = "kiln:role";
/// `kiln:fingerprint`: the fingerprint an image was built from.
pub const FINGERPRINT: &str = "kiln:fingerprint";
/// `kiln:source-ami`: the source image an image was built from.
pub const SOURCE_AMI: &str = "kiln:source-ami";
/// `kiln:stage`: candidate, tested or failed.
pub const STAGE: &str = "kiln:stage";
/// `kiln:staged-at`: when an image reached its `kiln:stage` (RFC 3339). Its
/// test instance launched before: a later launch is someone using it.
pub const STAGED_AT: &str = "kiln:staged-at";
/// `kiln:channel`: the channels an image is on (space separated, sorted);
/// mirrors the channel pointers.
pub const CHANNEL: &str = "kiln:channel";
/// `kiln:previous`: the channels that would return to this image on rollback
/// (space separated, sorted).
pub const PREVIOUS: &str = "kiln:previous";
/// `kiln:image-id`: on a snapshot, the image it backs.
pub const IMAGE_ID: &str = "kiln:image-id";
/// `kiln:wave`: on an Auto Scaling group opted in to a channel's rollouts,
/// the wave it is rolled in (0-99, lower first; default 1; tag the canary 0).
pub const WAVE: &str = "kiln:wave";
/// `kiln:copy-of`: on an image copied to a distribution region (and its
/// snapshots), the image it was copied from.
pub const COPY_OF: &str = "kiln:copy-of";
/// `kiln:copy-of-region`: on a copy, the region of the image it was copied from.
pub const COPY_OF_REGION: &str = "kiln:copy-of-region";
/// `kiln:disabled-at`: on an image retention disabled, when (RFC 3339): it
/// is deregistered once the recipe's grace period has passed since.
pub const DISABLED_AT: &str = "kiln:disabled-at";
/// `kiln:sbom-sha256`: on a tested image, the SHA-256 of its SBOM
/// (`kiln-sbom/<image id>/sbom.cdx.json` in the output bucket).
pub const SBOM_SHA256: &str = "kiln:sbom-sha256";
/// `kiln:findings`: on a tested image, `critical=N,high=M`, the CRITICAL
/// and HIGH vulnerabilities Inspector found in its SBOM when it was tested
/// (`kiln-sbom/<image id>/findings.json` holds them).
pub const FINDINGS: &str = "kiln:findings";
/// Tag key prefixes a recipe may not set itself.
pub const RESERVED_PREFIXES: &[&str] = &["kiln:", "aws:"];

/// What a kiln resource is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::AsRefStr)]
#[strum(serialize_all = "kebab-case")]
pub enum Role {
    /// The instance an image is built on.
    Builder,
    /// The instance an image is tested on.
    Test,
    /// An image, or a snapshot backing one.
    Image,
    /// The security group kiln creates for builders when the recipe names none.
    BuilderSg,
}

/// The stage of an image's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::AsRefStr)]
#[strum(serialize_all = "kebab-case")]
pub enum Stage {
    /// Built, not yet tested.
    Candidate,
    /// Passed its test on a fresh instance.
    Tested,
    /// Failed its test; kept for inspection only.
    Failed,
}

/// A tag.
pub fn tag(key: &str, value: impl Into<String>) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// The three tags every resource of a build carries.
pub fn build_tags(recipe: &RecipeName, build_id: &BuildId, role: Role) -> Vec<Tag> {
    vec![
        tag(RECIPE, recipe.as_str()),
        tag(BUILD_ID, build_id.as_str()),
        tag(ROLE, role.as_ref()),
    ]
}

/// `tags` for a resource of type `resource`, for `TagSpecifications` at creation.
pub fn specification(resource: ResourceType, tags: &[Tag]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(tags.to_vec()))
        .build()
}

/// A `tag:KEY = value` filter.
pub fn filter(key: &str, value: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{key}"))
        .values(value)
        .build()
}

/// The value of `key` among `tags`.
pub fn value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|tag| tag.key() == Some(key))
        .and_then(Tag::value)
}
