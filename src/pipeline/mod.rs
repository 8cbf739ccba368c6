//! The build pipeline: one golden image from a recipe, step by step, each
//! step a Lambda of the build state machine (`statemachine/pipeline.asl.json`).
//!
//! In order: [`source`] (which official image, and is a build needed at
//! all), [`builder`] (launch the locked-down builder), [`provision`] (the
//! recipe's steps through Run Command), [`image`] (bake it), [`test_run`]
//! (test it on a fresh instance), [`copies`] (copy it to the recipe's
//! distribution regions and share it), and on any failure [`cleanup`] (in
//! every region). Each step takes its typed request ([`requests`]) and adds
//! its result to the state document ([`state`]); nothing waits inside a
//! step. [`build`] names and starts builds.

pub mod build;
pub mod builder;
pub mod cleanup;
pub mod copies;
pub mod image;
pub mod provision;
pub mod requests;
pub mod source;
pub mod state;
pub mod test_run;
