//! Storage conformance suite: the contract of [`crate::store`] as runnable
//! cases, so that every [`Store`] implementation is checked the same way.
//!
//! Each case is a public async function that takes a fresh, empty store and
//! panics when the store breaks the contract. [`run_conformance`] runs every
//! case, each on a new store from a factory, and [`conformance_tests!`]
//! expands to one `#[test]` per case.
//!
//! ```
//! use std::sync::Arc;
//! use jwt2fa_core::{MemoryStore, Store};
//!
//! jwt2fa_core::conformance_tests!(|| async {
//!     Arc::new(MemoryStore::new()) as Arc<dyn Store>
//! });
//! # fn main() {}
//! ```
//!
//! The cases use whole-second UTC timestamps, because SQL stores keep unix
//! seconds. They pass `now` explicitly and never read the system clock.
//!
//! The race cases (`*_twenty_at_once_*`) start 20 tokio tasks at once and
//! require a multi-thread runtime: [`conformance_tests!`] builds one, and a
//! hand-written test needs `#[tokio::test(flavor = "multi_thread")]`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::Barrier;

use crate::store::{
    CodeCheck, CodePurpose, CodeRecord, CounterState, CreateUser, NewUser, ProfileChanges,
    RefreshFamily, RefreshTokenRecord, Rotation, UserRecord,
};
use crate::Store;

/// Number of tasks each race case starts at once.
pub const RACE_TASKS: usize = 20;

/// A fresh, empty store for one case, with an optional teardown that runs
/// after the case passed (for example to drop a test database).
///
/// A case that panics skips the teardown, so a fixture that creates
/// databases should also remove leftovers of earlier runs.
pub struct StoreFixture {
    store: Arc<dyn Store>,
    teardown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl StoreFixture {
    /// Wraps a store that needs no teardown.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            teardown: None,
        }
    }

    /// Sets the future that runs after the case. Futures are lazy, so it
    /// can be built together with the store and runs only when awaited.
    pub fn with_teardown(mut self, teardown: impl Future<Output = ()> + Send + 'static) -> Self {
        self.teardown = Some(Box::pin(teardown));
        self
    }

    /// Returns the store under test.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// Runs the teardown, if any.
    pub async fn teardown(self) {
        drop(self.store);
        if let Some(teardown) = self.teardown {
            teardown.await;
        }
    }
}

impl fmt::Debug for StoreFixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreFixture")
            .field("has_teardown", &self.teardown.is_some())
            .finish_non_exhaustive()
    }
}

impl From<Arc<dyn Store>> for StoreFixture {
    fn from(store: Arc<dyn Store>) -> Self {
        Self::new(store)
    }
}

impl<S: Store> From<Arc<S>> for StoreFixture {
    fn from(store: Arc<S>) -> Self {
        Self::new(store)
    }
}

/// Runs one case on a new store from `make_store`, then the fixture's
/// teardown.
pub async fn run_case<F, Fut, T, C, CaseFut>(name: &str, make_store: F, case: C)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
    T: Into<StoreFixture>,
    C: FnOnce(Arc<dyn Store>) -> CaseFut,
    CaseFut: Future<Output = ()>,
{
    // The test harness shows captured output of a failed test, so this line
    // names the case that panicked.
    eprintln!("conformance case: {name}");
    let fixture: StoreFixture = make_store().await.into();
    case(fixture.store()).await;
    fixture.teardown().await;
}

/// Runs every case in [`CASE_NAMES`] order, each on a new store from
/// `make_store`. Must run on a multi-thread tokio runtime.
pub async fn run_conformance<F, Fut, T>(mut make_store: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
    T: Into<StoreFixture>,
{
    macro_rules! run_every_case {
        ([] $($case:ident),* $(,)?) => {
            $( run_case(stringify!($case), &mut make_store, $case).await; )*
        };
    }
    crate::__jwt2fa_conformance_cases!({ run_every_case });
}

macro_rules! case_names {
    ([] $($case:ident),* $(,)?) => {
        /// Names of every case, in the order [`run_conformance`] runs them.
        pub const CASE_NAMES: &[&str] = &[$(stringify!($case)),*];
    };
}
crate::__jwt2fa_conformance_cases!({ case_names });

/// Lists every case once and passes the list to a callback macro, so that
/// [`run_conformance`], [`CASE_NAMES`] and [`conformance_tests!`] never
/// disagree.
#[doc(hidden)]
#[macro_export]
macro_rules! __jwt2fa_conformance_cases {
    ({ $($callback:tt)* } $($args:tt)*) => {
        $($callback)*! {
            [$($args)*]
            create_user_returns_new_record,
            create_user_reports_which_key_is_taken,
            create_user_compares_keys_exactly,
            missing_user_is_none_or_false,
            mark_verified_sets_flag,
            update_profile_changes_only_given_fields,
            set_password_hash_replaces_hash,
            set_active_toggles_flag,
            delete_user_removes_codes_and_tokens,
            check_code_accepts_right_code_once,
            check_code_counts_tries_up_to_max_attempts,
            put_code_replaces_code_and_resets_tries,
            check_code_treats_expires_at_as_dead,
            check_code_without_code_is_no_live_code,
            purge_expired_codes_removes_dead_codes,
            rotate_live_token_stores_successor,
            rotate_replay_within_grace_returns_same_successor,
            rotate_replay_after_grace_revokes_family,
            rotate_in_dead_family_or_after_expiry_is_invalid,
            rotate_unknown_jti_is_invalid,
            revoke_family_is_true_then_false,
            revoke_user_families_counts_live_families,
            purge_expired_tokens_removes_ended_and_revoked_families,
            hit_counts_within_window,
            hit_restarts_count_after_window,
            peek_is_none_without_live_window,
            reset_deletes_counter,
            purge_expired_counters_removes_ended_windows,
            create_user_twenty_at_once_creates_one,
            check_code_twenty_at_once_accepts_one,
            rotate_twenty_at_once_keeps_one_successor,
            hit_twenty_at_once_counts_twenty,
        }
    };
}

/// Expands to one `#[test]` per conformance case, each on its own
/// multi-thread tokio runtime (4 workers).
///
/// The argument is an expression that evaluates to a factory: a closure or
/// function that takes no argument and returns a future of a fresh, empty
/// store, as `Arc<dyn Store>`, `Arc<S>` or [`StoreFixture`]. The expression
/// is evaluated once per test.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::__jwt2fa_conformance_cases!({ $crate::__jwt2fa_conformance_test_fns } $factory);
    };
}

/// Expands the case list into test functions for [`conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __jwt2fa_conformance_test_fns {
    ([$factory:expr] $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testing::block_on_multi_thread(async {
                    $crate::testing::run_case(
                        stringify!($case),
                        $factory,
                        $crate::testing::$case,
                    )
                    .await;
                });
            }
        )*
    };
}

