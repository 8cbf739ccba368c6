//! Kiln: a golden-image factory for AWS.
//!
//! The library holds every rule; the Lambdas in `functions/` and the `kiln`
//! CLI in `cli/` are thin adapters over it. Dependencies run one way, from
//! the bottom of this list up:
//!
//! - [`ids`], [`error`], [`text`], [`tags`]: validated identifiers, every
//!   failure with its stable name, text helpers, the tags kiln writes;
//! - [`recipe`]: what to build, read and checked;
//! - [`import`]: a Packer template and its scripts as a recipe;
//! - [`aws`]: the clients and settings ([`aws::Context`]) and one helper per
//!   SDK idiom, for EC2, Run Command and Step Functions;
//! - [`security`]: what software each image holds (its SBOM) and what
//!   changed between two;
//! - [`channels`]: the pointers production launches from, promotion,
//!   retention and hands-off releases;
//! - [`pipeline`]: the build steps and the state document that flows
//!   through the build state machine;
//! - [`fleet`]: the audit of what the fleet runs;
//! - [`ops`]: triggers and the sweep;
//! - [`lambda`]: the edge every Lambda shares.

pub mod aws;
pub mod channels;
pub mod error;
pub mod fleet;
pub mod ids;
pub mod import;
pub mod lambda;
pub mod ops;
pub mod pipeline;
pub mod recipe;
pub mod security;
pub mod tags;
pub mod text;

pub use error::{Error, Result};
