//! What software each image holds: its package list, written by the test
//! step as a CycloneDX SBOM ([`sbom`]) in the output bucket under the
//! image's id, its digest tagged on the image.

pub mod sbom;