/// Runs `future` to completion on a new multi-thread tokio runtime with 4
/// workers and every driver enabled.
///
/// # Panics
///
/// Panics when the runtime cannot be built.
pub fn block_on_multi_thread<F: Future<Output = ()>>(future: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("failed to build a multi-thread tokio runtime")
        .block_on(future);
}

// Fixtures shared by the cases.

/// Unix time of `at(0)`, 2023-11-14T22:13:20Z.
const BASE_UNIX_SECONDS: i64 = 1_700_000_000;
const CODE: CodePurpose = CodePurpose::VerifyEmail;
const PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

/// Returns the whole-second UTC time `seconds` after the base time.
fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(BASE_UNIX_SECONDS + seconds)
        .expect("base time plus offset is in range")
}

fn new_user(username_key: &str, email_key: &str) -> NewUser {
    NewUser {
        username: username_key.to_uppercase(),
        username_key: username_key.to_owned(),
        email: email_key.to_uppercase(),
        email_key: email_key.to_owned(),
        password_hash: PASSWORD_HASH.to_owned(),
        date_joined: at(0),
    }
}

async fn create(store: &dyn Store, username_key: &str, email_key: &str) -> UserRecord {
    match store
        .create_user(new_user(username_key, email_key))
        .await
        .expect("create_user failed")
    {
        CreateUser::Created(user) => user,
        other => panic!("expected Created for {username_key:?}, got {other:?}"),
    }
}

/// A 32-byte code hash that is not valid UTF-8 and contains a zero byte, so
/// a store must keep it as bytes.
fn code_hash(seed: u8) -> Vec<u8> {
    let mut hash = vec![0xff, 0x00, seed, 0xfe];
    hash.extend((0..28u8).map(|i| i.wrapping_mul(37).wrapping_add(seed)));
    hash
}

fn code(user_id: i64, hash: &[u8], expires_at: OffsetDateTime) -> CodeRecord {
    CodeRecord {
        user_id,
        purpose: CODE,
        code_hash: hash.to_vec(),
        created_at: at(0),
        expires_at,
    }
}

async fn put(store: &dyn Store, code: CodeRecord) {
    store.put_code(code).await.expect("put_code failed");
}

async fn check(
    store: &dyn Store,
    user_id: i64,
    hash: &[u8],
    now: OffsetDateTime,
    max_attempts: u32,
) -> CodeCheck {
    store
        .check_code(user_id, CODE, hash, now, max_attempts)
        .await
        .expect("check_code failed")
}

fn token(jti: &str, family_id: &str, user_id: i64, issued_at: i64) -> RefreshTokenRecord {
    RefreshTokenRecord {
        jti: jti.to_owned(),
        family_id: family_id.to_owned(),
        user_id,
        issued_at: at(issued_at),
        expires_at: at(issued_at) + Duration::days(1),
    }
}

/// Creates a family that lives 30 days from `at(0)` with its first token,
/// issued at `at(0)`, and returns that token.
async fn login(store: &dyn Store, user_id: i64, family_id: &str, jti: &str) -> RefreshTokenRecord {
    login_until(store, user_id, family_id, jti, at(0) + Duration::days(30)).await
}

async fn login_until(
    store: &dyn Store,
    user_id: i64,
    family_id: &str,
    jti: &str,
    family_expires_at: OffsetDateTime,
) -> RefreshTokenRecord {
    let family = RefreshFamily {
        id: family_id.to_owned(),
        user_id,
        created_at: at(0),
        expires_at: family_expires_at,
    };
    let first = token(jti, family_id, user_id, 0);
    store
        .create_family(family, first.clone())
        .await
        .expect("create_family failed");
    first
}

async fn rotate(
    store: &dyn Store,
    jti: &str,
    successor: &RefreshTokenRecord,
    now: OffsetDateTime,
    grace: Duration,
) -> Rotation {
    store
        .rotate(jti, successor.clone(), now, grace)
        .await
        .expect("rotate failed")
}

async fn live(store: &dyn Store, jti: &str, now: OffsetDateTime) -> Option<RefreshTokenRecord> {
    store.live_token(jti, now).await.expect("live_token failed")
}

async fn hit(store: &dyn Store, key: &str, now: OffsetDateTime, window: Duration) -> CounterState {
    store.hit(key, now, window).await.expect("hit failed")
}

async fn peek(store: &dyn Store, key: &str, now: OffsetDateTime) -> Option<CounterState> {
    store.peek(key, now).await.expect("peek failed")
}

fn state(count: u32, window_ends_at: OffsetDateTime, last_hit_at: OffsetDateTime) -> CounterState {
    CounterState {
        count,
        window_ends_at,
        last_hit_at,
    }
}

/// Compares two user records field by field, so a failure names the field.
/// The password hash is compared without being printed.
fn assert_same_user(actual: &UserRecord, expected: &UserRecord, context: &str) {
    assert_eq!(actual.id, expected.id, "{context}: id");
    assert_eq!(actual.username, expected.username, "{context}: username");
    assert_eq!(actual.email, expected.email, "{context}: email");
    assert!(
        actual.password_hash == expected.password_hash,
        "{context}: password_hash differs"
    );
    assert_eq!(
        actual.is_verified, expected.is_verified,
        "{context}: is_verified"
    );
    assert_eq!(actual.is_active, expected.is_active, "{context}: is_active");
    assert_eq!(actual.bio, expected.bio, "{context}: bio");
    assert_eq!(actual.avatar, expected.avatar, "{context}: avatar");
    assert_eq!(
        actual.date_joined, expected.date_joined,
        "{context}: date_joined"
    );
}

async fn user_by_id(store: &dyn Store, id: i64) -> Option<UserRecord> {
    store.user_by_id(id).await.expect("user_by_id failed")
}

fn assert_multi_thread_runtime() {
    assert!(
        matches!(Handle::current().runtime_flavor(), RuntimeFlavor::MultiThread),
        "race cases need a multi-thread tokio runtime, e.g. #[tokio::test(flavor = \"multi_thread\")]"
    );
}

/// Runs `task(i)` for `i` in `0..RACE_TASKS` on spawned tasks released
/// together by a barrier, and returns the outputs in task order.
async fn race<T, F, Fut>(task: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    assert_multi_thread_runtime();
    let barrier = Arc::new(Barrier::new(RACE_TASKS));
    let handles: Vec<_> = (0..RACE_TASKS)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            let future = task(i);
            tokio::spawn(async move {
                barrier.wait().await;
                future.await
            })
        })
        .collect();
    let mut outputs = Vec::with_capacity(RACE_TASKS);
    for handle in handles {
        outputs.push(handle.await.expect("race task panicked"));
    }
    outputs
}

// Users.

