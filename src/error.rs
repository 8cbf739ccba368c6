//! Every way a kiln step can fail, with a stable name per failure.
//!
//! The variant name is the contract with the state machine: a Lambda returns
//! it as `errorType` and the ASL `Retry`/`Catch` blocks match on it. Renaming a
//! variant is a breaking change to `statemachine/`.

use std::fmt;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

/// One thing wrong with a recipe, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The field, as a dotted path (`builder.root_volume.size_gib`), or the file.
    pub field: String,
    /// What is wrong, in words a person can act on.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The result type of every fallible kiln operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A kiln failure. [`Error::name`] is its stable `errorType`.
#[derive(Debug, thiserror::Error, strum::IntoStaticStr, strum::EnumIter)]
#[non_exhaustive]
pub enum Error {
    /// The recipe failed validation; every problem found is listed.
    #[error("recipe {recipe} is invalid:\n{}", ProblemList(.problems))]
    InvalidRecipe {
        /// The recipe directory as given.
        recipe: String,
        /// Each problem with the field it concerns.
        problems: Vec<Problem>,
    },

    /// An event or argument could not be understood.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// The source parameter does not exist or does not name an existing image.
    #[error("source not found: {0}")]
    SourceNotFound(String),

    /// The source image is owned by an account the recipe does not trust.
    #[error("source image {image} is owned by {owner}, which is not an allowed owner ({allowed})")]
    UntrustedSource {
        /// The image id.
        image: String,
        /// Its owner account.
        owner: String,
        /// The owners the recipe allows, comma separated.
        allowed: String,
    },

    /// The source image exists but cannot be launched.
    #[error("source image {image} is {state}, not available")]
    SourceNotAvailable {
        /// The image id.
        image: String,
        /// Its state as EC2 reports it.
        state: String,
    },

    /// The source image does not match what the recipe requires.
    #[error("source image {image} is unsuitable: {reason}")]
    SourceMismatch {
        /// The image id.
        image: String,
        /// What differs.
        reason: String,
    },

