//! The HTTP contract, run against every adapter: each case drives a real
//! server on 127.0.0.1 (SQLite file, loopback SMTP) and asserts what it
//! expects, and every response must be identical across adapters.

mod support;

use std::time::Duration as StdDuration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures::future::join_all;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};
use support::{base_config, compare, Adapter, Call, TestServer, PASSWORD, SECRET};

const ADAPTERS: &[Adapter] = &[Adapter::Axum, Adapter::Rocket];

/// Declares one test per case, each comparing every adapter.
macro_rules! contract {
    ($($name:ident $(with $config:expr)?;)*) => {
        /// Every case with its configuration, for the runs on other databases.
        const CASES: &[(&str, fn() -> jwt2fa_core::AuthConfigBuilder, support::Case)] = &[
            $((
                stringify!($name),
                {
                    #[allow(unused_variables)]
                    let config: fn() -> jwt2fa_core::AuthConfigBuilder = base_config;
                    $(let config: fn() -> jwt2fa_core::AuthConfigBuilder = $config;)?
                    config
                },
                |server| Box::pin(cases::$name(server)),
            ),)*
        ];
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                #[allow(unused_variables)]
                let config: fn() -> jwt2fa_core::AuthConfigBuilder = base_config;
                $(let config: fn() -> jwt2fa_core::AuthConfigBuilder = $config;)?
                compare(stringify!($name), config, |server| Box::pin(cases::$name(server)), ADAPTERS).await;
            }
        )*
    };
}

contract! {
    register_returns_created_user;
    register_rejects_duplicates_ignoring_case;
    email_case_does_not_matter_for_codes;
    register_reports_missing_fields;
    register_reports_invalid_fields;
    malformed_json_is_400;
    json_array_body_is_400;
    text_plain_is_415;
    oversized_body_is_413_and_stores_nothing;
    unknown_path_is_404;
    wrong_method_is_405_with_allow;
    trailing_slash_is_optional;
    whole_flow_succeeds;
    wrong_code_is_400;
    login_before_verification_is_403;
    profile_without_token_is_401;
    profile_with_bad_tokens_is_401;
    put_ignores_read_only_fields;
    profile_rejects_invalid_fields;
    send_code_answers_alike_for_every_address;
    email_with_header_injection_is_400;
    refresh_replay_after_grace_revokes_family with || base_config().refresh_grace(time::Duration::seconds(1));
    concurrent_refreshes_share_one_successor;
    logout_then_refresh_and_logout_again_is_401;
    access_token_at_refresh_is_401;
    code_is_dead_after_five_wrong_tries;
    code_verifies_once_even_when_raced;
    login_failures_throttle_alike with || base_config().login_free_failures(3).login_first_delay(time::Duration::minutes(1));
    blank_username_is_400_and_not_counted;
    deactivated_or_deleted_user_cannot_refresh;
    logout_with_other_users_token_is_403;
    password_change_revokes_old_sessions;
    hand_crafted_tokens_are_401;
    issuer_and_audience_are_checked with || base_config().issuer("jwt2fa-test").audience("jwt2fa-api");
    key_url_headers_are_never_fetched;
    client_rate_limit_is_429 with || base_config().login_limit(Some(jwt2fa_core::RateLimit::new(3, time::Duration::minutes(1))));
}