/// `create_user` stores the given fields with the defaults
/// (not verified, active, empty bio and avatar), and every lookup finds it.
pub async fn create_user_returns_new_record(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let input = NewUser {
        username: "Ana".to_owned(),
        username_key: "ana".to_owned(),
        email: "Ana@Example.com".to_owned(),
        email_key: "ana@example.com".to_owned(),
        password_hash: PASSWORD_HASH.to_owned(),
        date_joined: at(0),
    };
    let user = match store.create_user(input).await.expect("create_user failed") {
        CreateUser::Created(user) => user,
        other => panic!("expected Created, got {other:?}"),
    };
    let expected = UserRecord {
        id: user.id,
        username: "Ana".to_owned(),
        email: "Ana@Example.com".to_owned(),
        password_hash: PASSWORD_HASH.to_owned(),
        is_verified: false,
        is_active: true,
        bio: String::new(),
        avatar: String::new(),
        date_joined: at(0),
    };
    assert_same_user(&user, &expected, "created record");

    let by_id = user_by_id(store, user.id)
        .await
        .expect("user_by_id found nothing");
    assert_same_user(&by_id, &expected, "user_by_id");
    let by_username = store
        .user_by_username_key("ana")
        .await
        .expect("user_by_username_key failed")
        .expect("user_by_username_key found nothing");
    assert_same_user(&by_username, &expected, "user_by_username_key");
    let by_email = store
        .user_by_email_key("ana@example.com")
        .await
        .expect("user_by_email_key failed")
        .expect("user_by_email_key found nothing");
    assert_same_user(&by_email, &expected, "user_by_email_key");

    let other = create(store, "bob", "bob@example.com").await;
    assert_ne!(other.id, user.id, "two users got the same id");
    assert_eq!(other.username, "BOB");
}

/// Checks that a taken username key gives `UsernameTaken`, a taken email
/// key gives `EmailTaken`, both taken give `UsernameTaken`, and none of
/// them stores anything.
pub async fn create_user_reports_which_key_is_taken(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ana = create(store, "ana", "ana@example.com").await;
    let bob = create(store, "bob", "bob@example.com").await;

    let outcome = store
        .create_user(new_user("ana", "other@example.com"))
        .await
        .expect("create_user failed");
    assert_eq!(outcome, CreateUser::UsernameTaken, "same username key");

    let outcome = store
        .create_user(new_user("other", "ana@example.com"))
        .await
        .expect("create_user failed");
    assert_eq!(outcome, CreateUser::EmailTaken, "same email key");

    let outcome = store
        .create_user(new_user("ana", "bob@example.com"))
        .await
        .expect("create_user failed");
    assert_eq!(
        outcome,
        CreateUser::UsernameTaken,
        "username of one user and email of another"
    );

    let found = store
        .user_by_username_key("other")
        .await
        .expect("user_by_username_key failed");
    assert!(found.is_none(), "a rejected create stored its username");
    let found = store
        .user_by_email_key("other@example.com")
        .await
        .expect("user_by_email_key failed");
    assert!(found.is_none(), "a rejected create stored its email");
    let by_email = store
        .user_by_email_key("ana@example.com")
        .await
        .expect("user_by_email_key failed")
        .expect("ana is gone");
    assert_eq!(by_email.id, ana.id);
    let by_email = store
        .user_by_email_key("bob@example.com")
        .await
        .expect("user_by_email_key failed")
        .expect("bob is gone");
    assert_eq!(by_email.id, bob.id);

    // The rejected attempts left the store usable for new keys.
    create(store, "carol", "carol@example.com").await;
}

/// Keys are compared byte for byte: the caller has already normalized
/// them, so keys that differ in accents, case or trailing space are
/// different users, and a lookup never matches a near key.
pub async fn create_user_compares_keys_exactly(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let pairs = [
        ("josé", "josé@example.com"),
        ("jose", "jose@example.com"),
        ("JOSE", "JOSE@example.com"),
        ("jose ", "jose @example.com"),
        ("jose\u{301}", "jose\u{301}@example.com"),
        ("straße", "straße@example.com"),
        ("strasse", "strasse@example.com"),
    ];
    let mut ids = Vec::new();
    for (username_key, email_key) in pairs {
        let user = create(store, username_key, email_key).await;
        ids.push(user.id);
    }
    for ((username_key, email_key), id) in pairs.iter().zip(&ids) {
        let by_username = store
            .user_by_username_key(username_key)
            .await
            .expect("user_by_username_key failed")
            .unwrap_or_else(|| panic!("no user for username key {username_key:?}"));
        assert_eq!(by_username.id, *id, "username key {username_key:?}");
        let by_email = store
            .user_by_email_key(email_key)
            .await
            .expect("user_by_email_key failed")
            .unwrap_or_else(|| panic!("no user for email key {email_key:?}"));
        assert_eq!(by_email.id, *id, "email key {email_key:?}");
    }
    for missing in ["Jose", "jos", "josé ", "strasse "] {
        let found = store
            .user_by_username_key(missing)
            .await
            .expect("user_by_username_key failed");
        assert!(
            found.is_none(),
            "username key {missing:?} matched another key"
        );
    }
}

/// Every user method reports a missing user as `None` or `false`, not as
/// an error.
pub async fn missing_user_is_none_or_false(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let missing = 987_654_321;

    assert!(user_by_id(store, missing).await.is_none(), "user_by_id");
    let found = store
        .user_by_username_key("nobody")
        .await
        .expect("user_by_username_key failed");
    assert!(found.is_none(), "user_by_username_key");
    let found = store
        .user_by_email_key("nobody@example.com")
        .await
        .expect("user_by_email_key failed");
    assert!(found.is_none(), "user_by_email_key");

    assert!(
        !store
            .mark_verified(missing)
            .await
            .expect("mark_verified failed"),
        "mark_verified"
    );
    let changes = ProfileChanges {
        bio: Some("bio".to_owned()),
        avatar: None,
    };
    let updated = store
        .update_profile(missing, changes)
        .await
        .expect("update_profile failed");
    assert!(updated.is_none(), "update_profile");
    assert!(
        !store
            .set_password_hash(missing, PASSWORD_HASH)
            .await
            .expect("set_password_hash failed"),
        "set_password_hash"
    );
    assert!(
        !store
            .set_active(missing, false)
            .await
            .expect("set_active failed"),
        "set_active"
    );
    assert!(
        !store
            .delete_user(missing)
            .await
            .expect("delete_user failed"),
        "delete_user"
    );
}

/// `mark_verified` sets the flag, also when it is already set, and touches
/// no other user.
pub async fn mark_verified_sets_flag(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ana = create(store, "ana", "ana@example.com").await;
    let bob = create(store, "bob", "bob@example.com").await;
    assert!(store
        .mark_verified(ana.id)
        .await
        .expect("mark_verified failed"));
    let after = user_by_id(store, ana.id).await.expect("ana is gone");
    assert!(after.is_verified);
    assert_same_user(
        &after,
        &UserRecord {
            is_verified: true,
            ..ana.clone()
        },
        "after mark_verified",
    );
    assert!(
        store
            .mark_verified(ana.id)
            .await
            .expect("mark_verified failed"),
        "a second mark_verified of an existing user must return true"
    );
    let bob_after = user_by_id(store, bob.id).await.expect("bob is gone");
    assert!(!bob_after.is_verified, "mark_verified changed another user");
}

