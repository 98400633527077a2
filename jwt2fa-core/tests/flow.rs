//! The account flow through the `Auth` service, with the in-memory store,
//! the in-memory mailer and a manual clock.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use jwt2fa_core::store::ProfileChanges;
use jwt2fa_core::{
    find_code, Auth, AuthConfig, AuthError, ManualClock, MemoryMailer, MemoryStore, Registration,
    Secret, TokenPair,
};
use time::Duration;

const SECRET: &str = "flow-test-secret-of-at-least-32-bytes!";
const PASSWORD: &str = "tulip-Orbit-9-quarry";

struct Harness {
    auth: Auth,
    mailer: MemoryMailer,
    clock: Arc<ManualClock>,
}

fn harness() -> Harness {
    harness_with(|builder| builder)
}

fn harness_with(
    configure: impl FnOnce(jwt2fa_core::AuthConfigBuilder) -> jwt2fa_core::AuthConfigBuilder,
) -> Harness {
    let config = configure(AuthConfig::builder(SECRET)).build().unwrap();
    let mailer = MemoryMailer::new();
    let clock = Arc::new(ManualClock::starting_now());
    let auth = Auth::builder(config, Arc::new(MemoryStore::new()))
        .mailer(Arc::new(mailer.clone()))
        .clock(clock.clone())
        .build()
        .unwrap();
    Harness {
        auth,
        mailer,
        clock,
    }
}

impl Harness {
    async fn register(&self, username: &str, email: &str) -> i64 {
        let user = self
            .auth
            .register(Registration {
                username: username.into(),
                email: email.into(),
                password: Secret::new(PASSWORD),
            })
            .await
            .unwrap();
        user.id
    }

    /// Requests a code and returns it from the mailbox, waiting for mail
    /// number `nth` (1-based) to `email`.
    async fn request_code(&self, email: &str, nth: usize) -> String {
        self.auth.send_verification_code(email).await.unwrap();
        let messages = self
            .mailer
            .wait_for(email, nth, StdDuration::from_secs(5))
            .await;
        assert_eq!(messages.len(), nth, "expected mail number {nth} to {email}");
        find_code(&messages[nth - 1].text).expect("a code line in the mail")
    }

    async fn verified_user(&self, username: &str, email: &str) -> i64 {
        let id = self.register(username, email).await;
        let code = self.request_code(email, 1).await;
        self.auth
            .verify_email(email, &Secret::new(code))
            .await
            .unwrap();
        id
    }

    async fn login(&self, username: &str) -> TokenPair {
        self.auth
            .login(username, &Secret::new(PASSWORD))
            .await
            .unwrap()
    }
}

fn wrong_code(code: &str) -> Secret {
    let first = code.as_bytes()[0];
    let replacement = if first == b'9' {
        '0'
    } else {
        (first + 1) as char
    };
    Secret::new(format!("{replacement}{}", &code[1..]))
}