/// Runs every case on one adapter and database, each on a fresh server.
async fn run_all_cases(adapter: Adapter, database: support::Database) {
    for (name, config, case) in CASES {
        eprintln!("{adapter:?} on {database:?}: {name}");
        let server = support::start_on(adapter, database, config()).await;
        case(&server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_on_postgres_with_axum() {
    run_all_cases(Adapter::Axum, support::Database::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_on_mariadb_with_rocket() {
    run_all_cases(Adapter::Rocket, support::Database::MariaDb).await;
}

fn claims(token_type: &str, user_id: i64, exp: Value) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({"token_type": token_type, "exp": exp, "iat": now, "jti": "handmade", "user_id": user_id})
}

fn sign(header: &Header, claims: &Value, key: &[u8]) -> String {
    jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(key)).unwrap()
}

fn unsigned(header: Value, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("{header}.{payload}.")
}

mod cases {
    use super::*;

    fn assert_status(observed: &support::Observed, status: u16, what: &str) {
        assert_eq!(observed.status, status, "{what}: {:?}", observed.body);
        assert_eq!(
            observed.content_type.as_deref(),
            Some("application/json"),
            "{what}"
        );
    }

    pub async fn register_returns_created_user(s: &TestServer) {
        let (observed, raw) = s.register("Ana", "Ana@Example.com").await;
        assert_status(&observed, 201, "register");
        assert_eq!(raw["username"], "Ana");
        assert_eq!(raw["email"], "Ana@Example.com");
        assert_eq!(raw["is_verified"], false);
        assert!(raw["id"].is_i64());
        assert!(raw.get("password").is_none());
    }

    pub async fn register_rejects_duplicates_ignoring_case(s: &TestServer) {
        s.register("Ana", "Ana@Example.com").await;
        let (observed, raw) = s.register("ana", "other@example.com").await;
        assert_status(&observed, 400, "duplicate username");
        assert!(raw["username"].is_array());
        let (observed, raw) = s.register("bob", "ana@example.COM").await;
        assert_status(&observed, 400, "duplicate email");
        assert!(raw["email"].is_array());
        assert!(raw.get("username").is_none());
    }

    pub async fn email_case_does_not_matter_for_codes(s: &TestServer) {
        s.register("ana", "Ana@Example.com").await;
        let (observed, _) = s
            .post("verify/send/", json!({"email": "ANA@example.COM"}))
            .await;
        assert_status(&observed, 200, "verify/send in another case");
        let code = s.smtp.code("Ana@Example.com", 1).await;
        let (observed, _) = s
            .post("verify/", json!({"email": "ana@EXAMPLE.com", "code": code}))
            .await;
        assert_status(&observed, 200, "verify in another case");
        let (observed, _) = s
            .post("login/", json!({"username": "ANA", "password": PASSWORD}))
            .await;
        assert_status(&observed, 200, "login with the username in another case");
    }

    pub async fn register_reports_missing_fields(s: &TestServer) {
        let (observed, raw) = s.post("register/", json!({})).await;
        assert_status(&observed, 400, "empty object");
        for field in ["username", "email", "password"] {
            assert_eq!(raw[field], json!(["This field is required."]), "{field}");
        }
        let (observed, raw) = s
            .post(
                "register/",
                json!({"username": 5, "email": null, "password": "x"}),
            )
            .await;
        assert_status(&observed, 400, "wrong types");
        assert_eq!(raw["username"], json!(["Not a valid string."]));
        assert_eq!(raw["email"], json!(["This field may not be null."]));
    }

    pub async fn register_reports_invalid_fields(s: &TestServer) {
        let (observed, raw) = s
            .post(
                "register/",
                json!({"username": "has space", "email": "not-an-email", "password": "password"}),
            )
            .await;
        assert_status(&observed, 400, "invalid fields");
        assert!(raw["username"][0]
            .as_str()
            .unwrap()
            .contains("valid username"));
        assert_eq!(raw["email"], json!(["Enter a valid email address."]));
        let reasons = raw["password"].as_array().unwrap();
        assert!(reasons
            .iter()
            .any(|r| r.as_str().unwrap().contains("too easy")));
        let (observed, raw) = s
            .post(
                "register/",
                json!({"username": "ana", "email": "ana@example.com", "password": "ana@example.com"}),
            )
            .await;
        assert_status(&observed, 400, "password equal to email");
        assert!(raw["password"].is_array());
    }

    pub async fn malformed_json_is_400(s: &TestServer) {
        let (observed, raw) = s
            .send(Call {
                method: Method::POST,
                path: "register/",
                content_type: Some("application/json"),
                bearer: None,
                body: b"{\"username\": ".to_vec(),
            })
            .await;
        assert_status(&observed, 400, "malformed JSON");
        assert_eq!(raw["code"], "parse_error");
        assert!(raw["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error"));
    }

    pub async fn json_array_body_is_400(s: &TestServer) {
        let (observed, raw) = s.post("register/", json!([1, 2])).await;
        assert_status(&observed, 400, "array body");
        assert!(raw["non_field_errors"][0]
            .as_str()
            .unwrap()
            .contains("Expected a dictionary"));
    }

    pub async fn text_plain_is_415(s: &TestServer) {
        let (observed, raw) = s
            .send(Call {
                method: Method::POST,
                path: "register/",
                content_type: Some("text/plain"),
                bearer: None,
                body: b"username=ana".to_vec(),
            })
            .await;
        assert_status(&observed, 415, "text/plain");
        assert_eq!(raw["code"], "unsupported_media_type");
    }

    pub async fn oversized_body_is_413_and_stores_nothing(s: &TestServer) {
        let bio = "x".repeat(2 * 1024 * 1024);
        let (observed, raw) = s
            .post(
                "register/",
                json!({"username": "ana", "email": "ana@example.com", "password": PASSWORD, "bio": bio}),
            )
            .await;
        assert_status(&observed, 413, "2 MB body");
        assert_eq!(raw["code"], "payload_too_large");
        let (observed, _) = s.register("ana", "ana@example.com").await;
        assert_status(&observed, 201, "same user after the rejected body");
    }

    pub async fn unknown_path_is_404(s: &TestServer) {
        let (observed, raw) = s.post("nope/", json!({})).await;
        assert_status(&observed, 404, "unknown path");
        assert_eq!(raw["code"], "not_found");
        let (observed, _) = s.get("register/extra/", None).await;
        assert_status(&observed, 404, "path below a route");
        for bare in [
            format!("{}/api/users", s.origin),
            format!("{}/api/users/", s.origin),
        ] {
            let response = reqwest::get(&bare).await.unwrap();
            assert_eq!(response.status(), 404, "{bare}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["code"], "not_found", "{bare}");
        }
    }

    pub async fn wrong_method_is_405_with_allow(s: &TestServer) {
        let (observed, raw) = s.get("register/", None).await;
        assert_status(&observed, 405, "GET register");
        assert_eq!(observed.allow.as_deref(), Some("POST"));
        assert_eq!(raw["detail"], "Method \"GET\" not allowed.");
        let (observed, _) = s.json(Method::DELETE, "profile/", None, json!({})).await;
        assert_status(&observed, 405, "DELETE profile");
        assert_eq!(observed.allow.as_deref(), Some("GET, HEAD, PUT, PATCH"));
    }

    pub async fn trailing_slash_is_optional(s: &TestServer) {
        let (observed, _) = s.register("ana", "ana@example.com").await;
        assert_status(&observed, 201, "with slash");
        let (observed, _) = s
            .post(
                "register",
                json!({"username": "bob", "email": "bob@example.com", "password": PASSWORD}),
            )
            .await;
        assert_status(&observed, 201, "without slash");
        let (observed, _) = s
            .post("verify/send", json!({"email": "bob@example.com"}))
            .await;
        assert_status(&observed, 200, "nested path without slash");
    }

    pub async fn whole_flow_succeeds(s: &TestServer) {
        let (access, refresh) = s.verified_login("ana", "ana@example.com").await;
        let mail = &s.smtp.mails_to("ana@example.com")[0].data;
        for header in [
            "Message-ID: <",
            "MIME-Version: 1.0",
            "Subject: Your verification code",
            "Date: ",
        ] {
            assert!(mail.contains(header), "the mail lacks {header:?}");
        }

        let (observed, raw) = s.get("profile/", Some(&access)).await;
        assert_status(&observed, 200, "profile");
        assert_eq!(raw["username"], "ana");
        assert_eq!(raw["is_verified"], true);
        assert_eq!(raw["bio"], "");
        assert_eq!(raw["avatar"], "");
        let joined = raw["date_joined"].as_str().unwrap();
        assert!(time::OffsetDateTime::parse(
            joined,
            &time::format_description::well_known::Rfc3339
        )
        .is_ok());

        let (observed, raw) = s
            .json(
                Method::PATCH,
                "profile/",
                Some(&access),
                json!({"bio": "Hi <b>there</b>"}),
            )
            .await;
        assert_status(&observed, 200, "patch bio");
        assert_eq!(raw["bio"], "Hi <b>there</b>");
        let (observed, raw) = s
            .json(
                Method::PUT,
                "profile/",
                Some(&access),
                json!({"avatar": "https://example.com/a.png"}),
            )
            .await;
        assert_status(&observed, 200, "put avatar");
        assert_eq!(raw["avatar"], "https://example.com/a.png");
        assert_eq!(
            raw["bio"], "Hi <b>there</b>",
            "PUT changes only the given fields"
        );

        let (observed, raw) = s.post("token/refresh/", json!({"refresh": refresh})).await;
        assert_status(&observed, 200, "refresh");
        let new_refresh = raw["refresh"].as_str().unwrap().to_owned();
        let new_access = raw["access"].as_str().unwrap().to_owned();
        assert_ne!(new_refresh, refresh);

        let (observed, raw) = s
            .json(
                Method::POST,
                "logout/",
                Some(&new_access),
                json!({"refresh": new_refresh}),
            )
            .await;
        assert_status(&observed, 200, "logout");
        assert!(raw["detail"].is_string());
        let (observed, _) = s
            .post("token/refresh/", json!({"refresh": new_refresh}))
            .await;
        assert_status(&observed, 401, "refresh after logout");
    }

    pub async fn wrong_code_is_400(s: &TestServer) {
        s.register("ana", "ana@example.com").await;
        s.post("verify/send/", json!({"email": "ana@example.com"}))
            .await;
        let code = s.smtp.code("ana@example.com", 1).await;
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let (observed, raw) = s
            .post(
                "verify/",
                json!({"email": "ana@example.com", "code": wrong}),
            )
            .await;
        assert_status(&observed, 400, "wrong code");
        assert_eq!(raw["code"], "invalid_code");
        let (observed, raw) = s
            .post(
                "verify/",
                json!({"email": "ana@example.com", "code": "12ab"}),
            )
            .await;
        assert_status(&observed, 400, "malformed code");
        assert!(raw["code"].is_array());
        let (observed, _) = s
            .post(
                "verify/",
                json!({"email": "nobody@example.com", "code": "123456"}),
            )
            .await;
        assert_status(&observed, 400, "unknown email");
    }

    pub async fn login_before_verification_is_403(s: &TestServer) {
        s.register("ana", "ana@example.com").await;
        let (observed, raw) = s
            .post("login/", json!({"username": "ana", "password": PASSWORD}))
            .await;
        assert_status(&observed, 403, "right password, unverified");
        assert_eq!(raw["code"], "not_verified");
        let (observed, raw) = s
            .post(
                "login/",
                json!({"username": "ana", "password": "wrong-password"}),
            )
            .await;
        assert_status(&observed, 401, "wrong password, unverified");
        assert_eq!(raw["code"], "no_active_account");
    }

    pub async fn profile_without_token_is_401(s: &TestServer) {
        let (observed, raw) = s.get("profile/", None).await;
        assert_status(&observed, 401, "no token");
        assert_eq!(raw["code"], "not_authenticated");
        assert!(observed
            .www_authenticate
            .as_deref()
            .unwrap()
            .starts_with("Bearer"));
    }

    pub async fn profile_with_bad_tokens_is_401(s: &TestServer) {
        let (_, refresh) = s.verified_login("ana", "ana@example.com").await;
        let expired = sign(
            &Header::new(Algorithm::HS256),
            &claims("access", 1, json!(1_000_000_000)),
            SECRET.as_bytes(),
        );
        for token in ["garbage", expired.as_str(), refresh.as_str()] {
            let (observed, raw) = s.get("profile/", Some(token)).await;
            assert_status(&observed, 401, "bad token");
            assert_eq!(raw["code"], "token_not_valid");
            assert!(observed
                .www_authenticate
                .as_deref()
                .unwrap()
                .contains("error=\"invalid_token\""));
        }
    }

    pub async fn put_ignores_read_only_fields(s: &TestServer) {
        let (access, _) = s.verified_login("ana", "ana@example.com").await;
        let (observed, raw) = s
            .json(
                Method::PUT,
                "profile/",
                Some(&access),
                json!({"username": "mallory", "email": "m@example.com", "is_verified": false, "id": 99, "bio": "new"}),
            )
            .await;
        assert_status(&observed, 200, "put with read-only fields");
        assert_eq!(raw["username"], "ana");
        assert_eq!(raw["email"], "ana@example.com");
        assert_eq!(raw["is_verified"], true);
        assert_eq!(raw["bio"], "new");
        assert_ne!(raw["id"], 99);
    }

    pub async fn profile_rejects_invalid_fields(s: &TestServer) {
        let (access, _) = s.verified_login("ana", "ana@example.com").await;
        let (observed, raw) = s
            .json(
                Method::PATCH,
                "profile/",
                Some(&access),
                json!({"bio": "x".repeat(1001), "avatar": "javascript:alert(1)"}),
            )
            .await;
        assert_status(&observed, 400, "invalid profile");
        assert!(raw["bio"].is_array());
        assert!(raw["avatar"].is_array());
        let (_, raw) = s.get("profile/", Some(&access)).await;
        assert_eq!(raw["bio"], "", "nothing half-written");
    }

    pub async fn send_code_answers_alike_for_every_address(s: &TestServer) {
        s.verified_login("ana", "ana@example.com").await;
        s.register("bob", "bob@example.com").await;
        s.post("verify/send/", json!({"email": "bob@example.com"}))
            .await;
        s.smtp.code("bob@example.com", 1).await;

        let mut answers = Vec::new();
        for email in [
            "nobody@example.com",
            "carol@example.com",
            "ana@example.com",
            "bob@example.com",
        ] {
            let (observed, _) = s.post("verify/send/", json!({"email": email})).await;
            answers.push(observed);
        }
        s.register("carol", "carol@example.com").await;
        assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
        assert_eq!(answers[0].status, 200);
        let mails = s
            .smtp
            .wait_for("bob@example.com", 2, StdDuration::from_millis(500))
            .await;
        assert_eq!(mails.len(), 1, "the cooldown held the second code back");
    }

    pub async fn email_with_header_injection_is_400(s: &TestServer) {
        let (observed, raw) = s
            .post(
                "verify/send/",
                json!({"email": "a@example.com\r\nBcc: b@example.com"}),
            )
            .await;
        assert_status(&observed, 400, "verify/send injection");
        assert!(raw["email"].is_array());
        let (observed, raw) = s
            .post(
                "register/",
                json!({"username": "ana", "email": "a@example.com\r\nBcc: b@example.com", "password": PASSWORD}),
            )
            .await;
        assert_status(&observed, 400, "register injection");
        assert!(raw["email"].is_array());
        tokio::time::sleep(StdDuration::from_millis(200)).await;
        assert!(s.smtp.mails_to("b@example.com").is_empty());
    }

    pub async fn refresh_replay_after_grace_revokes_family(s: &TestServer) {
        let (_, first) = s.verified_login("ana", "ana@example.com").await;
        let (observed, raw) = s.post("token/refresh/", json!({"refresh": first})).await;
        assert_status(&observed, 200, "first rotation");
        let second = raw["refresh"].as_str().unwrap().to_owned();
        tokio::time::sleep(StdDuration::from_millis(2100)).await;
        let (observed, _) = s.post("token/refresh/", json!({"refresh": first})).await;
        assert_status(&observed, 401, "replay after the grace window");
        let (observed, _) = s.post("token/refresh/", json!({"refresh": second})).await;
        assert_status(&observed, 401, "successor after reuse");
    }

    pub async fn concurrent_refreshes_share_one_successor(s: &TestServer) {
        let (_, refresh) = s.verified_login("ana", "ana@example.com").await;
        for parallel in [2, 20] {
            let (_, refresh) = if parallel == 2 {
                (String::new(), refresh.clone())
            } else {
                s.login("ana").await
            };
            let requests =
                (0..parallel).map(|_| s.post("token/refresh/", json!({"refresh": refresh})));
            let answers = join_all(requests).await;
            let successors: std::collections::HashSet<&str> = answers
                .iter()
                .map(|(_, raw)| raw["refresh"].as_str().unwrap_or(""))
                .collect();
            assert!(
                answers.iter().all(|(observed, _)| observed.status == 200),
                "{parallel} at once"
            );
            assert_eq!(successors.len(), 1, "{parallel} at once give one successor");
            let successor = successors.into_iter().next().unwrap().to_owned();
            let (observed, _) = s
                .post("token/refresh/", json!({"refresh": successor}))
                .await;
            assert_status(&observed, 200, "the shared successor works");
        }
    }

    pub async fn logout_then_refresh_and_logout_again_is_401(s: &TestServer) {
        let (access, refresh) = s.verified_login("ana", "ana@example.com").await;
        let (observed, _) = s
            .json(
                Method::POST,
                "logout/",
                Some(&access),
                json!({"refresh": refresh}),
            )
            .await;
        assert_status(&observed, 200, "logout");
        let (observed, _) = s.post("token/refresh/", json!({"refresh": refresh})).await;
        assert_status(&observed, 401, "refresh after logout");
        let (observed, raw) = s
            .json(
                Method::POST,
                "logout/",
                Some(&access),
                json!({"refresh": refresh}),
            )
            .await;
        assert_status(&observed, 401, "second logout");
        assert_eq!(raw["code"], "token_not_valid");
        let (observed, _) = s
            .json(Method::POST, "logout/", None, json!({"refresh": refresh}))
            .await;
        assert_status(&observed, 401, "logout without Bearer");
    }

    pub async fn access_token_at_refresh_is_401(s: &TestServer) {
        let (access, _) = s.verified_login("ana", "ana@example.com").await;
        let (observed, raw) = s.post("token/refresh/", json!({"refresh": access})).await;
        assert_status(&observed, 401, "access token at refresh");
        assert_eq!(raw["code"], "token_not_valid");
    }

    pub async fn code_is_dead_after_five_wrong_tries(s: &TestServer) {
        s.register("ana", "ana@example.com").await;
        s.post("verify/send/", json!({"email": "ana@example.com"}))
            .await;
        let code = s.smtp.code("ana@example.com", 1).await;
        let wrong = if code == "000000" { "111111" } else { "000000" };
        for _ in 0..6 {
            let (observed, _) = s
                .post(
                    "verify/",
                    json!({"email": "ana@example.com", "code": wrong}),
                )
                .await;
            assert_status(&observed, 400, "wrong code");
        }
        let (observed, raw) = s
            .post("verify/", json!({"email": "ana@example.com", "code": code}))
            .await;
        assert_status(&observed, 400, "right code after the budget is spent");
        assert_eq!(raw["code"], "invalid_code");
    }

    pub async fn code_verifies_once_even_when_raced(s: &TestServer) {
        for (nth, parallel) in [(1usize, 1usize), (2, 20)] {
            let email = format!("user{nth}@example.com");
            s.register(&format!("user{nth}"), &email).await;
            s.post("verify/send/", json!({"email": email})).await;
            let code = s.smtp.code(&email, 1).await;
            let first =
                (0..parallel).map(|_| s.post("verify/", json!({"email": email, "code": code})));
            let answers = join_all(first).await;
            let again = s
                .post("verify/", json!({"email": email, "code": code}))
                .await;
            let successes = answers
                .iter()
                .chain([&again])
                .filter(|(o, _)| o.status == 200)
                .count();
            assert_eq!(successes, 1, "{parallel} at once, then once more");
        }
        tokio::time::sleep(StdDuration::from_millis(200)).await;
        assert_eq!(
            s.smtp.mails_to("user2@example.com").len(),
            1,
            "no extra mail"
        );
    }

    pub async fn login_failures_throttle_alike(s: &TestServer) {
        s.verified_login("ana", "ana@example.com").await;
        for attempt in 1..=5 {
            let hashes_before = s.auth.password_verifications();
            let (known, _) = s
                .post(
                    "login/",
                    json!({"username": "ana", "password": "wrong-password"}),
                )
                .await;
            let (unknown, _) = s
                .post(
                    "login/",
                    json!({"username": "nobody", "password": "wrong-password"}),
                )
                .await;
            assert_eq!(known, unknown, "attempt {attempt}");
            // Each attempt that is not throttled runs one Argon2
            // verification, for the known and the unknown user alike.
            let hashes = s.auth.password_verifications() - hashes_before;
            let expected_hashes = if known.status == 429 { 0 } else { 2 };
            assert_eq!(hashes, expected_hashes, "attempt {attempt}");
            let expected = if attempt <= 3 { 401 } else { 429 };
            assert_eq!(known.status, expected, "attempt {attempt}");
            if expected == 429 {
                assert!(known.retry_after.is_some());
            }
        }
    }

    pub async fn blank_username_is_400_and_not_counted(s: &TestServer) {
        let before = s.auth.password_verifications();
        for body in [
            json!({"username": "", "password": "x"}),
            json!({"password": "x"}),
        ] {
            for _ in 0..10 {
                let (observed, raw) = s.post("login/", body.clone()).await;
                assert_status(&observed, 400, "blank username");
                assert!(raw["username"].is_array());
            }
        }
        assert_eq!(
            s.auth.password_verifications(),
            before,
            "no hashing for blank usernames"
        );
    }

    pub async fn deactivated_or_deleted_user_cannot_refresh(s: &TestServer) {
        let (_, refresh_a) = s.verified_login("ana", "ana@example.com").await;
        let (access_b, refresh_b) = s.verified_login("bob", "bob@example.com").await;
        let ana = s
            .auth
            .authenticate(&s.login("ana").await.0)
            .unwrap()
            .user_id;
        let bob = s.auth.authenticate(&access_b).unwrap().user_id;
        assert!(s.auth.deactivate_user(ana).await.unwrap());
        assert!(s.auth.delete_user(bob).await.unwrap());
        for refresh in [refresh_a, refresh_b] {
            let (observed, raw) = s.post("token/refresh/", json!({"refresh": refresh})).await;
            assert_status(&observed, 401, "refresh of a gone user");
            assert_eq!(raw["code"], "token_not_valid");
        }
        let (observed, _) = s.get("profile/", Some(&access_b)).await;
        assert_status(&observed, 401, "profile of a deleted user");
    }

    pub async fn logout_with_other_users_token_is_403(s: &TestServer) {
        let (access_a, _) = s.verified_login("ana", "ana@example.com").await;
        let (_, refresh_b) = s.verified_login("bob", "bob@example.com").await;
        let (observed, raw) = s
            .json(
                Method::POST,
                "logout/",
                Some(&access_a),
                json!({"refresh": refresh_b}),
            )
            .await;
        assert_status(&observed, 403, "other user's refresh token");
        assert_eq!(raw["code"], "permission_denied");
        let (observed, _) = s
            .post("token/refresh/", json!({"refresh": refresh_b}))
            .await;
        assert_status(&observed, 200, "the other user's family is untouched");
    }

    pub async fn password_change_revokes_old_sessions(s: &TestServer) {
        let (access, refresh) = s.verified_login("ana", "ana@example.com").await;
        let (observed, raw) = s
            .json(
                Method::POST,
                "password/change/",
                Some(&access),
                json!({"old_password": "wrong", "new_password": "new-Granite-42-harbor"}),
            )
            .await;
        assert_status(&observed, 400, "wrong old password");
        assert!(raw["old_password"].is_array());
        let (observed, raw) = s
            .json(
                Method::POST,
                "password/change/",
                Some(&access),
                json!({"old_password": PASSWORD, "new_password": "new-Granite-42-harbor"}),
            )
            .await;
        assert_status(&observed, 200, "password change");
        assert!(raw["refresh"].is_string());
        let (observed, _) = s.post("token/refresh/", json!({"refresh": refresh})).await;
        assert_status(&observed, 401, "old family revoked");
        let (observed, _) = s
            .post(
                "login/",
                json!({"username": "ana", "password": "new-Granite-42-harbor"}),
            )
            .await;
        assert_status(&observed, 200, "login with the new password");
    }

    pub async fn hand_crafted_tokens_are_401(s: &TestServer) {
        let (access, _) = s.verified_login("ana", "ana@example.com").await;
        let user_id = s.auth.authenticate(&access).unwrap().user_id;
        let future = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
        let valid = claims("access", user_id, json!(future));
        let key = SECRET.as_bytes();

        let mut tokens: Vec<(&str, String)> = Vec::new();
        for alg in ["none", "None", "NONE", "nOnE"] {
            tokens.push((
                "alg none",
                unsigned(json!({"alg": alg, "typ": "JWT"}), &valid),
            ));
        }
        tokens.push((
            "HS512 with the real key",
            sign(&Header::new(Algorithm::HS512), &valid, key),
        ));
        tokens.push((
            "wrong key",
            sign(
                &Header::new(Algorithm::HS256),
                &valid,
                b"another-secret-of-at-least-32-bytes!!",
            ),
        ));
        tokens.push((
            "string exp",
            sign(
                &Header::new(Algorithm::HS256),
                &claims("access", user_id, json!("9999999999")),
                key,
            ),
        ));
        let mut no_exp = valid.clone();
        no_exp.as_object_mut().unwrap().remove("exp");
        tokens.push((
            "missing exp",
            sign(&Header::new(Algorithm::HS256), &no_exp, key),
        ));
        tokens.push((
            "expired",
            sign(
                &Header::new(Algorithm::HS256),
                &claims("access", user_id, json!(1_000_000_000)),
                key,
            ),
        ));
        let mut not_yet = valid.clone();
        not_yet["nbf"] = json!(future);
        tokens.push((
            "future nbf",
            sign(&Header::new(Algorithm::HS256), &not_yet, key),
        ));
        tokens.push((
            "refresh type",
            sign(
                &Header::new(Algorithm::HS256),
                &claims("refresh", user_id, json!(future)),
                key,
            ),
        ));
        let mut huge_kid = Header::new(Algorithm::HS256);
        huge_kid.kid = Some("k".repeat(10 * 1024));
        tokens.push(("10 KiB kid", sign(&huge_kid, &valid, key)));
        let parts: Vec<&str> = access.split('.').collect();
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["user_id"] = json!(user_id + 1);
        let tampered = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
        tokens.push((
            "tampered payload",
            format!("{}.{}.{}", parts[0], tampered, parts[2]),
        ));
        tokens.push(("stripped signature", format!("{}.{}.", parts[0], parts[1])));

        for (what, token) in &tokens {
            let (observed, raw) = s.get("profile/", Some(token)).await;
            assert_status(&observed, 401, what);
            assert_eq!(raw["code"], "token_not_valid", "{what}");
        }
        let (observed, _) = s.get("profile/", Some(&access)).await;
        assert_status(&observed, 200, "the genuine token still works");
    }

    pub async fn issuer_and_audience_are_checked(s: &TestServer) {
        let (access, _) = s.verified_login("ana", "ana@example.com").await;
        let user_id = s.auth.authenticate(&access).unwrap().user_id;
        let future = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
        let header = Header::new(Algorithm::HS256);
        let key = SECRET.as_bytes();
        let with = |iss: Option<&str>, aud: Option<&str>| {
            let mut claims = claims("access", user_id, json!(future));
            if let Some(iss) = iss {
                claims["iss"] = json!(iss);
            }
            if let Some(aud) = aud {
                claims["aud"] = json!(aud);
            }
            sign(&header, &claims, key)
        };
        let cases = [
            (
                "wrong iss",
                with(Some("someone-else"), Some("jwt2fa-api")),
                401,
            ),
            (
                "wrong aud",
                with(Some("jwt2fa-test"), Some("another-api")),
                401,
            ),
            ("missing iss and aud", with(None, None), 401),
            (
                "right iss and aud",
                with(Some("jwt2fa-test"), Some("jwt2fa-api")),
                200,
            ),
        ];
        for (what, token, status) in cases {
            let (observed, _) = s.get("profile/", Some(&token)).await;
            assert_status(&observed, status, what);
        }
    }

    pub async fn key_url_headers_are_never_fetched(s: &TestServer) {
        let (access, _) = s.verified_login("ana", "ana@example.com").await;
        let user_id = s.auth.authenticate(&access).unwrap().user_id;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let key_server = format!("http://{}/keys.json", listener.local_addr().unwrap());
        let contacted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = contacted.clone();
        let watcher = tokio::spawn(async move {
            if listener.accept().await.is_ok() {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });

        let future = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
        let attacker_key = b"attacker-chosen-key-of-32-bytes-or-more";
        let mut header = Header::new(Algorithm::HS256);
        header.jku = Some(key_server.clone());
        header.x5u = Some(key_server);
        let token = sign(
            &header,
            &claims("access", user_id, json!(future)),
            attacker_key,
        );
        let (observed, _) = s.get("profile/", Some(&token)).await;
        assert_status(&observed, 401, "token signed with a key behind jku");

        tokio::time::sleep(StdDuration::from_millis(200)).await;
        watcher.abort();
        assert!(
            !contacted.load(std::sync::atomic::Ordering::SeqCst),
            "the key server saw a request"
        );
    }

    pub async fn client_rate_limit_is_429(s: &TestServer) {
        // Requests with missing or blank fields are rejected before the
        // per-client limit counts them.
        for body in [
            json!({"username": "", "password": "x"}),
            json!({"password": "x"}),
        ] {
            for _ in 0..5 {
                let (observed, _) = s.post("login/", body.clone()).await;
                assert_status(&observed, 400, "blank username");
            }
        }
        for attempt in 1..=4 {
            let (observed, _) = s
                .post(
                    "login/",
                    json!({"username": format!("user{attempt}"), "password": "wrong-password"}),
                )
                .await;
            let expected = if attempt <= 3 { 401 } else { 429 };
            assert_eq!(observed.status, expected, "attempt {attempt}");
        }
        let (observed, raw) = s
            .post("login/", json!({"username": "ana", "password": "x"}))
            .await;
        assert_status(&observed, 429, "still limited");
        assert_eq!(raw["code"], "throttled");
        assert_eq!(observed.retry_after.as_deref(), Some("<seconds>"));
    }
}
