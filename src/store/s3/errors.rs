//! SDK errors folded into [`StoreError`]: the one place an S3 answer gets its meaning.

use super::*;

/// An upload refused over its checksum header by a service that does not support it (as
/// opposed to BadDigest: the bytes changed on the way, retried).
pub(super) fn checksum_unsupported(e: StoreError) -> StoreError {
    match e {
        StoreError::Server { status, code, message }
            if matches!(status, Some(400) | Some(501))
                && matches!(code.as_str(), "InvalidArgument" | "NotImplemented" | "InvalidRequest")
                && message.to_ascii_lowercase().contains("checksum") =>
        {
            StoreError::Server {
                status,
                code,
                message: format!(
                    "{message} (the service does not take upload checksums: mount with --upload-checksum off)"
                ),
            }
        }
        other => other,
    }
}

/// An error and its causes, one line (`a: b: c`), without the debug dump DisplayErrorContext
/// ends with.
pub(super) fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let m = e.to_string();
        if !m.is_empty() && !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        next = e.source();
    }
    out
}

/// A request that got no answer: a certificate not trusted, or an endpoint that does not speak
/// TLS (no retry helps), or else the network.
pub(super) fn transport_error(text: String) -> StoreError {
    if text.contains("TLS") || text.contains("certificate") { StoreError::Tls(text) } else { StoreError::Network(text) }
}

/// Whether a request failed before it was sent because the credential chain found nothing (the
/// SDK reports that as a dispatch failure, which is not the network's fault).
pub(super) fn no_credentials<E: std::error::Error + 'static>(err: &E) -> bool {
    let text = format!("{}", DisplayErrorContext(err));
    text.contains("no credentials found in chain") || text.contains("the credential provider was not enabled")
}

/// A request the SDK's builders refused to build (a bug of ours, never the server's answer).
pub(super) fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Server { status: None, code: "BuildError".into(), message: e.to_string() }
}

/// Folds an SDK error into a [`StoreError`]. `not_found` is the store error a 404 means for this
/// operation (HeadObject's 404 has no body, so there is no code to tell key from bucket).
pub(super) fn map_err<E>(err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>, not_found: StoreError) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match &err {
        SdkError::DispatchFailure(d) if !d.is_io() && !d.is_timeout() && no_credentials(&err) => {
            return StoreError::NoCredentials(causes(&err));
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            return transport_error(causes(&err));
        }
        SdkError::ConstructionFailure(_) => {
            // Most often: no credentials could be loaded, or they could not sign.
            return StoreError::BadCredentials(causes(&err));
        }
        _ => {}
    }
    let code = err.code().unwrap_or("").to_string();
    let message = err.message().unwrap_or("").to_string();
    match code.as_str() {
        "NoSuchKey" | "NotFound" => return not_found,
        "NoSuchBucket" => return StoreError::NoSuchBucket,
        "AccessDenied" | "AllAccessDisabled" | "AccountProblem" => return StoreError::AccessDenied,
        "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidToken" | "TokenRefreshRequired" => {
            return StoreError::BadCredentials(if message.is_empty() { code } else { format!("{code}: {message}") });
        }
        "PreconditionFailed" => return StoreError::PreconditionFailed,
        "InvalidRange" => return StoreError::InvalidRange,
        "BucketNotEmpty" => return StoreError::BucketNotEmpty,
        "BucketAlreadyExists" | "BucketAlreadyOwnedByYou" => return StoreError::BucketExists,
        "MetadataTooLarge" => return StoreError::MetadataTooLarge,
        "InvalidObjectState" => return StoreError::Archived,
        _ => {}
    }
    match status {
        Some(404) => not_found,
        Some(403) => StoreError::AccessDenied,
        Some(412) => StoreError::PreconditionFailed,
        Some(416) => StoreError::InvalidRange,
        _ => StoreError::Server {
            status,
            code: if code.is_empty() { "Unknown".into() } else { code },
            message: if message.is_empty() { causes(&err) } else { message },
        },
    }
}

/// A 404 from UploadPart or CompleteMultipartUpload is NoSuchUpload: the upload is gone
/// (aborted by another client or a lifecycle rule), not the file. The write failed (EIO),
/// whatever the name's state.
pub(super) fn upload_gone(e: StoreError) -> StoreError {
    match e {
        StoreError::NotFound => StoreError::Server {
            status: Some(404),
            code: "NoSuchUpload".into(),
            message: "the multipart upload no longer exists (aborted elsewhere?)".into(),
        },
        e => e,
    }
}