/// `update_profile` changes only the fields given and returns the updated
/// record.
pub async fn update_profile_changes_only_given_fields(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ana = create(store, "ana", "ana@example.com").await;
    let bob = create(store, "bob", "bob@example.com").await;
    let bio = "Ünïcödé bio ✓ 🦀 <b>not html</b>\nsecond line".to_owned();
    let long_avatar = format!("https://example.com/{}.png", "a".repeat(2000));

    let updated = store
        .update_profile(
            ana.id,
            ProfileChanges {
                bio: Some(bio.clone()),
                avatar: None,
            },
        )
        .await
        .expect("update_profile failed")
        .expect("update_profile found nothing");
    let expected = UserRecord {
        bio: bio.clone(),
        ..ana.clone()
    };
    assert_same_user(&updated, &expected, "bio only");

    let updated = store
        .update_profile(
            ana.id,
            ProfileChanges {
                bio: None,
                avatar: Some(long_avatar.clone()),
            },
        )
        .await
        .expect("update_profile failed")
        .expect("update_profile found nothing");
    let expected = UserRecord {
        avatar: long_avatar.clone(),
        ..expected
    };
    assert_same_user(&updated, &expected, "avatar only");

    let updated = store
        .update_profile(ana.id, ProfileChanges::default())
        .await
        .expect("update_profile failed")
        .expect("update_profile found nothing");
    assert_same_user(&updated, &expected, "no changes");

    let updated = store
        .update_profile(
            ana.id,
            ProfileChanges {
                bio: Some(String::new()),
                avatar: Some(String::new()),
            },
        )
        .await
        .expect("update_profile failed")
        .expect("update_profile found nothing");
    assert_same_user(&updated, &ana, "both cleared");

    let stored = user_by_id(store, ana.id).await.expect("ana is gone");
    assert_same_user(&stored, &ana, "read back");
    let bob_after = user_by_id(store, bob.id).await.expect("bob is gone");
    assert_same_user(&bob_after, &bob, "other user");
}

/// `set_password_hash` replaces the hash of one user only.
pub async fn set_password_hash_replaces_hash(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ana = create(store, "ana", "ana@example.com").await;
    let bob = create(store, "bob", "bob@example.com").await;
    let new_hash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaG5ld2hhc2g";
    assert!(store
        .set_password_hash(ana.id, new_hash)
        .await
        .expect("set_password_hash failed"));
    let after = user_by_id(store, ana.id).await.expect("ana is gone");
    assert!(after.password_hash == new_hash, "the hash was not replaced");
    assert_same_user(
        &after,
        &UserRecord {
            password_hash: new_hash.to_owned(),
            ..ana
        },
        "after set_password_hash",
    );
    assert!(
        store
            .set_password_hash(after.id, new_hash)
            .await
            .expect("set_password_hash failed"),
        "setting the same hash again must return true"
    );
    let bob_after = user_by_id(store, bob.id).await.expect("bob is gone");
    assert_same_user(&bob_after, &bob, "other user");
}

/// `set_active` deactivates and reactivates, and returns `true` for an
/// existing user even when the flag does not change.
pub async fn set_active_toggles_flag(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ana = create(store, "ana", "ana@example.com").await;
    let bob = create(store, "bob", "bob@example.com").await;
    assert!(store
        .set_active(ana.id, false)
        .await
        .expect("set_active failed"));
    let after = user_by_id(store, ana.id).await.expect("ana is gone");
    assert!(!after.is_active, "set_active(false) left the user active");
    assert!(
        store
            .set_active(ana.id, false)
            .await
            .expect("set_active failed"),
        "set_active to the current value must return true"
    );
    assert!(store
        .set_active(ana.id, true)
        .await
        .expect("set_active failed"));
    let after = user_by_id(store, ana.id).await.expect("ana is gone");
    assert_same_user(&after, &ana, "reactivated");
    let bob_after = user_by_id(store, bob.id).await.expect("bob is gone");
    assert!(bob_after.is_active, "set_active changed another user");
}

/// `delete_user` removes the user with its codes, families and tokens, and
/// frees its keys; other users keep theirs.
pub async fn delete_user_removes_codes_and_tokens(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ana = create(store, "ana", "ana@example.com").await;
    let bob = create(store, "bob", "bob@example.com").await;
    put(store, code(ana.id, &code_hash(1), at(600))).await;
    put(store, code(bob.id, &code_hash(2), at(600))).await;
    login(store, ana.id, "fam-ana", "jti-ana-1").await;
    let second = token("jti-ana-2", "fam-ana", ana.id, 10);
    assert_eq!(
        rotate(store, "jti-ana-1", &second, at(10), Duration::seconds(30)).await,
        Rotation::Rotated
    );
    login(store, bob.id, "fam-bob", "jti-bob-1").await;

    assert!(store.delete_user(ana.id).await.expect("delete_user failed"));

    assert!(user_by_id(store, ana.id).await.is_none(), "user_by_id");
    let found = store
        .user_by_username_key("ana")
        .await
        .expect("user_by_username_key failed");
    assert!(found.is_none(), "user_by_username_key");
    let found = store
        .user_by_email_key("ana@example.com")
        .await
        .expect("user_by_email_key failed");
    assert!(found.is_none(), "user_by_email_key");
    assert_eq!(
        check(store, ana.id, &code_hash(1), at(20), 5).await,
        CodeCheck::NoLiveCode,
        "the deleted user's code survived"
    );
    for jti in ["jti-ana-1", "jti-ana-2"] {
        assert!(
            live(store, jti, at(20)).await.is_none(),
            "token {jti} survived"
        );
    }
    let third = token("jti-ana-3", "fam-ana", ana.id, 20);
    assert_eq!(
        rotate(store, "jti-ana-2", &third, at(20), Duration::seconds(30)).await,
        Rotation::Invalid
    );
    assert!(!store
        .revoke_family("fam-ana", at(20))
        .await
        .expect("revoke_family failed"));
    assert_eq!(
        store
            .revoke_user_families(ana.id, at(20))
            .await
            .expect("revoke_user_families failed"),
        0
    );
    assert!(
        !store.delete_user(ana.id).await.expect("delete_user failed"),
        "a second delete must return false"
    );

    // The other user keeps everything.
    let bob_after = user_by_id(store, bob.id).await.expect("bob is gone");
    assert_same_user(&bob_after, &bob, "other user");
    assert!(live(store, "jti-bob-1", at(20)).await.is_some());
    assert_eq!(
        check(store, bob.id, &code_hash(2), at(20), 5).await,
        CodeCheck::Accepted
    );

    // The keys, the family id and the jti are free again.
    let again = create(store, "ana", "ana@example.com").await;
    assert_ne!(again.id, ana.id, "a new user reused the deleted id");
    login(store, again.id, "fam-ana", "jti-ana-1").await;
    let revived = live(store, "jti-ana-1", at(20))
        .await
        .expect("new token missing");
    assert_eq!(revived.user_id, again.id);
}

