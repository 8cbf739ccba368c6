//! What software each image holds: its package list, written by the test
//! step as a CycloneDX SBOM ([`sbom`]) in the output bucket under the
//! image's id, its digest tagged on the image; and what changed between two
//! images ([`diff`]).

pub mod diff;
pub mod sbom;
