//! The store on its own, in this process, against moto through the counting proxy: HeadObject
//! sent without the SDK's orchestrator (src/store/s3/head.rs) answers exactly as the SDK's
//! HeadObject does, for odd keys, user metadata, storage classes, encryption, versions and
//! missing keys, and is retried like every request.

mod common;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, ServerSideEncryption, StorageClass, VersioningConfiguration};
use common::*;
use s3drive::store::retry::RetryOptions;
use s3drive::store::s3::{S3Options, S3Store};
use s3drive::store::{Objects, StoreError};

/// Keys a HeadObject URL must encode right (the SDK's own PutObject wrote them).
const ODD_KEYS: &[&str] = &[
    "plain",
    "a b",
    "plus+sign",
    "pct%41x",
    "ümlaut/ñ",
    "q?x#y",
    "dbl//slash",
    "semi;colon=eq&amp",
    "tilde~",
    "emoji-😀",
    "trailing.",
    "(paren)[br]{cu}",
    "star*'quote'",
    "back\\slash",
    "deep/er/still/key",
];

fn store(proxy: &Proxy, head_via_sdk: bool, version_at: Option<SystemTime>) -> S3Store {
    rt().block_on(S3Store::new(&S3Options {
        endpoint_url: Some(proxy.endpoint()),
        region: Some("us-east-1".into()),
        force_path_style: true,
        retry: RetryOptions { budget: Duration::from_secs(20), request_timeout: Duration::from_secs(2) },
        version_at,
        head_via_sdk,
        ..Default::default()
    }))
}

#[test]
fn head_object_without_the_orchestrator_answers_as_the_sdk_does() {
    // The store reads credentials and proxies from the environment, as the daemon does: the
    // same environment as the mounts' (common::test_env). This binary has no other test.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        for v in [
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_CA_BUNDLE",
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            std::env::remove_var(v);
        }
    }
    let c = client();
    let b = bucket("lean");
    create_bucket(&c, &b);
    for (i, k) in ODD_KEYS.iter().enumerate() {
        let uid = i.to_string();
        put_meta(&c, &b, k, format!("body of {k}"), &[("mode", "33152"), ("mtime", "1600000000"), ("uid", &uid)]);
    }
    rt().block_on(
        c.put_object()
            .bucket(&b)
            .key("cold/ia")
            .body(ByteStream::from_static(b"infrequent"))
            .storage_class(StorageClass::StandardIa)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .content_type("text/x-odd")
            .send(),
    )
    .unwrap();
    let proxy = Proxy::start();
    let (lean, sdk) = (store(&proxy, false, None), store(&proxy, true, None));

    let keys = ODD_KEYS.iter().copied().chain(["cold/ia", "missing", "deep/er", "deep/er/"]);
    let mut found = 0;
    for k in keys.clone() {
        let (l, s) = (rt().block_on(lean.head_object(&b, k)), rt().block_on(sdk.head_object(&b, k)));
        match (l, s) {
            (Ok(l), Ok(s)) => {
                assert_eq!(l, s, "{k:?}");
                assert!(l.etag.is_some() && l.last_modified.is_some(), "{k:?}: {l:?}");
                found += 1;
            }
            (Err(StoreError::NotFound), Err(StoreError::NotFound)) => {}
            other => panic!("{k:?}: lean and SDK answers differ: {other:?}"),
        }
    }
    assert_eq!(found, ODD_KEYS.len() + 1, "every object written is found");
    let ia = rt().block_on(lean.head_object(&b, "cold/ia")).unwrap();
    assert_eq!(ia.storage_class.as_deref(), Some("STANDARD_IA"));
    assert_eq!(ia.sse.as_deref(), Some("AES256"));
    assert_eq!(ia.content_type.as_deref(), Some("text/x-odd"));
    let odd = rt().block_on(lean.head_object(&b, "emoji-😀")).unwrap();
    assert_eq!(odd.metadata.get("mode").map(String::as_str), Some("33152"));
    assert_eq!(odd.size, "body of emoji-😀".len() as u64);

    // Both paths really were taken: the SDK sends x-amz-user-agent, the lean path does not.
    let heads = proxy.amz_headers("HeadObject");
    let from_sdk = heads.iter().filter(|h| h.contains_key("x-amz-user-agent")).count();
    assert_eq!(from_sdk, keys.clone().count(), "one SDK HeadObject per key");
    assert_eq!(heads.len() - from_sdk, keys.count() + 2, "the rest came the lean way");

    // Retried like every request: throttled twice, then answered; a stalled answer abandoned
    // after the request timeout and asked again.
    proxy.reset();
    proxy.trouble("HeadObject", Trouble::Error { status: 503, code: "SlowDown" }, 2);
    assert!(rt().block_on(lean.head_object(&b, "plain")).is_ok());
    assert_eq!(proxy.count("HeadObject"), 3);
    proxy.trouble("HeadObject", Trouble::Stall, 1);
    assert!(rt().block_on(lean.head_object(&b, "a b")).is_ok());
    assert_eq!(proxy.trouble_left(), 0);
    proxy.trouble("HeadObject", Trouble::Error { status: 403, code: "AccessDenied" }, 1);
    assert!(matches!(rt().block_on(lean.head_object(&b, "plain")), Err(StoreError::AccessDenied)));

    // A version by id (--version-at): the versionId goes in the URL.
    rt().block_on(
        c.put_bucket_versioning()
            .bucket(&b)
            .versioning_configuration(
                VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build(),
            )
            .send(),
    )
    .unwrap();
    put_meta(&c, &b, "v a+b", "first", &[("mode", "33152")]);
    std::thread::sleep(Duration::from_millis(1100));
    let between = SystemTime::now();
    std::thread::sleep(Duration::from_millis(1100));
    put_meta(&c, &b, "v a+b", "second!", &[("mode", "33188")]);
    let (lean_then, sdk_then) = (store(&proxy, false, Some(between)), store(&proxy, true, Some(between)));
    let l = rt().block_on(lean_then.head_object(&b, "v a+b")).unwrap();
    assert_eq!(l, rt().block_on(sdk_then.head_object(&b, "v a+b")).unwrap());
    assert_eq!((l.size, l.metadata.get("mode").map(String::as_str)), (5, Some("33152")), "the first version");
}