    /// A given security group admits inbound traffic; builders accept none.
    #[error(
        "security group {group} has {rules} inbound rule(s); kiln builders must not accept inbound traffic"
    )]
    InsecureSecurityGroup {
        /// The group id.
        group: String,
        /// How many inbound rules it has.
        rules: usize,
    },

    /// Every instance type of the recipe was refused for lack of capacity.
    #[error("no capacity for any builder instance type (tried {tried})")]
    NoCapacity {
        /// The types tried, in order, with the error code each got.
        tried: String,
    },

    /// The builder's SSM agent has not registered yet; retry later.
    #[error("builder {instance} is not registered with SSM yet")]
    BuilderNotReady {
        /// The builder instance id.
        instance: String,
    },

    /// The builder is gone (terminated or shutting down) before the build finished.
    #[error("builder {instance} is {state}")]
    BuilderGone {
        /// The builder instance id.
        instance: String,
        /// Its state.
        state: String,
    },

    /// A provisioning script ran and failed.
    #[error(
        "step {step} failed with exit code {exit_code} ({status}); stderr ends with:\n{stderr_tail}"
    )]
    CommandFailed {
        /// The step name from the recipe.
        step: String,
        /// The SSM invocation status (Failed, Cancelled, ...).
        status: String,
        /// The script's exit code (-1 when SSM reports none).
        exit_code: i32,
        /// The last lines of the script's standard error.
        stderr_tail: String,
    },

    /// A provisioning script ran longer than its timeout, or was never delivered.
    #[error("step {step} timed out ({detail}; the step allows {timeout_seconds} s)")]
    CommandTimedOut {
        /// The step name from the recipe.
        step: String,
        /// The timeout it had.
        timeout_seconds: u32,
        /// SSM's detail: `ExecutionTimedOut`, or `DeliveryTimedOut` when the
        /// instance's agent never took the command.
        detail: String,
    },

    /// The test instance's package listing (its SBOM's source) is unreadable.
    #[error("the package listing of the test instance is not usable: {0}")]
    PackageListing(String),

    /// `kiln diff` cannot compare the images asked for (unknown, of two
    /// recipes, without an SBOM, or an SBOM that is not the one tagged).
    #[error("kiln diff refused: {0}")]
    DiffRefused(String),

    /// Inspector's vulnerability report, or the findings kiln stored from
    /// it, cannot be read.
    #[error("the vulnerability report is not usable: {0}")]
    ScanUnreadable(String),

    /// The new image failed to become available.
    #[error("image {image} failed: {reason}")]
    ImageFailed {
        /// The image id.
        image: String,
        /// The state reason EC2 gives.
        reason: String,
    },

    /// The image was still pending when the recipe's image timeout ran out.
    #[error("image {image} is still pending after {timeout_seconds} s (image.timeout_seconds)")]
    ImageTimedOut {
        /// The image id.
        image: String,
        /// The timeout the recipe gives.
        timeout_seconds: u32,
    },

    /// A copy of the image in a distribution region failed (EC2's reason),
    /// or is gone.
    #[error("the copy {copy} of image {image} in {region} failed: {reason}")]
    CopyFailed {
        /// The image copied.
        image: String,
        /// The copy.
        copy: String,
        /// The region of the copy.
        region: String,
        /// Why.
        reason: String,
    },

    /// A copy was still pending when the recipe's copy timeout ran out.
    #[error(
        "the copy {copy} of image {image} in {region} is still pending after {timeout_seconds} s \
         (distribution.copy_timeout_seconds)"
    )]
    CopyTimedOut {
        /// The image copied.
        image: String,
        /// The copy.
        copy: String,
        /// The region of the copy.
        region: String,
        /// The timeout the recipe gives.
        timeout_seconds: u32,
    },

    /// The image lacks ENA support the recipe requires.
    #[error("image {image} does not have ENA support, which the recipe requires")]
    EnaMissing {
        /// The image id.
        image: String,
    },

    /// A pointer move was refused; nothing changed.
    #[error("{channel}: refusing {image}: {reason}; nothing changed")]
    PromotionRefused {
        /// The image that was to be promoted or returned to.
        image: String,
        /// The channel.
        channel: String,
        /// Why.
        reason: String,
    },

    /// A rollback has nowhere to go; nothing changed.
    #[error("{channel}: nothing to roll back to: {reason}; nothing changed")]
    NothingToRollBack {
        /// The channel.
        channel: String,
        /// Why.
        reason: String,
    },

    /// The pointers kept moving while kiln brought the image tags in line;
    /// the tags are repaired by the next operation or `kiln doctor`.
    #[error(
        "recipe {recipe}: the channel pointers kept moving while their tags were synced; run kiln doctor {recipe}"
    )]
    PointersMoving {
        /// The recipe.
        recipe: String,
    },

    /// A move named the pointer version its caller saw, and the pointer has
    /// moved since (by another move than this one); nothing changed.
    #[error(
        "{parameter} is at version {found}, not {expected} as the request expected: another move \
         came first; nothing changed (read the channel again and decide)"
    )]
    PointerMoved {
        /// The pointer parameter.
        parameter: String,
        /// The version the request expected.
        expected: i64,
        /// The version it found.
        found: i64,
    },

    /// SSM is still validating the last value written to a pointer (it
    /// refuses another write until then); retry in a few seconds.
    #[error(
        "SSM is still validating the last value written to {parameter}; retry in a few seconds"
    )]
    PointerPending {
        /// The pointer parameter.
        parameter: String,
    },

    /// SSM did not accept a pointer write (an `aws:ec2:image` value is
    /// validated after PutParameter answers): the channel names what it
    /// named before, and the image tags are as they were.
    #[error(
        "{parameter} version {version} ({image}) was not accepted by SSM: {reason}; the channel \
         still names what it named before, and no tag changed"
    )]
    PointerNotValidated {
        /// The pointer parameter.
        parameter: String,
        /// The image written.
        image: String,
        /// The version PutParameter gave it.
        version: i64,
        /// Why kiln concluded it was not accepted.
        reason: String,
    },

    /// An Auto Scaling group opted in to a rollout cannot be rolled as it is;
    /// the release stops before touching it.
    #[error("group {group} cannot be rolled: {reason}")]
    RolloutBlocked {
        /// The group's name.
        group: String,
        /// Why.
        reason: String,
    },

    /// A release asked for would lose at once to a release of the same
    /// recipe running already (see `kiln::channels::rollout::rivals`);
    /// nothing was started.
    #[error(
        "a release of {image} would be superseded at once by the running release of {winner} \
         ({why}; execution {execution}): to release {image} over it, start it with --force and \
         a --reason"
    )]
    ReleaseSuperseded {
        /// The image asked for.
        image: String,
        /// The image of the release that wins.
        winner: String,
        /// Why that one wins.
        why: String,
        /// Its execution.
        execution: String,
    },

    /// A build (state machine execution) did not succeed.
    #[error("build {build} {status}: {error}")]
    BuildFailed {
        /// The build's name.
        build: String,
        /// How it ended.
        status: String,
        /// The error it ended with.
        error: String,
    },

    /// Part of the fleet could not be audited (a region, an account, a
    /// call); the report says which, and reports the rest.
    #[error(
        "the audit is incomplete: {parts} part(s) of the fleet could not be audited (see the report's problems)"
    )]
    AuditIncomplete {
        /// How many parts failed.
        parts: usize,
    },

    /// The fleet audit's latest report exists but cannot be read; retention
    /// stops rather than retire an image the audit may have seen in use.
    #[error("the audit report {report} cannot be read: {reason}; retention changed nothing")]
    AuditReportUnreadable {
        /// Where the report is (`s3://bucket/key`).
        report: String,
        /// Why it cannot be read.
        reason: String,
    },

    /// The Allowed AMIs criteria exceed AWS's limits; nothing was written.
    #[error("the guard's criteria exceed AWS's limits, nothing written:\n{}", .problems.join("\n"))]
    ImageCriteriaInvalid {
        /// Each limit exceeded, in words.
        problems: Vec<String>,
    },

    /// `kiln guard apply --mode enabled` while the fleet audit sees running
    /// instances the criteria would block; nothing was written.
    #[error(
        "enabling the guard would block {instances} running instance(s) (accounts {accounts}); \
         nothing written: use audit-mode, allow their images, or --force with a --reason"
    )]
    GuardRefused {
        /// Instances that would be blocked.
        instances: u64,
        /// Their accounts.
        accounts: String,
    },

    /// `kiln restore` was refused; nothing changed.
    #[error("cannot restore {image}: {reason}; nothing changed")]
    RestoreRefused {
        /// The image.
        image: String,
        /// Why.
        reason: String,
    },

    /// `kiln import packer`: the template cannot be read as a Packer
    /// template (neither JSON nor HCL2, or not Packer's); nothing written.
    #[error("cannot import {template}: {reason}; nothing written")]
    TemplateUnreadable {
        /// The template as given.
        template: String,
        /// Why.
        reason: String,
    },

    /// `kiln import packer`: the template has no `amazon-ebs` source to
    /// import (or none of the name `--source` gave); nothing written.
    #[error("cannot import {template}: {reason}; nothing written")]
    NoAmazonEbsSource {
        /// The template as given.
        template: String,
        /// What the template has instead.
        reason: String,
    },

    /// `kiln import packer`: a provisioner names a script that does not
    /// exist where Packer would look for it; nothing written.
    #[error("cannot import {field}: {reason}; nothing written")]
    ScriptNotFound {
        /// The provisioner's field (`provisioners[0].script`).
        field: String,
        /// The path and why it cannot be read.
        reason: String,
    },

    /// `kiln import packer` refused to write the recipe (its directory
    /// exists, or its name is not a recipe name); nothing written.
    #[error("cannot import into {dir}: {reason}; nothing written")]
    ImportRefused {
        /// The recipe directory.
        dir: String,
        /// Why.
        reason: String,
    },

    /// AWS failed in a way that may pass: a timeout, a dropped connection, a
    /// 5xx, beyond the SDK's own retries; retry later.
    #[error("{operation} failed transiently: {code}: {message}")]
    Transient {
        /// The API operation.
        operation: &'static str,
        /// The error code, or the kind of failure.
        code: String,
        /// What happened.
        message: String,
    },

    /// AWS throttled a call beyond the SDK's own retries; retry later.
    #[error("{operation} was throttled ({code})")]
    Throttled {
        /// The API operation.
        operation: &'static str,
        /// The throttling error code.
        code: String,
    },

    /// Any other AWS error.
    #[error("{operation} failed: {code}: {message}")]
    Aws {
        /// The API operation.
        operation: &'static str,
        /// The error code, or the kind of failure when there is none.
        code: String,
        /// The error message.
        message: String,
    },
}

