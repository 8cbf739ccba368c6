//! A release never ships a regression (`kiln::security::gate`): against the
//! emulator (images, pointers, the SBOMs in the output bucket) with
//! Inspector's `ScanSbom` mocked (aws-smithy-mocks) in the CycloneDX 1.5
//! format AWS documents (Amazon Inspector User Guide, the Scan API's output
//! formats): components renamed `comp-N`, `ratings`, `affects[].ref`, and
//! the `amazon:inspector:sbom_scanner:` properties.

use std::sync::OnceLock;

use aws_sdk_inspectorscan::operation::scan_sbom::{ScanSbomInput, ScanSbomOutput};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_types::Document;
use kiln::aws::{Clients, Context};
use kiln::channels::rollout::{Release, Status};
use kiln::ids::AmiId;
use kiln::security::sbom;
use kiln_testkit::release_step as step;
use kiln_testkit::{Emulator, RECIPE, RecipeCopy, built_image, channel, pointer, recipe};
use serde_json::{Value, json};

/// The bucket the SBOMs are kept in, in these tests.
const BUCKET: &str = "kiln-output";

/// One finding a mocked scan reports: CVE, severity, package, installed
/// version, fixed version.
type Reported = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

/// A `ScanSbom` answer reporting `found`, in AWS's CycloneDX 1.5 shape.
fn report(found: &[Reported]) -> Value {
    let mut components = Vec::new();
    let mut vulnerabilities = Vec::new();
    for (i, (cve, severity, package, installed, fixed)) in found.iter().enumerate() {
        let reference = format!("comp-{}", i + 1);
        components.push(json!({
            "bom-ref": reference, "type": "library", "name": package,
            "purl": format!("pkg:deb/ubuntu/{package}@{installed}?arch=amd64&distro=noble"),
        }));
        let mut properties = vec![json!({
            "name": "amazon:inspector:sbom_scanner:exploit_available", "value": "false",
        })];
        if let Some(fixed) = fixed {
            properties.push(json!({
                "name": format!("amazon:inspector:sbom_scanner:fixed_version:{reference}"),
                "value": fixed,
            }));
        }
        vulnerabilities.push(json!({
            "bom-ref": format!("vuln-{}", i + 1), "id": cve,
            "ratings": [
                {"source": {"name": "NVD"}, "score": 9.1, "severity": severity, "method": "CVSSv31"},
                {"source": {"name": "EPSS"}, "score": 0.2, "severity": "none", "method": "other"},
            ],
            "affects": [{"ref": reference}],
            "properties": properties,
        }));
    }
    json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5",
        "metadata": {"tools": [{"name": "CycloneDX SBOM API", "vendor": "Amazon Inspector"}]},
        "components": components, "vulnerabilities": vulnerabilities,
    })
}

/// The image whose SBOM a `ScanSbom` request carries (kiln names it in the
/// document's `metadata.component`).
fn scanned(input: &ScanSbomInput) -> Option<String> {
    let metadata = input.sbom()?.as_object()?.get("metadata")?.as_object()?;
    let component = metadata.get("component")?.as_object()?;
    component.get("name")?.as_string().map(str::to_owned)
}

/// A context on the emulator, keeping SBOMs in [`BUCKET`], whose `ScanSbom`
/// answers `reports` by image.
fn scanning(emulator: &Emulator, copy: &RecipeCopy, reports: &[(&AmiId, Value)]) -> Context {
    let rules: Vec<Rule> = reports
        .iter()
        .map(|(image, report)| {
            let (image, answer): (String, Document) =
                (image.to_string(), kiln::security::scan::to_document(report));
            mock!(aws_sdk_inspectorscan::Client::scan_sbom)
                .match_requests(move |input| scanned(input).as_deref() == Some(image.as_str()))
                .then_output(move || ScanSbomOutput::builder().sbom(answer.clone()).build())
        })
        .collect();
    let rules: Vec<&Rule> = rules.iter().collect();
    let clients = Clients {
        inspector_scan: OnceLock::from(mock_client!(
            aws_sdk_inspectorscan,
            RuleMode::MatchAny,
            &rules
        )),
        ..Clients::default()
    };
    let mut settings = emulator.context(copy.root.path()).settings;
    settings.output_bucket = Some(BUCKET.into());
    Context::with_clients(&emulator.config, settings, clients)
}

