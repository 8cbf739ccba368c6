//! Kiln's side of AWS: the clients and settings a step works with
//! ([`Context`]), one helper per SDK idiom (`sdk`), and what kiln does with
//! EC2 ([`instances`], [`images`], [`network`]), Systems Manager Run Command
//! ([`run_command`]), Step Functions ([`executions`]) and S3 (`objects`).
//! Nothing here knows a build's steps or a channel: those build on it.

mod context;
pub mod executions;
pub mod images;
pub mod instances;
pub mod network;
pub(crate) mod objects;
pub mod roles;
mod roots;
pub mod run_command;
pub(crate) mod sdk;

pub use context::{Clients, Context, DEFAULT_RECIPE_ROOT, Settings};
