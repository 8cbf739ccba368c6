//! Kiln's integration tests, in one binary: every module links the library and
//! the AWS SDK crates, so one link serves them all (22 binaries of about
//! 100 MB each filled the disk of a CI machine). nextest still runs each test
//! in a process of its own, against a fresh emulator where it needs one.

mod aggregator;
mod asl;
mod audit;
mod build_steps;
mod cli;
mod distribution;
mod emulator;
mod iam;
mod import;
mod infra;
mod layout;
mod mocked;
mod organization;
mod pipeline;
mod promotion;
mod recipe;
mod recipe_inputs;
mod remediation;
mod retention;
mod rollout;
mod security;
mod sweep;
mod trend;
mod triggers;
