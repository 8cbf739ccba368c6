//! Builds as executions of the build state machine: what a build is named,
//! and starting one. A build is named from its recipe and fingerprint, so
//! two requests for the same change start one build: the second finds the
//! first.

use aws_sdk_sfn::types::ExecutionStatus;
use tracing::info;

use super::state::{BuildInput, Source};
use crate::aws::Context;
use crate::aws::executions::{self, Started};
use crate::error::{Error, Result};
use crate::recipe::Recipe;

/// Attempts at one change before the triggers give up on it (a person can
/// still `kiln build --force`). Keeps names within Step Functions' 80 characters.
const MAX_ATTEMPTS: u32 = 9;

/// The build name for building `recipe` from `source`. A forced build gets
/// its own name, since its inputs are the same as the last build's.
pub fn name(recipe: &Recipe, source: &Source, force: bool) -> String {
    let name = format!("{}-{}", recipe.name, source.fingerprint.short());
    if force {
        format!("{name}-forced-{}", source.started_at.as_second())
    } else {
        name
    }
}

/// The build state machine of the context's settings.
pub fn state_machine(ctx: &Context) -> Result<&str> {
    ctx.settings.state_machine_arn.as_deref().ok_or_else(|| {
        Error::InvalidInput(
            "this needs the build state machine: set KILN_STATE_MACHINE_ARN (the stack's \
             StateMachineArn output)"
                .into(),
        )
    })
}

/// Starts build `name` with `input`, or finds the build of that name already
/// started (whether it runs or ended).
pub async fn start(ctx: &Context, name: &str, input: &BuildInput) -> Result<Started> {
    executions::start(ctx.sfn(), state_machine(ctx)?, name, input).await
}

/// Starts the first attempt at `name` that is not over: an attempt still
/// running is the build (nothing new starts); one that ended (a build that
/// needed a build again ended without a tested image) makes way for the
/// next, `<name>-2` ... `-9`.
pub async fn start_retrying(ctx: &Context, name: &str, input: &BuildInput) -> Result<Started> {
    let state_machine = state_machine(ctx)?;
    for attempt in 1..=MAX_ATTEMPTS {
        let name = if attempt == 1 {
            name.to_owned()
        } else {
            format!("{name}-{attempt}")
        };
        let started = executions::start(ctx.sfn(), state_machine, &name, input).await?;
        if !started.existing {
            return Ok(started);
        }
        let status = executions::status(ctx.sfn(), state_machine, &name).await?;
        if status == Some(ExecutionStatus::Running) {
            return Ok(started);
        }
        info!(build = %name, ?status, "that attempt ended without a tested image; trying again");
    }
    Err(Error::InvalidInput(format!(
        "{name}: {MAX_ATTEMPTS} builds of this change ended without a tested image; \
         the triggers stop here (look at them with kiln builds, then kiln build --force)"
    )))
}
