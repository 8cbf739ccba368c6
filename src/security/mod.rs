//! What software each image holds and what is known against it: its
//! package list, written by the test step as a CycloneDX SBOM ([`sbom`]) in
//! the output bucket under the image's id, its digest tagged on the image;
//! the vulnerabilities Amazon Inspector finds in it ([`scan`]), stored
//! beside it; what changed between two images ([`diff`]); and the check
//! that a release brings no new fixable vulnerability ([`gate`]); and the
//! watch that proves a security release's CVEs left the fleet
//! ([`remediation`]).

pub mod diff;
pub mod gate;
pub mod remediation;
pub mod sbom;
pub mod scan;

use crate::aws::{Context, objects};
use crate::error::Result;
use crate::ids::AmiId;

/// Deletes `image`'s SBOM and findings, once the image is deregistered,
/// when kiln has an output bucket: they last as long as their image, no
/// longer. None there is no error.
pub async fn forget(ctx: &Context, image: &AmiId) -> Result<()> {
    let Some(bucket) = ctx.settings.output_bucket.as_deref() else {
        return Ok(());
    };
    let s3 = aws_sdk_s3::Client::new(&ctx.config);
    objects::delete(&s3, bucket, &sbom::key(image)).await?;
    objects::delete(&s3, bucket, &scan::key(image)).await
}