/// Writes `image`'s SBOM (libc6 and curl) to the bucket and tags its digest,
/// as the test step does.
async fn with_sbom(emulator: &Emulator, ctx: &Context, image: &AmiId) {
    let listing = sbom::parse(
        "os\tubuntu\t24.04\tnoble\n\
         pkg\tlibc6\t2.39-0ubuntu8.3\tamd64\tglibc\tii \n\
         pkg\tcurl\t8.5.0-2ubuntu10.5\tamd64\t\tii \n",
    )
    .expect("a listing");
    let (bytes, digest) =
        sbom::bytes_and_digest(&sbom::document(image, &listing)).expect("the SBOM's bytes");
    emulator
        .s3()
        .put_object()
        .bucket(BUCKET)
        .key(sbom::key(image))
        .body(bytes.into())
        .send()
        .await
        .expect("PutObject");
    ctx.ec2()
        .create_tags()
        .resources(image.as_str())
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("kiln:sbom-sha256")
                .value(digest)
                .build(),
        )
        .send()
        .await
        .expect("CreateTags");
}

/// The example recipe releasing straight to prod, with `security` (TOML) as
/// its `[security]`.
fn releasing(security: &str) -> RecipeCopy {
    let copy = RecipeCopy::ubuntu_base();
    copy.edit("recipe.toml", |text| {
        format!("{text}\n[[release]]\nchannel = \"prod\"\n\n{security}")
    });
    copy
}

/// Runs a release of `image` until it ends.
async fn release(ctx: &Context, image: &AmiId) -> Release {
    let mut release = step(ctx, Release::new(recipe(), image.clone(), 1))
        .await
        .expect("a step");
    while release.status == Status::Waiting {
        release = step(ctx, release).await.expect("a step");
    }
    release
}

/// prod on an image with an SBOM, a tested candidate with one, and the
/// emulator holding them.
async fn prod_and_candidate(copy: &RecipeCopy) -> (Emulator, AmiId, AmiId) {
    let emulator = Emulator::start().await;
    emulator.bucket(BUCKET).await;
    let ctx = emulator.context(copy.root.path());
    let old = built_image(&ctx, RECIPE, "b0", "tested").await;
    let new = built_image(&ctx, RECIPE, "b1", "tested").await;
    for image in [&old, &new] {
        with_sbom(&emulator, &ctx, image).await;
    }
    kiln::channels::promotion::promote(
        &ctx,
        &recipe(),
        &channel("prod"),
        &old,
        kiln::channels::pointers::Why {
            reason: "by hand",
            actor: "test",
        },
        false,
    )
    .await
    .expect("promote");
    (emulator, old, new)
}

const LIBC_CRITICAL: Reported = (
    "CVE-2099-0001",
    "critical",
    "libc6",
    "2.39-0ubuntu8.3",
    Some("2.39-0ubuntu8.4"),
);
const CURL_HIGH: Reported = (
    "CVE-2099-0002",
    "high",
    "curl",
    "8.5.0-2ubuntu10.5",
    Some("8.5.0-2ubuntu10.6"),
);

