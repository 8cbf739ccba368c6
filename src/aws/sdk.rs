//! One helper per SDK idiom kiln uses, so each is written once: an error as
//! kiln's ([`Error::aws`]), "not found" as `None`, every page of a listing.
//! SDK errors are told apart by their modeled variant or their code, never
//! by their message.

use std::fmt;

use aws_smithy_async::future::pagination_stream::PaginationStream;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// What kiln does with the result of an SDK call.
pub(crate) trait Answer<T, E, R> {
    /// The output, or the failure as kiln's error ([`Error::aws`]).
    fn or_aws(self, operation: &'static str) -> Result<T>;

    /// The output; `None` when `missing` says the error means the thing
    /// asked about does not exist (or is gone already); else kiln's error.
    fn or_missing(
        self,
        operation: &'static str,
        missing: impl FnOnce(&SdkError<E, R>) -> bool,
    ) -> Result<Option<T>>;
}

impl<T, E, R> Answer<T, E, R> for std::result::Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    fn or_aws(self, operation: &'static str) -> Result<T> {
        self.map_err(|err| Error::aws(operation, err))
    }

    fn or_missing(
        self,
        operation: &'static str,
        missing: impl FnOnce(&SdkError<E, R>) -> bool,
    ) -> Result<Option<T>> {
        match self {
            Ok(output) => Ok(Some(output)),
            Err(err) if missing(&err) => Ok(None),
            Err(err) => Err(Error::aws(operation, err)),
        }
    }
}

/// Whether `err` carries one of the error `codes`.
pub(crate) fn code_in<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>, codes: &[&str]) -> bool {
    Error::code_of(err).is_some_and(|code| codes.contains(&code))
}

/// Whether `err`'s error code starts with `prefix` (EC2's `InvalidAMIID.*`).
pub(crate) fn code_starts<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>, prefix: &str) -> bool {
    Error::code_of(err).is_some_and(|code| code.starts_with(prefix))
}

/// Every item of a paginated listing (`into_paginator().items().send()`),
/// or of every page (`into_paginator().send()`).
pub(crate) async fn all<T, E, R>(
    pages: PaginationStream<std::result::Result<T, SdkError<E, R>>>,
    operation: &'static str,
) -> Result<Vec<T>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    all_or_missing(pages, operation, |_| false)
        .await
        .map(Option::unwrap_or_default)
}

/// Like [`all`]; `None` when `missing` says the error means the thing listed
/// does not exist.
pub(crate) async fn all_or_missing<T, E, R>(
    pages: PaginationStream<std::result::Result<T, SdkError<E, R>>>,
    operation: &'static str,
    missing: impl FnOnce(&SdkError<E, R>) -> bool,
) -> Result<Option<Vec<T>>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    pages
        .collect::<std::result::Result<Vec<T>, _>>()
        .await
        .or_missing(operation, missing)
}

/// An EC2 `ClientToken` made from `parts` (a build, and what of it the call
/// makes): the same parts give the same token, so a retried call is the
/// same request and never makes a second resource; at most 64 characters,
/// EC2's limit.
pub(crate) fn client_token(parts: &[&str]) -> String {
    let digest = Sha256::digest(parts.join("\0"));
    format!("kiln-{}", &hex::encode(digest)[..40])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_tokens_fit_ec2_and_differ_with_their_parts() {
        let a = client_token(&["b1", "builder", "t3.small"]);
        assert!(a.len() <= 64);
        assert_eq!(a, client_token(&["b1", "builder", "t3.small"]));
        assert_ne!(a, client_token(&["b1", "builder", "t3a.small"]));
        assert_ne!(a, client_token(&["b1", "test", "t3.small"]));
        assert_ne!(
            client_token(&["b1", "eu-west-1"]),
            client_token(&["b2", "eu-west-1"])
        );
    }
}