#[tokio::test]
async fn whole_flow_succeeds() {
    let h = harness();
    let id = h.register("ana", "ana@example.com").await;

    let code = h.request_code("ana@example.com", 1).await;
    h.auth
        .verify_email("ana@example.com", &Secret::new(code))
        .await
        .unwrap();

    let pair = h.login("ana").await;
    let user = h.auth.authenticate(&pair.access).unwrap();
    assert_eq!(user.user_id, id);

    let profile = h.auth.profile(id).await.unwrap();
    assert_eq!(profile.username, "ana");
    assert!(profile.is_verified);
    assert_eq!(profile.bio, "");

    let updated = h
        .auth
        .update_profile(
            id,
            ProfileChanges {
                bio: Some("Hello".into()),
                avatar: Some("https://example.com/a.png".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.bio, "Hello");
    assert_eq!(updated.avatar, "https://example.com/a.png");

    let next = h
        .auth
        .refresh(&Secret::new(pair.refresh.clone()))
        .await
        .unwrap();
    assert_ne!(next.refresh, pair.refresh);
    h.auth
        .logout(&user, &Secret::new(next.refresh.clone()))
        .await
        .unwrap();
    assert!(matches!(
        h.auth.refresh(&Secret::new(next.refresh)).await,
        Err(AuthError::InvalidToken)
    ));
}

#[tokio::test]
async fn register_rejects_duplicates_case_insensitively() {
    let h = harness();
    h.register("Ana", "Ana@Example.com").await;
    let error = h
        .auth
        .register(Registration {
            username: "ANA".into(),
            email: "ana@example.COM".into(),
            password: Secret::new(PASSWORD),
        })
        .await
        .unwrap_err();
    let AuthError::Validation(errors) = error else {
        panic!("expected field errors, got {error:?}");
    };
    assert!(errors.get("username").is_some());
    assert!(errors.get("email").is_some());
}

#[tokio::test]
async fn login_before_verification_is_rejected() {
    let h = harness();
    h.register("ana", "ana@example.com").await;
    let right = h.auth.login("ana", &Secret::new(PASSWORD)).await;
    assert!(matches!(right, Err(AuthError::NotVerified)));
    let wrong = h.auth.login("ana", &Secret::new("wrong password")).await;
    assert!(matches!(wrong, Err(AuthError::InvalidCredentials)));
}

#[tokio::test]
async fn code_expires_after_ten_minutes() {
    let h = harness();
    h.register("ana", "ana@example.com").await;
    let code = h.request_code("ana@example.com", 1).await;
    h.clock.advance(Duration::minutes(10));
    let result = h
        .auth
        .verify_email("ana@example.com", &Secret::new(code))
        .await;
    assert!(matches!(result, Err(AuthError::InvalidCode)));
}

#[tokio::test]
async fn code_works_once() {
    let h = harness();
    h.register("ana", "ana@example.com").await;
    let code = h.request_code("ana@example.com", 1).await;
    let first = h
        .auth
        .verify_email("ana@example.com", &Secret::new(code.clone()))
        .await;
    assert!(first.is_ok());
    let second = h
        .auth
        .verify_email("ana@example.com", &Secret::new(code))
        .await;
    assert!(matches!(second, Err(AuthError::InvalidCode)));
}

#[tokio::test]
async fn code_dies_after_five_wrong_tries() {
    let h = harness();
    h.register("ana", "ana@example.com").await;
    let code = h.request_code("ana@example.com", 1).await;
    for _ in 0..5 {
        let result = h
            .auth
            .verify_email("ana@example.com", &wrong_code(&code))
            .await;
        assert!(matches!(result, Err(AuthError::InvalidCode)));
    }
    let right = h
        .auth
        .verify_email("ana@example.com", &Secret::new(code))
        .await;
    assert!(matches!(right, Err(AuthError::InvalidCode)));
}

#[tokio::test]
async fn new_code_replaces_old_one() {
    let h = harness();
    h.register("ana", "ana@example.com").await;
    let first = h.request_code("ana@example.com", 1).await;
    h.clock.advance(Duration::seconds(61));
    let second = h.request_code("ana@example.com", 2).await;
    if first != second {
        let old = h
            .auth
            .verify_email("ana@example.com", &Secret::new(first))
            .await;
        assert!(matches!(old, Err(AuthError::InvalidCode)));
    }
    let new = h
        .auth
        .verify_email("ana@example.com", &Secret::new(second))
        .await;
    assert!(new.is_ok());
}

#[tokio::test]
async fn resend_inside_cooldown_sends_nothing() {
    let h = harness();
    h.register("ana", "ana@example.com").await;
    h.request_code("ana@example.com", 1).await;
    h.auth
        .send_verification_code("ana@example.com")
        .await
        .unwrap();
    let messages = h
        .mailer
        .wait_for("ana@example.com", 2, StdDuration::from_millis(300))
        .await;
    assert_eq!(messages.len(), 1);
}

#[tokio::test]
async fn daily_cap_bounds_sends() {
    let h = harness();
    h.register("ana", "ana@example.com").await;
    for nth in 1..=10 {
        h.request_code("ana@example.com", nth).await;
        h.clock.advance(Duration::seconds(61));
    }
    h.auth
        .send_verification_code("ana@example.com")
        .await
        .unwrap();
    let messages = h
        .mailer
        .wait_for("ana@example.com", 11, StdDuration::from_millis(300))
        .await;
    assert_eq!(messages.len(), 10);
}

#[tokio::test]
async fn unknown_and_verified_addresses_get_no_mail() {
    let h = harness();
    h.verified_user("ana", "ana@example.com").await;
    h.clock.advance(Duration::seconds(61));
    h.auth
        .send_verification_code("ana@example.com")
        .await
        .unwrap();
    h.auth
        .send_verification_code("nobody@example.com")
        .await
        .unwrap();
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    assert_eq!(h.mailer.messages().len(), 1);
}

#[tokio::test]
async fn refresh_rotates_and_detects_reuse() {
    let h = harness();
    h.verified_user("ana", "ana@example.com").await;
    let first = h.login("ana").await;

    let second = h
        .auth
        .refresh(&Secret::new(first.refresh.clone()))
        .await
        .unwrap();
    let replay = h
        .auth
        .refresh(&Secret::new(first.refresh.clone()))
        .await
        .unwrap();
    assert_eq!(
        replay.refresh, second.refresh,
        "grace window returns the same successor"
    );

    h.clock.advance(Duration::seconds(11));
    let reuse = h.auth.refresh(&Secret::new(first.refresh)).await;
    assert!(matches!(reuse, Err(AuthError::InvalidToken)));
    let revoked = h.auth.refresh(&Secret::new(second.refresh)).await;
    assert!(
        matches!(revoked, Err(AuthError::InvalidToken)),
        "family is revoked"
    );
}

#[tokio::test]
async fn refresh_token_is_not_an_access_token() {
    let h = harness();
    h.verified_user("ana", "ana@example.com").await;
    let pair = h.login("ana").await;
    assert!(matches!(
        h.auth.authenticate(&pair.refresh),
        Err(AuthError::InvalidToken)
    ));
    assert!(matches!(
        h.auth.refresh(&Secret::new(pair.access)).await,
        Err(AuthError::InvalidToken)
    ));
}

#[tokio::test]
async fn access_token_expires() {
    let h = harness();
    h.verified_user("ana", "ana@example.com").await;
    let pair = h.login("ana").await;
    h.clock.advance(Duration::minutes(5));
    assert!(matches!(
        h.auth.authenticate(&pair.access),
        Err(AuthError::InvalidToken)
    ));
}

#[tokio::test]
async fn refresh_family_ends_after_thirty_days() {
    let h = harness();
    h.verified_user("ana", "ana@example.com").await;
    let mut pair = h.login("ana").await;
    // 31 rotations 23 hours apart stay inside the 30 days (713 hours).
    for _ in 0..31 {
        h.clock.advance(Duration::hours(23));
        pair = h.auth.refresh(&Secret::new(pair.refresh)).await.unwrap();
    }
    h.clock.advance(Duration::hours(23));
    assert!(h.auth.refresh(&Secret::new(pair.refresh)).await.is_err());
}

#[tokio::test]
async fn logout_twice_is_rejected() {
    let h = harness();
    h.verified_user("ana", "ana@example.com").await;
    let pair = h.login("ana").await;
    let user = h.auth.authenticate(&pair.access).unwrap();
    let refresh = Secret::new(pair.refresh);
    h.auth.logout(&user, &refresh).await.unwrap();
    assert!(matches!(
        h.auth.refresh(&refresh).await,
        Err(AuthError::InvalidToken)
    ));
    assert!(matches!(
        h.auth.logout(&user, &refresh).await,
        Err(AuthError::InvalidToken)
    ));
}

#[tokio::test]
async fn logout_with_other_users_token_is_forbidden() {
    let h = harness();
    h.verified_user("ana", "ana@example.com").await;
    h.verified_user("bob", "bob@example.com").await;
    let ana = h.login("ana").await;
    let bob = h.login("bob").await;
    let ana_user = h.auth.authenticate(&ana.access).unwrap();
    let result = h
        .auth
        .logout(&ana_user, &Secret::new(bob.refresh.clone()))
        .await;
    assert!(matches!(result, Err(AuthError::PermissionDenied)));
    assert!(h.auth.refresh(&Secret::new(bob.refresh)).await.is_ok());
}

#[tokio::test]
async fn deactivated_user_cannot_refresh_or_login() {
    let h = harness();
    let id = h.verified_user("ana", "ana@example.com").await;
    let pair = h.login("ana").await;
    assert!(h.auth.deactivate_user(id).await.unwrap());
    assert!(matches!(
        h.auth.refresh(&Secret::new(pair.refresh)).await,
        Err(AuthError::InvalidToken)
    ));
    assert!(matches!(
        h.auth.login("ana", &Secret::new(PASSWORD)).await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(matches!(
        h.auth.profile(id).await,
        Err(AuthError::InvalidToken)
    ));
}

#[tokio::test]
async fn deleted_user_cannot_refresh() {
    let h = harness();
    let id = h.verified_user("ana", "ana@example.com").await;
    let pair = h.login("ana").await;
    assert!(h.auth.delete_user(id).await.unwrap());
    assert!(!h.auth.delete_user(id).await.unwrap());
    assert!(matches!(
        h.auth.refresh(&Secret::new(pair.refresh)).await,
        Err(AuthError::InvalidToken)
    ));
}

#[tokio::test]
async fn change_password_revokes_every_family() {
    let h = harness();
    let id = h.verified_user("ana", "ana@example.com").await;
    let laptop = h.login("ana").await;
    let phone = h.login("ana").await;
    let fresh = h
        .auth
        .change_password(
            id,
            &Secret::new(PASSWORD),
            &Secret::new("new-Granite-42-harbor"),
        )
        .await
        .unwrap();
    for old in [laptop.refresh, phone.refresh] {
        assert!(h.auth.refresh(&Secret::new(old)).await.is_err());
    }
    assert!(h.auth.refresh(&Secret::new(fresh.refresh)).await.is_ok());
    assert!(h
        .auth
        .login("ana", &Secret::new("new-Granite-42-harbor"))
        .await
        .is_ok());
}

#[tokio::test]
async fn every_login_path_runs_one_hash() {
    let h = harness();
    h.verified_user("ana", "ana@example.com").await;
    h.register("bob", "bob@example.com").await;
    let cases = [
        ("nobody", "whatever-password"),
        ("ana", "wrong-password"),
        ("ana", PASSWORD),
        ("bob", PASSWORD),
    ];
    for (username, password) in cases {
        let before = h.auth.password_verifications();
        let _ = h.auth.login(username, &Secret::new(password)).await;
        assert_eq!(
            h.auth.password_verifications() - before,
            1,
            "login as {username} ran one verification"
        );
    }
}

#[tokio::test]
async fn failed_logins_are_throttled_alike() {
    let h = harness();
    h.verified_user("ana", "ana@example.com").await;
    for attempt in 1..=6 {
        let known = h.auth.login("ana", &Secret::new("wrong-password")).await;
        let unknown = h.auth.login("nobody", &Secret::new("wrong-password")).await;
        let expected_throttle = attempt == 6;
        assert_eq!(
            matches!(known, Err(AuthError::Throttled { .. })),
            expected_throttle,
            "known user, attempt {attempt}: {known:?}"
        );
        assert_eq!(
            matches!(unknown, Err(AuthError::Throttled { .. })),
            expected_throttle,
            "unknown user, attempt {attempt}: {unknown:?}"
        );
    }
    h.clock.advance(Duration::seconds(1));
    assert!(h.auth.login("ana", &Secret::new(PASSWORD)).await.is_ok());
}

#[tokio::test]
async fn blank_username_is_not_counted() {
    let h = harness();
    for _ in 0..10 {
        let result = h.auth.login("  ", &Secret::new("x")).await;
        assert!(matches!(result, Err(AuthError::Validation(_))));
    }
    assert_eq!(h.auth.password_verifications(), 0);
}

#[tokio::test]
async fn code_with_leading_zero_is_kept() {
    let h = harness();
    h.register("ana", "ana@example.com").await;
    // Codes are random, so request until one starts with zero; each new
    // code replaces the last, and the cooldown is skipped with the clock.
    let mut nth = 0;
    let code = loop {
        nth += 1;
        let code = h.request_code("ana@example.com", nth).await;
        if code.starts_with('0') || nth == 10 {
            break code;
        }
        h.clock.advance(Duration::hours(3));
    };
    assert_eq!(code.len(), 6);
    assert!(h
        .auth
        .verify_email("ana@example.com", &Secret::new(code))
        .await
        .is_ok());
}

#[tokio::test]
async fn twenty_verifications_with_one_code_succeed_once() {
    let h = harness();
    h.register("ana", "ana@example.com").await;
    let code = h.request_code("ana@example.com", 1).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let auth = h.auth.clone();
        let code = Secret::new(code.clone());
        tasks.push(tokio::spawn(async move {
            auth.verify_email("ana@example.com", &code).await.is_ok()
        }));
    }
    let mut successes = 0;
    for task in tasks {
        successes += usize::from(task.await.unwrap());
    }
    assert_eq!(successes, 1);
}

#[tokio::test]
async fn profile_update_validates_fields() {
    let h = harness();
    let id = h.verified_user("ana", "ana@example.com").await;
    let error = h
        .auth
        .update_profile(
            id,
            ProfileChanges {
                bio: Some("x".repeat(1001)),
                avatar: Some("javascript:alert(1)".into()),
            },
        )
        .await
        .unwrap_err();
    let AuthError::Validation(errors) = error else {
        panic!("expected field errors");
    };
    assert!(errors.get("bio").is_some());
    assert!(errors.get("avatar").is_some());
    assert_eq!(h.auth.profile(id).await.unwrap().bio, "");
}

/// A mailer that blocks every send until released, then fails the first
/// `failures` sends before delivering into `inner`.
struct StubbornMailer {
    release: tokio::sync::Semaphore,
    failures: std::sync::atomic::AtomicU32,
    attempts: std::sync::atomic::AtomicU32,
    inner: MemoryMailer,
}

#[async_trait::async_trait]
impl jwt2fa_core::Mailer for StubbornMailer {
    async fn send(
        &self,
        message: &jwt2fa_core::EmailMessage,
    ) -> Result<(), jwt2fa_core::MailError> {
        use std::sync::atomic::Ordering;
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let _permit = self.release.acquire().await.expect("semaphore open");
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(jwt2fa_core::MailError("server unavailable".into()));
        }
        self.inner.send(message).await
    }

    fn describe(&self) -> String {
        "stubborn test mailer".into()
    }
}

/// Builds a service that sends through `mailer` and registers "ana".
async fn service_with_user(mailer: Arc<StubbornMailer>) -> Auth {
    let config = AuthConfig::builder(SECRET).build().unwrap();
    let auth = Auth::builder(config, Arc::new(MemoryStore::new()))
        .mailer(mailer)
        .build()
        .unwrap();
    auth.register(Registration {
        username: "ana".into(),
        email: "ana@example.com".into(),
        password: Secret::new(PASSWORD),
    })
    .await
    .unwrap();
    auth
}

#[tokio::test]
async fn send_code_skips_hanging_mailer() {
    let inner = MemoryMailer::new();
    let mailer = Arc::new(StubbornMailer {
        release: tokio::sync::Semaphore::new(0),
        failures: 0.into(),
        attempts: 0.into(),
        inner: inner.clone(),
    });
    let auth = service_with_user(mailer.clone()).await;

    // The mailer blocks every send until released, so the response can only
    // come back if the send runs in the background.
    let response = tokio::time::timeout(
        StdDuration::from_secs(30),
        auth.send_verification_code("ana@example.com"),
    )
    .await;
    assert!(matches!(response, Ok(Ok(()))));
    assert!(inner.messages().is_empty());

    mailer.release.add_permits(1);
    let delivered = inner
        .wait_for("ana@example.com", 1, StdDuration::from_secs(10))
        .await;
    assert_eq!(delivered.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn failed_mail_is_retried_until_delivered() {
    let inner = MemoryMailer::new();
    let mailer = Arc::new(StubbornMailer {
        release: tokio::sync::Semaphore::new(100),
        failures: 2.into(),
        attempts: 0.into(),
        inner: inner.clone(),
    });
    let auth = service_with_user(mailer.clone()).await;

    auth.send_verification_code("ana@example.com")
        .await
        .unwrap();
    // Paused time advances on its own while every task waits, so the
    // back-off sleeps pass at once.
    let delivered = inner
        .wait_for("ana@example.com", 1, StdDuration::from_secs(60))
        .await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(mailer.attempts.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test]
async fn weak_hash_is_replaced_at_login() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use jwt2fa_core::store::UserStore;

    let store = Arc::new(MemoryStore::new());
    let mailer = MemoryMailer::new();
    let config = AuthConfig::builder(SECRET).build().unwrap();
    let auth = Auth::builder(config, store.clone())
        .mailer(Arc::new(mailer.clone()))
        .build()
        .unwrap();
    let user = auth
        .register(Registration {
            username: "ana".into(),
            email: "ana@example.com".into(),
            password: Secret::new(PASSWORD),
        })
        .await
        .unwrap();
    store.mark_verified(user.id).await.unwrap();

    let weak = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(4096, 1, 1, None).unwrap(),
    );
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let weak_hash = weak
        .hash_password(PASSWORD.as_bytes(), &salt)
        .unwrap()
        .to_string();
    store.set_password_hash(user.id, &weak_hash).await.unwrap();

    auth.login("ana", &Secret::new(PASSWORD)).await.unwrap();
    let stored = store
        .user_by_id(user.id)
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    assert!(auth.login("ana", &Secret::new(PASSWORD)).await.is_ok());
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let proxy: std::net::IpAddr = "10.0.0.1".parse().unwrap();
    let client: std::net::IpAddr = "203.0.113.7".parse().unwrap();
    let config = AuthConfig::builder(SECRET)
        .trusted_proxies([proxy])
        .build()
        .unwrap();
    let auth = Auth::builder(config, Arc::new(MemoryStore::new()))
        .build()
        .unwrap();

    let header = Some("198.51.100.1, 203.0.113.7");
    assert_eq!(auth.client_ip(Some(proxy), header), Some(client));
    assert_eq!(
        auth.client_ip(Some(client), Some("198.51.100.1")),
        Some(client)
    );
    assert_eq!(auth.client_ip(Some(proxy), None), Some(proxy));
    assert_eq!(
        auth.client_ip(Some(proxy), Some("not an address")),
        Some(proxy)
    );
}

#[tokio::test]
async fn guesses_per_day_are_bounded() {
    let h = harness();
    h.register("ana", "ana@example.com").await;

    // "Three wrong codes, ask for a new one" without waiting: the cooldown
    // keeps every new code back.
    let first = h.request_code("ana@example.com", 1).await;
    for _ in 0..5 {
        for _ in 0..3 {
            let result = h
                .auth
                .verify_email("ana@example.com", &wrong_code(&first))
                .await;
            assert!(matches!(result, Err(AuthError::InvalidCode)));
        }
        h.auth
            .send_verification_code("ana@example.com")
            .await
            .unwrap();
    }
    let mails = h
        .mailer
        .wait_for("ana@example.com", 2, StdDuration::from_millis(300))
        .await;
    assert_eq!(mails.len(), 1, "the cooldown held the new codes back");

    // The same loop a minute apart: nine more codes arrive, then the daily
    // cap stops the sends. Each request waits for its mail, because the
    // background task reads the clock when it runs.
    for nth in 2..=10 {
        h.clock.advance(Duration::seconds(61));
        h.request_code("ana@example.com", nth).await;
    }
    for _ in 0..5 {
        h.clock.advance(Duration::seconds(61));
        h.auth
            .send_verification_code("ana@example.com")
            .await
            .unwrap();
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    let mails = h
        .mailer
        .wait_for("ana@example.com", 11, StdDuration::from_millis(300))
        .await;
    assert_eq!(mails.len(), 10, "the daily cap allows ten codes");

    // Each code allows five tries, so ten codes allow at most fifty.
    let last = find_code(&mails[9].text).unwrap();
    for _ in 0..5 {
        let result = h
            .auth
            .verify_email("ana@example.com", &wrong_code(&last))
            .await;
        assert!(matches!(result, Err(AuthError::InvalidCode)));
    }
    let right = h
        .auth
        .verify_email("ana@example.com", &Secret::new(last))
        .await;
    assert!(
        matches!(right, Err(AuthError::InvalidCode)),
        "the spent code is dead"
    );
}

#[tokio::test(start_paused = true)]
async fn silent_mail_server_times_out_and_is_retried() {
    let inner = MemoryMailer::new();
    // No permits: every send waits forever, like a server that accepts the
    // connection and never replies.
    let mailer = Arc::new(StubbornMailer {
        release: tokio::sync::Semaphore::new(0),
        failures: 0.into(),
        attempts: 0.into(),
        inner: inner.clone(),
    });
    let auth = service_with_user(mailer.clone()).await;

    auth.send_verification_code("ana@example.com")
        .await
        .unwrap();
    // Paused time jumps ahead while every task waits, so each attempt's
    // timeout and each back-off pass at once.
    for _ in 0..3600 {
        if mailer.attempts.load(std::sync::atomic::Ordering::SeqCst) == 5 {
            break;
        }
        tokio::time::sleep(StdDuration::from_secs(1)).await;
    }
    assert_eq!(mailer.attempts.load(std::sync::atomic::Ordering::SeqCst), 5);
    assert!(inner.messages().is_empty());
}
