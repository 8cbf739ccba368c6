//! Provision the builder: each recipe step, in order, through SSM Run Command.
//!
//! Nothing here waits. [`start`] sends a step and returns; [`poll`] reports on
//! it once and returns; the state machine's Wait/Choice loop calls again.

use tracing::{info, instrument};

use super::requests::{ProvisionAction, ProvisionRequest};
use super::state::{Builder, Provision, StepStatus, Trigger, required};
use crate::aws::Context;
use crate::aws::run_command::{self, Outcome, Script};
use crate::error::Result;
use crate::ids::BuildId;
use crate::recipe::Recipe;

/// run-ssm-provision: [`start`] or [`poll`], as the request says.
pub async fn handle(ctx: &Context, request: ProvisionRequest) -> Result<Provision> {
    let recipe = ctx.recipe(&request.trigger.recipe)?;
    let (trigger, builder) = (&request.trigger, &request.builder);
    match &request.action {
        ProvisionAction::Start { provision } => {
            let step = provision.as_ref().map_or(0, |p| p.step);
            start(ctx, &recipe, trigger, builder, step).await
        }
        ProvisionAction::Poll { provision } => {
            poll(ctx, &recipe, trigger, builder, provision).await
        }
    }
}

/// The command of step `step`.
fn script<'a>(recipe: &'a Recipe, build_id: &'a BuildId, step: usize) -> Result<Script<'a>> {
    let spec = recipe.step(step)?;
    Ok(Script {
        recipe: &recipe.name,
        build_id,
        label: &spec.name,
        index: step,
        body: recipe.script(&spec.script),
        timeout_seconds: spec.timeout_seconds,
        reboot_after: spec.reboot,
        environment: &spec.environment,
    })
}

/// Sends step `step` of the recipe to the builder, or returns the command a
/// previous attempt of this call already sent.
#[instrument(skip_all, fields(build_id = %trigger.build_id, step))]
pub async fn start(
    ctx: &Context,
    recipe: &Recipe,
    trigger: &Trigger,
    builder: &Builder,
    step: usize,
) -> Result<Provision> {
    let script = script(recipe, &trigger.build_id, step)?;
    let command_id = run_command::send(ctx, &builder.builder_instance_id, &script).await?;
    info!(%command_id, step = %script.label, "step sent");
    Ok(Provision {
        step,
        steps: recipe.file.steps.len(),
        step_name: script.label.to_owned(),
        command_id: Some(command_id),
        status: StepStatus::InProgress,
        polling: trigger.begin(),
    })
}

/// Reports on the step in `provision`: still running, or done and moved on to
/// the next step, or all done. A failed or timed-out script is an error naming
/// the step.
#[instrument(skip_all, fields(build_id = %trigger.build_id, step = provision.step))]
pub async fn poll(
    ctx: &Context,
    recipe: &Recipe,
    trigger: &Trigger,
    builder: &Builder,
    provision: &Provision,
) -> Result<Provision> {
    let script = script(recipe, &trigger.build_id, provision.step)?;
    let command = required(provision.command_id.as_ref(), "provision.command_id")?;
    match run_command::outcome(ctx, &builder.builder_instance_id, command, &script).await? {
        Outcome::Running => Ok(Provision {
            polling: trigger.pace(&provision.polling),
            ..provision.clone()
        }),
        Outcome::Succeeded => Ok(next(recipe, trigger, provision.step)),
    }
}

/// Where provisioning stands once step `done` has succeeded.
fn next(recipe: &Recipe, trigger: &Trigger, done: usize) -> Provision {
    let steps = recipe.file.steps.len();
    let polling = trigger.begin();
    match recipe.file.steps.get(done + 1) {
        Some(spec) => Provision {
            step: done + 1,
            steps,
            step_name: spec.name.clone(),
            command_id: None,
            status: StepStatus::Pending,
            polling,
        },
        None => Provision {
            step: done,
            steps,
            step_name: recipe.file.steps[done].name.clone(),
            command_id: None,
            status: StepStatus::Done,
            polling,
        },
    }
}