// Codes.

/// Checks that the right code is accepted once and then consumed.
pub async fn check_code_accepts_right_code_once(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let user = create(store, "ana", "ana@example.com").await;
    put(store, code(user.id, &code_hash(1), at(600))).await;
    assert_eq!(
        check(store, user.id, &code_hash(1), at(1), 5).await,
        CodeCheck::Accepted
    );
    assert_eq!(
        check(store, user.id, &code_hash(1), at(2), 5).await,
        CodeCheck::NoLiveCode,
        "an accepted code must be consumed"
    );
}

/// Checks that each check counts one try before comparing. The last
/// allowed try can still succeed, after `max_attempts` tries the code is
/// dead, and a check that finds no live code counts nothing.
pub async fn check_code_counts_tries_up_to_max_attempts(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let user = create(store, "ana", "ana@example.com").await;
    let right = code_hash(1);
    let wrong = code_hash(2);

    put(store, code(user.id, &right, at(600))).await;
    for attempt in 1..=2 {
        assert_eq!(
            check(store, user.id, &wrong, at(attempt), 3).await,
            CodeCheck::Rejected,
            "wrong try {attempt}"
        );
    }
    assert_eq!(
        check(store, user.id, &right, at(3), 3).await,
        CodeCheck::Accepted,
        "the third of three tries must still be compared"
    );

    put(store, code(user.id, &right, at(600))).await;
    for attempt in 1..=3 {
        assert_eq!(
            check(store, user.id, &wrong, at(attempt), 3).await,
            CodeCheck::Rejected,
            "wrong try {attempt}"
        );
    }
    assert_eq!(
        check(store, user.id, &right, at(4), 3).await,
        CodeCheck::NoLiveCode,
        "the right code after max_attempts tries"
    );
    assert_eq!(
        check(store, user.id, &wrong, at(5), 3).await,
        CodeCheck::NoLiveCode,
        "a wrong code after max_attempts tries"
    );
    assert_eq!(
        check(store, user.id, &right, at(6), 4).await,
        CodeCheck::Accepted,
        "a higher max_attempts allows one more try"
    );

    put(store, code(user.id, &right, at(600))).await;
    for attempt in 1..=3 {
        assert_eq!(
            check(store, user.id, &right, at(attempt), 0).await,
            CodeCheck::NoLiveCode,
            "max_attempts 0 allows no try"
        );
    }
    assert_eq!(
        check(store, user.id, &wrong, at(4), 1).await,
        CodeCheck::Rejected,
        "checks without a live code must not count tries"
    );
    assert_eq!(
        check(store, user.id, &right, at(5), 1).await,
        CodeCheck::NoLiveCode
    );
}

/// `put_code` replaces the earlier code, its hash and expiry, and sets the
/// try count back to zero.
pub async fn put_code_replaces_code_and_resets_tries(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let user = create(store, "ana", "ana@example.com").await;
    let first = code_hash(1);
    let second = code_hash(2);
    let wrong = code_hash(9);

    put(store, code(user.id, &first, at(100))).await;
    for attempt in 1..=2 {
        assert_eq!(
            check(store, user.id, &wrong, at(attempt), 3).await,
            CodeCheck::Rejected
        );
    }
    put(store, code(user.id, &second, at(600))).await;
    assert_eq!(
        check(store, user.id, &first, at(200), 3).await,
        CodeCheck::Rejected,
        "the replaced code must no longer match"
    );
    assert_eq!(
        check(store, user.id, &wrong, at(201), 3).await,
        CodeCheck::Rejected
    );
    assert_eq!(
        check(store, user.id, &second, at(202), 3).await,
        CodeCheck::Accepted,
        "the new code, checked after the old expiry with tries counted from zero"
    );
}

/// Checks that a code is dead at its `expires_at` and after, and live one
/// second before.
pub async fn check_code_treats_expires_at_as_dead(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ana = create(store, "ana", "ana@example.com").await;
    let bob = create(store, "bob", "bob@example.com").await;
    put(store, code(ana.id, &code_hash(1), at(600))).await;
    put(store, code(bob.id, &code_hash(2), at(600))).await;
    assert_eq!(
        check(store, ana.id, &code_hash(1), at(600), 5).await,
        CodeCheck::NoLiveCode,
        "at expires_at"
    );
    assert_eq!(
        check(store, ana.id, &code_hash(1), at(601), 5).await,
        CodeCheck::NoLiveCode,
        "after expires_at"
    );
    assert_eq!(
        check(store, bob.id, &code_hash(2), at(599), 5).await,
        CodeCheck::Accepted,
        "one second before expires_at"
    );
}

/// Without a code for that user and purpose, every check is `NoLiveCode`.
pub async fn check_code_without_code_is_no_live_code(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ana = create(store, "ana", "ana@example.com").await;
    let bob = create(store, "bob", "bob@example.com").await;
    assert_eq!(
        check(store, ana.id, &code_hash(1), at(1), 5).await,
        CodeCheck::NoLiveCode,
        "no code issued"
    );
    put(store, code(ana.id, &code_hash(1), at(600))).await;
    assert_eq!(
        check(store, bob.id, &code_hash(1), at(1), 5).await,
        CodeCheck::NoLiveCode,
        "another user's code"
    );
    assert_eq!(
        check(store, 987_654_321, &code_hash(1), at(1), 5).await,
        CodeCheck::NoLiveCode,
        "unknown user"
    );
    assert_eq!(
        check(store, ana.id, &code_hash(1), at(2), 5).await,
        CodeCheck::Accepted,
        "the checks of other users must not touch this code"
    );
}

/// `purge_expired_codes` deletes the codes with `expires_at <= now` and
/// returns how many went.
pub async fn purge_expired_codes_removes_dead_codes(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let mut users = Vec::new();
    for (i, expires) in [10, 20, 30].into_iter().enumerate() {
        let user = create(store, &format!("user{i}"), &format!("user{i}@example.com")).await;
        put(store, code(user.id, &code_hash(i as u8), at(expires))).await;
        users.push(user);
    }
    let purge = |now| async move {
        store
            .purge_expired_codes(now)
            .await
            .expect("purge_expired_codes failed")
    };
    assert_eq!(purge(at(5)).await, 0, "nothing expired yet");
    assert_eq!(purge(at(20)).await, 2, "codes expiring at 10 and 20");
    assert_eq!(purge(at(20)).await, 0, "second purge");
    assert_eq!(
        check(store, users[0].id, &code_hash(0), at(5), 5).await,
        CodeCheck::NoLiveCode,
        "a purged code checked before its expiry must be gone"
    );
    assert_eq!(
        check(store, users[2].id, &code_hash(2), at(25), 5).await,
        CodeCheck::Accepted,
        "the live code must survive the purge"
    );
}