#[tokio::test]
async fn a_candidate_bringing_a_fixable_critical_cve_halts_and_no_pointer_moves() {
    let copy = releasing("");
    let (emulator, old, new) = prod_and_candidate(&copy).await;
    let ctx = scanning(
        &emulator,
        &copy,
        &[(&old, report(&[])), (&new, report(&[LIBC_CRITICAL]))],
    );
    let halted = release(&ctx, &new).await;
    assert_eq!(halted.status, Status::Halted, "{}", halted.message);
    let reason = &halted.stopped.as_ref().expect("stopped").reason;
    assert!(
        reason.starts_with("VulnerabilityRegression:") && reason.contains("CVE-2099-0001"),
        "{reason}"
    );
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(old.as_str()));
    let verdict = &halted.security[&channel("prod")];
    assert_eq!(verdict.regressions, ["CVE-2099-0001 libc6"]);
    assert_eq!(
        serde_json::to_value(verdict).expect("JSON")["current"],
        old.as_str()
    );
}

#[tokio::test]
async fn a_candidate_that_only_fixes_cves_is_promoted_and_its_release_lists_them() {
    let copy = releasing("");
    let (emulator, old, new) = prod_and_candidate(&copy).await;
    let ctx = scanning(
        &emulator,
        &copy,
        &[
            (&old, report(&[LIBC_CRITICAL, CURL_HIGH])),
            (&new, report(&[])),
        ],
    );
    let done = release(&ctx, &new).await;
    assert_eq!(done.status, Status::Done, "{}", done.message);
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(new.as_str()));
    let verdict = &done.security[&channel("prod")];
    assert_eq!(verdict.fixed, ["CVE-2099-0001 libc6", "CVE-2099-0002 curl"]);
    assert!(verdict.regressions.is_empty());
}

#[tokio::test]
async fn an_accepted_cve_goes_through_until_its_acceptance_expires() {
    let accepting = |expires: &str| {
        releasing(&format!(
            "[[security.accept]]\ncve = \"CVE-2099-0001\"\nreason = \"libc6's fix breaks our JVM\"\n\
             expires = \"{expires}\"\n"
        ))
    };
    let expired = accepting("2026-01-01");
    let (emulator, old, new) = prod_and_candidate(&expired).await;
    let reports = [(&old, report(&[])), (&new, report(&[LIBC_CRITICAL]))];
    let ctx = scanning(&emulator, &expired, &reports);
    let halted = release(&ctx, &new).await;
    assert_eq!(halted.status, Status::Halted, "{}", halted.message);
    assert!(
        halted.message.contains("CVE-2099-0001"),
        "{}",
        halted.message
    );
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(old.as_str()));

    let holding = accepting("2099-01-01");
    let ctx = scanning(&emulator, &holding, &reports);
    let done = release(&ctx, &new).await;
    assert_eq!(done.status, Status::Done, "{}", done.message);
    assert_eq!(
        done.security[&channel("prod")].accepted,
        ["CVE-2099-0001 libc6"]
    );
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(new.as_str()));
}

#[tokio::test]
async fn a_channel_on_an_image_without_an_sbom_is_replaced_by_the_fixed_rule() {
    let copy = releasing("");
    let (emulator, old, new) = prod_and_candidate(&copy).await;
    emulator
        .s3()
        .delete_object()
        .bucket(BUCKET)
        .key(sbom::key(&old))
        .send()
        .await
        .expect("DeleteObject");
    // HIGH is not held against it without an image to compare with;
    // a fixable CRITICAL is.
    let high = scanning(&emulator, &copy, &[(&new, report(&[CURL_HIGH]))]);
    let critical = scanning(&emulator, &copy, &[(&new, report(&[LIBC_CRITICAL]))]);
    let halted = release(&critical, &new).await;
    assert_eq!(halted.status, Status::Halted, "{}", halted.message);
    let rule = serde_json::to_value(&halted.security[&channel("prod")]).expect("JSON");
    assert_eq!(rule["rule"], "fixed");
    assert!(
        rule["why"]
            .as_str()
            .is_some_and(|why| why.contains("is not at s3://")),
        "{rule}"
    );
    let done = release(&high, &new).await;
    assert_eq!(done.status, Status::Done, "{}", done.message);
    assert_eq!(pointer(&high, "prod").await.as_deref(), Some(new.as_str()));
}