impl Error {
    /// The stable name of this failure: the `errorType` a Lambda returns.
    pub fn name(&self) -> &'static str {
        self.into()
    }

    /// Every name an error can have, for checks against the state machine.
    pub fn names() -> impl Iterator<Item = &'static str> {
        use strum::IntoEnumIterator;
        Self::iter().map(|e| e.name())
    }

    /// An AWS error code from a call, or the failure kind when AWS gave no code.
    pub(crate) fn code_of<E, R>(err: &SdkError<E, R>) -> Option<&str>
    where
        E: ProvideErrorMetadata,
    {
        match err {
            SdkError::ServiceError(service) => service.err().code(),
            _ => None,
        }
    }

    /// Maps an SDK error of `operation` to [`Error::Throttled`],
    /// [`Error::Transient`] or [`Error::Aws`].
    pub(crate) fn aws<E, R>(operation: &'static str, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        let code = Self::code_of(&err).map(str::to_owned);
        match code {
            Some(code) if THROTTLING_CODES.contains(&code.as_str()) => {
                Self::Throttled { operation, code }
            }
            Some(code) if TRANSIENT_CODES.contains(&code.as_str()) => Self::Transient {
                operation,
                message: err.message().unwrap_or_default().to_owned(),
                code,
            },
            Some(code) => Self::Aws {
                operation,
                message: err.message().unwrap_or_default().to_owned(),
                code,
            },
            None => {
                let message =
                    aws_smithy_types::error::display::DisplayErrorContext(&err).to_string();
                let code = sdk_failure_kind(&err).to_owned();
                match err {
                    SdkError::TimeoutError(_)
                    | SdkError::DispatchFailure(_)
                    | SdkError::ResponseError(_) => Self::Transient {
                        operation,
                        code,
                        message,
                    },
                    _ => Self::Aws {
                        operation,
                        code,
                        message,
                    },
                }
            }
        }
    }
}

