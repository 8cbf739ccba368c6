//! Test the new image on a fresh instance before anyone can use it: launch a
//! test instance from the image (the builder's locked-down settings, tagged
//! `kiln:role=test`), run the recipe's test script through Run Command, then
//! terminate the instance and tag the image `kiln:stage=tested`.
//!
//! Like every step, nothing waits: [`launch`], [`start`] and [`poll`] each
//! return at once with where the test stands.

use std::collections::BTreeMap;

use tracing::{info, instrument};

use super::builder::{self, Launch};
use super::requests::{TestAction, TestRequest};
use super::state::{Image, Source, TestRun, TestStatus, Trigger, required};
use crate::aws::run_command::{self, Outcome, Script};
use crate::aws::{Context, images, instances};
use crate::error::Result;
use crate::ids::BuildId;
use crate::recipe::Recipe;
use crate::tags::{Role, Stage};

/// test-image: [`launch`], [`start`] or [`poll`], as the request says.
pub async fn handle(ctx: &Context, request: TestRequest) -> Result<TestRun> {
    let recipe = ctx.recipe(&request.trigger.recipe)?;
    let trigger = &request.trigger;
    match &request.action {
        TestAction::Launch => launch(ctx, &recipe, trigger, &request.source, &request.image).await,
        TestAction::Start { test } => start(ctx, &recipe, trigger, test).await,
        TestAction::Poll { test } => poll(ctx, &recipe, trigger, &request.image, test).await,
    }
}

/// The label the test script runs under (in errors, the console, `KILN_STEP`).
pub const LABEL: &str = "test";

/// Launches the test instance from the available image, or returns the one
/// this build already launched.
#[instrument(skip_all, fields(build_id = %trigger.build_id, image = %image.image_id))]
pub async fn launch(
    ctx: &Context,
    recipe: &Recipe,
    trigger: &Trigger,
    source: &Source,
    image: &Image,
) -> Result<TestRun> {
    image.require_available("test")?;
    let launch = Launch {
        recipe,
        build_id: &trigger.build_id,
        role: Role::Test,
        image: &image.image_id,
        root_device_name: &source.root_device_name,
    };
    let (test_instance_id, instance_type) = builder::launch_instance(ctx, &launch).await?;
    Ok(TestRun {
        test_instance_id,
        instance_type,
        command_id: None,
        status: TestStatus::Launched,
        polling: trigger.begin(),
        duration_seconds: None,
    })
}

fn script<'a>(recipe: &'a Recipe, build_id: &'a BuildId) -> Script<'a> {
    let test = &recipe.file.test;
    Script {
        recipe: &recipe.name,
        build_id,
        label: LABEL,
        index: recipe.file.steps.len(),
        body: recipe.script(&test.script),
        timeout_seconds: test.timeout_seconds,
        reboot_after: false,
        environment: &NO_ENVIRONMENT,
    }
}

/// The test runs with kiln's variables only.
static NO_ENVIRONMENT: BTreeMap<String, String> = BTreeMap::new();

/// Sends the test script to the test instance (once, however often retried).
#[instrument(skip_all, fields(build_id = %trigger.build_id, instance = %test.test_instance_id))]
pub async fn start(
    ctx: &Context,
    recipe: &Recipe,
    trigger: &Trigger,
    test: &TestRun,
) -> Result<TestRun> {
    let command_id = run_command::send(
        ctx,
        &test.test_instance_id,
        &script(recipe, &trigger.build_id),
    )
    .await?;
    info!(%command_id, "test sent");
    Ok(TestRun {
        command_id: Some(command_id),
        status: TestStatus::InProgress,
        polling: trigger.begin(),
        ..test.clone()
    })
}

/// Reports on the test: still running, or passed (the test instance is
/// terminated and the image tagged `tested`). A failing test is
/// `CommandFailed` naming `test`; the image then stays untested.
#[instrument(skip_all, fields(build_id = %trigger.build_id, image = %image.image_id))]
pub async fn poll(
    ctx: &Context,
    recipe: &Recipe,
    trigger: &Trigger,
    image: &Image,
    test: &TestRun,
) -> Result<TestRun> {
    let build_id = &trigger.build_id;
    let command = required(test.command_id.as_ref(), "test.command_id")?;
    match run_command::outcome(
        ctx,
        &test.test_instance_id,
        command,
        &script(recipe, build_id),
    )
    .await?
    {
        Outcome::Running => Ok(TestRun {
            polling: trigger.pace(&test.polling),
            ..test.clone()
        }),
        Outcome::Succeeded => {
            instances::terminate(ctx, build_id, Some(Role::Test)).await?;
            images::set_stage(ctx, &image.image_id, Stage::Tested).await?;
            info!("image passed its test");
            Ok(TestRun {
                status: TestStatus::Passed,
                duration_seconds: trigger.elapsed_seconds(),
                ..test.clone()
            })
        }
    }
}
