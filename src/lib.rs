//! Kiln: a golden-image factory for AWS.
//!
//! The library holds every rule; the Lambdas in `functions/` and the `kiln`
//! CLI are thin adapters over it. Each build step takes real SDK clients (in a
//! [`aws::Context`]) and typed input, and returns the typed output that flows
//! through the state machine ([`state`]).

pub mod audit;
pub mod aws;
pub mod builder;
pub mod cleanup;
pub mod error;
pub mod execution;
pub mod fingerprint;
pub mod image;
pub mod lambda;
pub mod promotion;
pub mod provision;
pub mod recipe;
pub mod retention;
pub mod rollout;
pub mod run_command;
pub mod source;
pub mod state;
pub mod sweep;
pub mod tags;
pub mod test_run;
mod text;
pub mod trigger;

pub use error::{Error, Result};
