//! Objects of kiln's bucket (the audit's reports, the commands' output, the
//! images' SBOMs): read whole (none when missing), written whole, deleted.

use aws_sdk_s3::primitives::ByteStream;

use crate::aws::sdk::Answer;
use crate::error::{Error, Result};

/// The bytes of object `key` of `bucket`; none when there is no such key,
/// `Transient` when its body does not arrive whole.
pub(crate) async fn read(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Vec<u8>>> {
    let found = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .or_missing("GetObject", |err| {
            crate::aws::sdk::code_in(err, &["NoSuchKey"])
        })?;
    let Some(object) = found else {
        return Ok(None);
    };
    let body = object
        .body
        .collect()
        .await
        .map_err(|err| Error::Transient {
            operation: "GetObject",
            code: "BodyNotReceived".into(),
            message: format!("s3://{bucket}/{key}: {err}"),
        })?;
    Ok(Some(body.into_bytes().to_vec()))
}

/// Writes `body` to object `key` of `bucket`.
pub(crate) async fn write(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<()> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body))
        .send()
        .await
        .or_aws("PutObject")?;
    Ok(())
}

/// Deletes object `key` of `bucket`; a missing key is no error (S3 answers
/// the same).
pub(crate) async fn delete(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<()> {
    s3.delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .or_aws("DeleteObject")?;
    Ok(())
}
