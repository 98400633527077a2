#![allow(missing_docs)] // criterion_group! generates undocumented functions.

//! Criterion benchmarks of the hot functions, each beside its baseline:
//! access-token issue and verify against a bare `jsonwebtoken` encode and
//! decode of the same claims, the code check through the store, and
//! password hashing at the configured parameters.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use jwt2fa_core::{Auth, AuthConfig, Claims, MemoryStore, Registration, Secret};

const SECRET: &str = "benchmark-secret-of-at-least-32-bytes";

fn service() -> Auth {
    let config = AuthConfig::builder(SECRET)
        .without_client_limits()
        .build()
        .unwrap();
    Auth::builder(config, Arc::new(MemoryStore::new()))
        .build()
        .unwrap()
}

fn tokens(c: &mut Criterion) {
    let auth = service();
    let token = auth.issue_access_token(42).unwrap();
    let claims: Claims = auth.authenticate(&token).unwrap().claims;

    let encoding = EncodingKey::from_secret(SECRET.as_bytes());
    let decoding = DecodingKey::from_secret(SECRET.as_bytes());
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;

    let mut group = c.benchmark_group("access_token_verify");
    group.bench_function("baseline_jsonwebtoken_decode", |b| {
        b.iter(|| jsonwebtoken::decode::<Claims>(&token, &decoding, &validation).unwrap())
    });
    group.bench_function("jwt2fa_authenticate", |b| {
        b.iter(|| auth.authenticate(&token).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("access_token_issue");
    group.bench_function("baseline_jsonwebtoken_encode", |b| {
        b.iter(|| jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &encoding).unwrap())
    });
    group.bench_function("jwt2fa_issue_access_token", |b| {
        b.iter(|| auth.issue_access_token(42).unwrap())
    });
    group.finish();
}

fn passwords(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let auth = service();
    runtime.block_on(async {
        auth.register(Registration {
            username: "bench".into(),
            email: "bench@example.com".into(),
            password: Secret::new("tulip-Orbit-9-quarry"),
        })
        .await
        .unwrap();
    });

    let mut group = c.benchmark_group("password");
    group.sample_size(20);
    // An unverified user with the right password runs exactly one Argon2
    // verification and then stops with 403, so this measures t_hash.
    group.bench_function("login_one_argon2_verification", |b| {
        b.to_async(&runtime).iter(|| async {
            let result = auth
                .login("bench", &Secret::new("tulip-Orbit-9-quarry"))
                .await;
            assert!(matches!(result, Err(jwt2fa_core::AuthError::NotVerified)));
        })
    });
    group.finish();
}

fn codes(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let auth = service();
    // A wrong code for an unknown address: validation, lookup and the
    // response, without touching a code row.
    c.bench_function("verify_code_unknown_address", |b| {
        b.to_async(&runtime).iter(|| async {
            let result = auth
                .verify_email("nobody@example.com", &Secret::new("123456"))
                .await;
            assert!(result.is_err());
        })
    });
}

criterion_group!(benches, tokens, passwords, codes);
criterion_main!(benches);
