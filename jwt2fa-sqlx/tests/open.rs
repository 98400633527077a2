//! `open` errors that need no database server.

use jwt2fa_sqlx::OpenError;

#[tokio::test]
async fn open_rejects_unknown_scheme() {
    let error = jwt2fa_sqlx::open("redis://127.0.0.1:6379/0")
        .await
        .err()
        .expect("an unknown scheme must be rejected");
    assert!(
        matches!(&error, OpenError::UnknownScheme { scheme } if scheme == "redis"),
        "{error:?}"
    );
    assert!(error.to_string().contains("\"redis\""), "{error}");

    let error = jwt2fa_sqlx::open("jwt2fa.db")
        .await
        .err()
        .expect("a path without a scheme must be rejected");
    assert!(
        matches!(&error, OpenError::UnknownScheme { scheme } if scheme.is_empty()),
        "{error:?}"
    );
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn open_error_hides_password() {
    let error = jwt2fa_sqlx::open("postgres://app:s3cret-pass@localhost:notaport/app")
        .await
        .err()
        .expect("an invalid port must be rejected");
    assert!(matches!(error, OpenError::InvalidUrl { .. }), "{error:?}");
    let mut text = format!("{error} {error:?}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    assert!(!text.contains("s3cret-pass"), "{text}");
}

#[cfg(not(feature = "mysql"))]
#[tokio::test]
async fn open_names_the_feature_of_a_disabled_backend() {
    let error = jwt2fa_sqlx::open("mysql://root@127.0.0.1:3306/test")
        .await
        .err()
        .expect("a disabled backend must be rejected");
    assert!(
        matches!(&error, OpenError::BackendDisabled { scheme, feature: "mysql" } if scheme == "mysql"),
        "{error:?}"
    );
    assert!(error.to_string().contains("`mysql` feature"), "{error}");
}
