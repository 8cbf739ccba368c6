//! One helper per SDK idiom kiln uses, so each is written once: an error as
//! kiln's ([`Error::aws`]), "not found" as `None`, every page of a listing.
//! SDK errors are told apart by their modeled variant or their code, never
//! by their message.

use std::fmt;

use aws_smithy_async::future::pagination_stream::PaginationStream;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

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