// Refresh tokens.

/// Rotating a live token stores the successor as given, and the successor
/// rotates in turn. The used token stays findable while its family lives.
pub async fn rotate_live_token_stores_successor(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let user = create(store, "ana", "ana@example.com").await;
    let first = login(store, user.id, "fam", "jti-1").await;
    assert_eq!(live(store, "jti-1", at(1)).await, Some(first.clone()));

    let second = token("jti-2", "fam", user.id, 60);
    assert_eq!(
        rotate(store, "jti-1", &second, at(60), Duration::seconds(30)).await,
        Rotation::Rotated
    );
    assert_eq!(live(store, "jti-2", at(61)).await, Some(second.clone()));
    assert_eq!(
        live(store, "jti-1", at(61)).await,
        Some(first),
        "live_token finds a used token while its family is live"
    );

    let third = token("jti-3", "fam", user.id, 120);
    assert_eq!(
        rotate(store, "jti-2", &third, at(120), Duration::seconds(30)).await,
        Rotation::Rotated
    );
    assert_eq!(live(store, "jti-3", at(121)).await, Some(third));
}

/// Checks that a used token replayed within the grace window (bounds
/// included) gets the successor that the first use stored. The new
/// candidate is not stored, and the family stays live.
pub async fn rotate_replay_within_grace_returns_same_successor(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let grace = Duration::seconds(10);
    let user = create(store, "ana", "ana@example.com").await;
    login(store, user.id, "fam", "jti-1").await;
    let second = token("jti-2", "fam", user.id, 60);
    assert_eq!(
        rotate(store, "jti-1", &second, at(60), grace).await,
        Rotation::Rotated
    );

    let candidate = token("jti-2b", "fam", user.id, 65);
    assert_eq!(
        rotate(store, "jti-1", &candidate, at(65), grace).await,
        Rotation::Replayed(second.clone()),
        "replay inside the grace window"
    );
    let candidate = token("jti-2c", "fam", user.id, 70);
    assert_eq!(
        rotate(store, "jti-1", &candidate, at(70), grace).await,
        Rotation::Replayed(second.clone()),
        "replay exactly at the end of the grace window"
    );
    for jti in ["jti-2b", "jti-2c"] {
        assert!(
            live(store, jti, at(71)).await.is_none(),
            "a replay stored its candidate {jti}"
        );
    }
    assert_eq!(live(store, "jti-2", at(71)).await, Some(second));
    let third = token("jti-3", "fam", user.id, 71);
    assert_eq!(
        rotate(store, "jti-2", &third, at(71), grace).await,
        Rotation::Rotated,
        "the family must stay live after a replay within grace"
    );
}

/// Checks that a used token replayed after the grace window, or an older
/// ancestor replayed, revokes the whole family, the newest token included.
pub async fn rotate_replay_after_grace_revokes_family(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let grace = Duration::seconds(10);
    let user = create(store, "ana", "ana@example.com").await;
    login(store, user.id, "fam", "jti-1").await;
    let second = token("jti-2", "fam", user.id, 60);
    assert_eq!(
        rotate(store, "jti-1", &second, at(60), grace).await,
        Rotation::Rotated
    );
    let candidate = token("jti-2x", "fam", user.id, 71);
    assert_eq!(
        rotate(store, "jti-1", &candidate, at(71), grace).await,
        Rotation::ReuseDetected {
            family_id: "fam".to_owned(),
            user_id: user.id,
        }
    );
    for jti in ["jti-1", "jti-2"] {
        assert!(
            live(store, jti, at(72)).await.is_none(),
            "{jti} is still live"
        );
    }
    let third = token("jti-3", "fam", user.id, 72);
    assert_eq!(
        rotate(store, "jti-2", &third, at(72), grace).await,
        Rotation::Invalid,
        "the successor of a revoked family must not rotate"
    );
    assert!(
        !store
            .revoke_family("fam", at(73))
            .await
            .expect("revoke_family failed"),
        "the family must already be revoked"
    );

    // An ancestor two rotations back, replayed later.
    login(store, user.id, "fam-b", "b-1").await;
    let b2 = token("b-2", "fam-b", user.id, 100);
    let b3 = token("b-3", "fam-b", user.id, 200);
    assert_eq!(
        rotate(store, "b-1", &b2, at(100), grace).await,
        Rotation::Rotated
    );
    assert_eq!(
        rotate(store, "b-2", &b3, at(200), grace).await,
        Rotation::Rotated
    );
    let candidate = token("b-x", "fam-b", user.id, 300);
    assert_eq!(
        rotate(store, "b-1", &candidate, at(300), grace).await,
        Rotation::ReuseDetected {
            family_id: "fam-b".to_owned(),
            user_id: user.id,
        }
    );
    assert!(
        live(store, "b-3", at(301)).await.is_none(),
        "the newest token is still live"
    );
}

/// Rotation is `Invalid`, and stores nothing, in a family past its end or
/// revoked, and for a token at or past its own `expires_at`.
pub async fn rotate_in_dead_family_or_after_expiry_is_invalid(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let grace = Duration::seconds(10);
    let user = create(store, "ana", "ana@example.com").await;

    // A family that ends at(100).
    login_until(store, user.id, "fam-ended", "e-1", at(100)).await;
    assert!(
        live(store, "e-1", at(99)).await.is_some(),
        "one second before the end"
    );
    assert!(
        live(store, "e-1", at(100)).await.is_none(),
        "at the family's end"
    );
    let successor = token("e-2", "fam-ended", user.id, 100);
    assert_eq!(
        rotate(store, "e-1", &successor, at(100), grace).await,
        Rotation::Invalid,
        "a family at its end"
    );
    assert!(
        live(store, "e-2", at(50)).await.is_none(),
        "an invalid rotation stored its successor"
    );

    // A live family whose token expires one day after at(0).
    let first = login(store, user.id, "fam-live", "l-1").await;
    let successor = token("l-2", "fam-live", user.id, 0);
    assert_eq!(
        rotate(store, "l-1", &successor, first.expires_at, grace).await,
        Rotation::Invalid,
        "a token at its expires_at"
    );
    assert!(
        live(store, "l-2", at(50)).await.is_none(),
        "an invalid rotation stored its successor"
    );
    assert_eq!(
        rotate(
            store,
            "l-1",
            &successor,
            first.expires_at - Duration::seconds(1),
            grace
        )
        .await,
        Rotation::Rotated,
        "one second before the token's expires_at"
    );

    // A revoked family.
    login(store, user.id, "fam-revoked", "r-1").await;
    assert!(store
        .revoke_family("fam-revoked", at(1))
        .await
        .expect("revoke_family failed"));
    let successor = token("r-2", "fam-revoked", user.id, 2);
    assert_eq!(
        rotate(store, "r-1", &successor, at(2), grace).await,
        Rotation::Invalid,
        "an unused token of a revoked family"
    );
}

