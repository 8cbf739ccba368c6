//! Test the new image on a fresh instance before anyone can use it: launch a
//! test instance from the image (the builder's locked-down settings, tagged
//! `kiln:role=test`), list its installed packages as the image's SBOM (when
//! kiln has an output bucket: the listing outgrows what Run Command answers
//! inline) and have Inspector scan it, run the recipe's test script through Run Command, then terminate
//! the instance and tag the image `kiln:stage=tested`.
//!
//! Like every step, nothing waits: [`launch`], [`start`] and [`poll`] each
//! return at once with where the test stands.

use std::collections::BTreeMap;

use tracing::{info, instrument};

use super::builder::{self, Launch};
use super::requests::{TestAction, TestRequest};
use super::state::{Image, Sbom, Source, TestRun, TestStatus, Trigger, required};
use crate::aws::run_command::{self, Outcome, Script};
use crate::aws::{Context, images, instances, objects};
use crate::error::{Error, Result};
use crate::ids::{BuildId, CommandId};
use crate::recipe::Recipe;
use crate::security::{sbom, scan};
use crate::tags::{self, Role, Stage};

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
        packages_command_id: None,
        sbom: None,
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

/// The package listing, run before the test script.
fn listing<'a>(recipe: &'a Recipe, build_id: &'a BuildId) -> Script<'a> {
    Script {
        label: sbom::LABEL,
        index: recipe.file.steps.len() + 1,
        body: sbom::LISTING.as_bytes(),
        timeout_seconds: LISTING_TIMEOUT_SECONDS,
        ..script(recipe, build_id)
    }
}

/// How long the package listing may take (dpkg-query reads one file).
const LISTING_TIMEOUT_SECONDS: u32 = 300;

/// The test runs with kiln's variables only.
static NO_ENVIRONMENT: BTreeMap<String, String> = BTreeMap::new();

/// Sends the package listing to the test instance when kiln has an output
/// bucket, else the test script (each once, however often retried).
#[instrument(skip_all, fields(build_id = %trigger.build_id, instance = %test.test_instance_id))]
pub async fn start(
    ctx: &Context,
    recipe: &Recipe,
    trigger: &Trigger,
    test: &TestRun,
) -> Result<TestRun> {
    if ctx.settings.output_bucket.is_none() {
        info!("no output bucket (KILN_OUTPUT_BUCKET): the image gets no SBOM");
        return send_test(ctx, recipe, trigger, test).await;
    }
    let command_id = run_command::send(
        ctx,
        &test.test_instance_id,
        &listing(recipe, &trigger.build_id),
    )
    .await?;
    info!(%command_id, "package listing sent");
    Ok(TestRun {
        packages_command_id: Some(command_id),
        status: TestStatus::InProgress,
        polling: trigger.begin(),
        ..test.clone()
    })
}

async fn send_test(
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

/// Reads the finished listing, writes the image's SBOM to the output
/// bucket (`kiln-sbom/<image id>/sbom.cdx.json`) and tags the image with
/// its digest, then has Inspector scan it and stores the findings beside it
/// ([`scan::record`]). Writing the same packages again writes the same
/// bytes, so a retried poll changes nothing but the time of the scan.
async fn write_sbom(
    ctx: &Context,
    recipe: &Recipe,
    trigger: &Trigger,
    image: &Image,
    test: &TestRun,
    command: &CommandId,
) -> Result<Sbom> {
    let bucket = ctx
        .settings
        .output_bucket
        .as_deref()
        .ok_or_else(|| Error::InvalidInput("the SBOM needs KILN_OUTPUT_BUCKET".into()))?;
    let script = listing(recipe, &trigger.build_id);
    let printed = run_command::stdout(ctx, bucket, &test.test_instance_id, command, &script)
        .await?
        .ok_or_else(|| {
            Error::PackageListing(format!(
                "command {command} uploaded no output to s3://{bucket}"
            ))
        })?;
    let packages = sbom::parse(&printed)?;
    let document = sbom::document(&image.image_id, &packages);
    let (bytes, sha256) = sbom::bytes_and_digest(&document)?;
    let key = sbom::key(&image.image_id);
    let s3 = aws_sdk_s3::Client::new(&ctx.config);
    objects::write(&s3, bucket, &key, sbom::CONTENT_TYPE, bytes).await?;
    images::set_tag(
        ctx,
        image.image_id.as_str(),
        tags::SBOM_SHA256,
        Some(&sha256),
    )
    .await?;
    info!(packages = packages.packages.len(), %sha256, "SBOM written");
    let (findings, location) =
        scan::record(ctx, bucket, &image.image_id, &document, &sha256).await?;
    let counts = findings.counts();
    info!(
        findings = findings.findings.len(),
        critical = counts.critical,
        high = counts.high,
        "SBOM scanned"
    );
    Ok(Sbom {
        location: format!("s3://{bucket}/{key}"),
        sha256,
        packages: packages.packages.len(),
        findings: location,
        critical: counts.critical,
        high: counts.high,
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
    if test.command_id.is_none() {
        let listed = required(
            test.packages_command_id.as_ref(),
            "test.packages_command_id",
        )?;
        let instance = &test.test_instance_id;
        return match run_command::outcome(ctx, instance, listed, &listing(recipe, build_id)).await?
        {
            Outcome::Running => Ok(TestRun {
                polling: trigger.pace(&test.polling),
                ..test.clone()
            }),
            Outcome::Succeeded => {
                let sbom = write_sbom(ctx, recipe, trigger, image, test, listed).await?;
                let listed = TestRun {
                    sbom: Some(sbom),
                    ..test.clone()
                };
                send_test(ctx, recipe, trigger, &listed).await
            }
        };
    }
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