/// Error codes AWS uses for throttling across EC2 and SSM.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ThrottledException",
];

/// Error codes of AWS failures that may pass on their own.
const TRANSIENT_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
];

fn sdk_failure_kind<E, R>(err: &SdkError<E, R>) -> &'static str {
    match err {
        SdkError::ConstructionFailure(_) => "ConstructionFailure",
        SdkError::TimeoutError(_) => "Timeout",
        SdkError::DispatchFailure(_) => "DispatchFailure",
        SdkError::ResponseError(_) => "ResponseError",
        SdkError::ServiceError(_) => "ServiceError",
        _ => "Unknown",
    }
}

impl From<Error> for lambda_runtime::Diagnostic {
    fn from(err: Error) -> Self {
        Self {
            error_type: err.name().to_owned(),
            error_message: err.to_string(),
        }
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_in_the_errors_page_the_readme_links() {
        let page = include_str!("../docs/errors-and-tags.md");
        let missing: Vec<&str> = Error::names()
            .filter(|name| !page.contains(&format!("`{name}`")))
            .collect();
        assert!(missing.is_empty(), "undocumented: {missing:?}");
    }

    #[test]
    fn names_are_the_variant_names_and_unique() {
        let names: Vec<_> = Error::names().collect();
        assert!(names.contains(&"BuilderNotReady"));
        assert!(names.contains(&"CommandFailed"));
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
    }

    #[test]
    fn diagnostic_carries_the_stable_name() {
        let diagnostic = lambda_runtime::Diagnostic::from(Error::BuilderNotReady {
            instance: "i-0123".into(),
        });
        assert_eq!(diagnostic.error_type, "BuilderNotReady");
        assert!(diagnostic.error_message.contains("i-0123"));
    }
}