/// Checks that an unknown jti rotates to `Invalid` and that its successor
/// is not stored.
pub async fn rotate_unknown_jti_is_invalid(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let user = create(store, "ana", "ana@example.com").await;
    login(store, user.id, "fam", "jti-1").await;
    let successor = token("jti-new", "fam", user.id, 10);
    assert_eq!(
        rotate(
            store,
            "no-such-jti",
            &successor,
            at(10),
            Duration::seconds(10)
        )
        .await,
        Rotation::Invalid
    );
    assert!(live(store, "no-such-jti", at(10)).await.is_none());
    assert!(
        live(store, "jti-new", at(10)).await.is_none(),
        "the successor was stored"
    );
    assert!(
        live(store, "jti-1", at(10)).await.is_some(),
        "the family was touched"
    );
}

/// `revoke_family` returns `true` for the first revocation only, `false`
/// for an unknown family, and leaves other families live.
pub async fn revoke_family_is_true_then_false(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let user = create(store, "ana", "ana@example.com").await;
    login(store, user.id, "fam", "jti-1").await;
    login(store, user.id, "fam-other", "other-1").await;
    let revoke = |family_id: &'static str, now| async move {
        store
            .revoke_family(family_id, now)
            .await
            .expect("revoke_family failed")
    };
    assert!(revoke("fam", at(10)).await, "first revocation");
    assert!(!revoke("fam", at(11)).await, "second revocation");
    assert!(!revoke("no-such-family", at(11)).await, "unknown family");
    assert!(live(store, "jti-1", at(12)).await.is_none());
    assert!(
        live(store, "other-1", at(12)).await.is_some(),
        "another family was revoked"
    );
}

/// `revoke_user_families` revokes the user's unrevoked families, returns
/// their number, and leaves other users alone.
pub async fn revoke_user_families_counts_live_families(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ana = create(store, "ana", "ana@example.com").await;
    let bob = create(store, "bob", "bob@example.com").await;
    for i in 1..=3 {
        login(
            store,
            ana.id,
            &format!("ana-fam-{i}"),
            &format!("ana-jti-{i}"),
        )
        .await;
    }
    login(store, bob.id, "bob-fam", "bob-jti").await;
    assert!(store
        .revoke_family("ana-fam-3", at(5))
        .await
        .expect("revoke_family failed"));

    let revoke_all = |user_id, now| async move {
        store
            .revoke_user_families(user_id, now)
            .await
            .expect("revoke_user_families failed")
    };
    assert_eq!(
        revoke_all(ana.id, at(10)).await,
        2,
        "two unrevoked families"
    );
    assert_eq!(revoke_all(ana.id, at(11)).await, 0, "second call");
    assert_eq!(revoke_all(987_654_321, at(11)).await, 0, "unknown user");
    for i in 1..=3 {
        assert!(live(store, &format!("ana-jti-{i}"), at(12)).await.is_none());
    }
    assert!(
        live(store, "bob-jti", at(12)).await.is_some(),
        "another user's family"
    );
}

/// `purge_expired_tokens` deletes families that ended or were revoked, with
/// their tokens, and returns how many families went.
pub async fn purge_expired_tokens_removes_ended_and_revoked_families(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let user = create(store, "ana", "ana@example.com").await;
    login_until(store, user.id, "fam-ends", "ends-1", at(100)).await;
    login(store, user.id, "fam-revoked", "revoked-1").await;
    let kept = login(store, user.id, "fam-kept", "kept-1").await;
    let successor = token("ends-2", "fam-ends", user.id, 10);
    assert_eq!(
        rotate(store, "ends-1", &successor, at(10), Duration::seconds(10)).await,
        Rotation::Rotated
    );
    assert!(store
        .revoke_family("fam-revoked", at(10))
        .await
        .expect("revoke_family failed"));

    let purge = |now| async move {
        store
            .purge_expired_tokens(now)
            .await
            .expect("purge_expired_tokens failed")
    };
    assert_eq!(purge(at(50)).await, 1, "the revoked family");
    assert_eq!(purge(at(100)).await, 1, "the family at its end");
    assert_eq!(purge(at(100)).await, 0, "second purge");
    assert_eq!(live(store, "kept-1", at(100)).await, Some(kept));

    // The purged ids are free again, which a store with leftover rows
    // would reject or shadow.
    let first = login(store, user.id, "fam-ends", "ends-1").await;
    assert_eq!(live(store, "ends-1", at(101)).await, Some(first));
    assert!(
        live(store, "ends-2", at(101)).await.is_none(),
        "a purged token survived"
    );
}

// Counters.

/// Hits within one window count up from 1, keep the window's end, and
/// record the latest hit; distinct keys count apart.
pub async fn hit_counts_within_window(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let window = Duration::seconds(60);
    assert_eq!(
        hit(store, "k", at(0), window).await,
        state(1, at(60), at(0))
    );
    assert_eq!(
        hit(store, "k", at(10), window).await,
        state(2, at(60), at(10))
    );
    let third = hit(store, "k", at(59), window).await;
    assert_eq!(third, state(3, at(60), at(59)));
    assert_eq!(peek(store, "k", at(59)).await, Some(third));

    for key in ["login:josé", "login:jose", "login:JOSE", "login:jose "] {
        assert_eq!(
            hit(store, key, at(0), window).await.count,
            1,
            "key {key:?} shares a count with another key"
        );
    }
}

/// Checks that a hit at or after the window's end restarts the count at 1,
/// with a new window from that hit.
pub async fn hit_restarts_count_after_window(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let window = Duration::seconds(60);
    hit(store, "k", at(0), window).await;
    assert_eq!(hit(store, "k", at(30), window).await.count, 2);
    assert_eq!(
        hit(store, "k", at(60), window).await,
        state(1, at(120), at(60)),
        "a hit at the window's end"
    );
    assert_eq!(
        hit(store, "k", at(61), Duration::seconds(10)).await,
        state(2, at(120), at(61)),
        "a hit inside the window keeps its end whatever the window argument"
    );
    assert_eq!(
        hit(store, "k", at(500), window).await,
        state(1, at(560), at(500)),
        "a hit long after the window's end"
    );
}

/// `peek` returns `None` for a missing counter or one whose window ended,
/// and counts nothing.
pub async fn peek_is_none_without_live_window(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let window = Duration::seconds(60);
    assert_eq!(peek(store, "k", at(0)).await, None, "missing counter");
    let first = hit(store, "k", at(0), window).await;
    assert_eq!(peek(store, "k", at(59)).await, Some(first));
    assert_eq!(peek(store, "k", at(60)).await, None, "at the window's end");
    assert_eq!(
        hit(store, "k", at(30), window).await.count,
        2,
        "peek must neither count nor delete"
    );
}

/// `reset` deletes one counter; resetting a missing counter succeeds.
pub async fn reset_deletes_counter(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let window = Duration::seconds(60);
    hit(store, "k", at(0), window).await;
    hit(store, "k", at(1), window).await;
    hit(store, "other", at(1), window).await;
    store.reset("k").await.expect("reset failed");
    assert_eq!(peek(store, "k", at(2)).await, None);
    assert_eq!(
        hit(store, "k", at(3), window).await,
        state(1, at(63), at(3))
    );
    store
        .reset("missing")
        .await
        .expect("reset of a missing key failed");
    assert_eq!(
        peek(store, "other", at(3)).await.map(|s| s.count),
        Some(1),
        "reset touched another key"
    );
}

/// `purge_expired_counters` deletes counters whose window ended and returns
/// how many went.
pub async fn purge_expired_counters_removes_ended_windows(store: Arc<dyn Store>) {
    let store = store.as_ref();
    for (key, seconds) in [("a", 10), ("b", 20), ("c", 30)] {
        hit(store, key, at(0), Duration::seconds(seconds)).await;
    }
    let purge = |now| async move {
        store
            .purge_expired_counters(now)
            .await
            .expect("purge_expired_counters failed")
    };
    assert_eq!(purge(at(5)).await, 0, "no window ended yet");
    assert_eq!(purge(at(20)).await, 2, "windows ending at 10 and 20");
    assert_eq!(purge(at(20)).await, 0, "second purge");
    assert_eq!(
        peek(store, "c", at(20)).await,
        Some(state(1, at(30), at(0)))
    );
}

// Races.

/// 20 concurrent `create_user` calls with one username key create exactly
/// one user; the same holds for one email key.
pub async fn create_user_twenty_at_once_creates_one(store: Arc<dyn Store>) {
    let outcomes = race(|i| {
        let store = Arc::clone(&store);
        async move {
            store
                .create_user(new_user("racer", &format!("racer{i}@example.com")))
                .await
                .expect("create_user failed")
        }
    })
    .await;
    let created: Vec<&UserRecord> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            CreateUser::Created(user) => Some(user),
            _ => None,
        })
        .collect();
    assert_eq!(created.len(), 1, "one username key: {outcomes:?}");
    let taken = outcomes
        .iter()
        .filter(|outcome| **outcome == CreateUser::UsernameTaken)
        .count();
    assert_eq!(taken, RACE_TASKS - 1, "one username key: {outcomes:?}");
    let stored = store
        .user_by_username_key("racer")
        .await
        .expect("user_by_username_key failed")
        .expect("the created user is missing");
    assert_eq!(stored.id, created[0].id);

    let outcomes = race(|i| {
        let store = Arc::clone(&store);
        async move {
            store
                .create_user(new_user(&format!("mailer{i}"), "shared@example.com"))
                .await
                .expect("create_user failed")
        }
    })
    .await;
    let created = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, CreateUser::Created(_)))
        .count();
    let taken = outcomes
        .iter()
        .filter(|outcome| **outcome == CreateUser::EmailTaken)
        .count();
    assert_eq!(
        (created, taken),
        (1, RACE_TASKS - 1),
        "one email key: {outcomes:?}"
    );
}

/// 20 concurrent checks of the right code: exactly one is `Accepted` and
/// every other finds no live code.
pub async fn check_code_twenty_at_once_accepts_one(store: Arc<dyn Store>) {
    let user = create(store.as_ref(), "ana", "ana@example.com").await;
    put(store.as_ref(), code(user.id, &code_hash(1), at(600))).await;
    let outcomes = race(|_| {
        let store = Arc::clone(&store);
        async move { check(store.as_ref(), user.id, &code_hash(1), at(1), 5).await }
    })
    .await;
    let accepted = outcomes
        .iter()
        .filter(|outcome| **outcome == CodeCheck::Accepted)
        .count();
    let dead = outcomes
        .iter()
        .filter(|outcome| **outcome == CodeCheck::NoLiveCode)
        .count();
    assert_eq!((accepted, dead), (1, RACE_TASKS - 1), "{outcomes:?}");
    assert_eq!(
        check(store.as_ref(), user.id, &code_hash(1), at(2), 5).await,
        CodeCheck::NoLiveCode
    );
}

/// 20 concurrent rotations of one token, each with its own successor:
/// exactly one is `Rotated`, every other is `Replayed` with that same
/// successor, and only that successor is stored.
pub async fn rotate_twenty_at_once_keeps_one_successor(store: Arc<dyn Store>) {
    let user = create(store.as_ref(), "ana", "ana@example.com").await;
    login(store.as_ref(), user.id, "fam", "jti-1").await;
    let candidates: Vec<RefreshTokenRecord> = (0..RACE_TASKS)
        .map(|i| token(&format!("candidate-{i}"), "fam", user.id, 60))
        .collect();
    let outcomes = race(|i| {
        let store = Arc::clone(&store);
        let successor = candidates[i].clone();
        async move {
            store
                .rotate("jti-1", successor, at(60), Duration::seconds(30))
                .await
                .expect("rotate failed")
        }
    })
    .await;

    let winners: Vec<usize> = (0..RACE_TASKS)
        .filter(|&i| outcomes[i] == Rotation::Rotated)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    let winner = &candidates[winners[0]];
    for (i, outcome) in outcomes.iter().enumerate() {
        if i != winners[0] {
            assert_eq!(
                *outcome,
                Rotation::Replayed(winner.clone()),
                "task {i} must get the winner's successor"
            );
        }
    }

    let mut stored = Vec::new();
    for candidate in &candidates {
        if let Some(found) = live(store.as_ref(), &candidate.jti, at(61)).await {
            stored.push(found);
        }
    }
    assert_eq!(
        stored,
        vec![winner.clone()],
        "exactly the winner's successor is stored"
    );
}

/// 20 concurrent hits on one counter count to 20, each hit seeing a
/// different count.
pub async fn hit_twenty_at_once_counts_twenty(store: Arc<dyn Store>) {
    let outcomes = race(|_| {
        let store = Arc::clone(&store);
        async move { hit(store.as_ref(), "k", at(0), Duration::seconds(60)).await }
    })
    .await;
    let mut counts: Vec<u32> = outcomes.iter().map(|state| state.count).collect();
    counts.sort_unstable();
    let expected: Vec<u32> = (1..=RACE_TASKS as u32).collect();
    assert_eq!(counts, expected, "every hit must see its own count");
    for state in &outcomes {
        assert_eq!(state.window_ends_at, at(60), "one window for every hit");
    }
    assert_eq!(
        peek(store.as_ref(), "k", at(1)).await,
        Some(state(RACE_TASKS as u32, at(60), at(0)))
    );
}
