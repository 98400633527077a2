//! The single-page app of each example in headless Chromium: sign-up, code
//! from the loopback SMTP server, verify, login, profile edit, an access
//! token that expires while the page is open, and logout. A screenshot of
//! each view goes to `target/e2e/`.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::webdriver::{free_port, Driver};
use support::{SmtpSink, PASSWORD};

/// Access-token lifetime given to the example, short so it expires while
/// the page is open.
const ACCESS_TTL_SECONDS: u64 = 2;

/// An example server, stopped on drop.
struct Example {
    process: Child,
    origin: String,
    _dir: tempfile::TempDir,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn target_dir() -> PathBuf {
    // Test binaries live in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target profile folder")
        .to_path_buf()
}

fn start_example(name: &str, smtp: &SmtpSink) -> Example {
    let binary = target_dir().join("examples").join(name);
    assert!(
        binary.exists(),
        "{} is missing: `cargo test` builds the examples",
        binary.display()
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let port = free_port();
    let mut process = Command::new(&binary)
        .current_dir(dir.path())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("spa.sqlite3").display()),
        )
        .env("JWT2FA_SECRET", "browser-test-secret-of-32-bytes-or-more")
        .env("SMTP_URL", smtp.url())
        .env("JWT2FA_BIND", format!("127.0.0.1:{port}"))
        .env("JWT2FA_ACCESS_TTL", ACCESS_TTL_SECONDS.to_string())
        .env("RUST_LOG", "info")
        .env_remove("JWT2FA_CORS_ORIGINS")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));

    // The example logs one line when it listens; the rest of its output is
    // drained so the pipe never fills.
    let stdout = process.stdout.take().expect("example stdout");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut ready = Some(ready_tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{name} did not log that it listens"));
    Example {
        process,
        origin: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

async fn walk_the_flow(example: &str) {
    let smtp = SmtpSink::start().await;
    let server = start_example(example, &smtp);
    let driver = Driver::start().await;
    let profile = tempfile::tempdir().expect("browser profile folder");
    let browser = driver.session(profile.path()).await;
    let shots = target_dir().parent().expect("target folder").join("e2e");
    let shot = |step: &str| shots.join(format!("{example}-{step}.png"));

    browser.goto(&format!("{}/", server.origin)).await;
    browser.wait_for_view("view-login").await;
    browser.screenshot(&shot("1-login")).await;

    browser.click("#nav button[data-view=register]").await;
    browser.wait_for_view("view-register").await;
    browser.fill("#register-username", "ana").await;
    browser.fill("#register-email", "ana@example.com").await;
    browser.fill("#register-password", PASSWORD).await;
    browser.screenshot(&shot("2-register")).await;
    browser.click("#register-form button[type=submit]").await;
    browser.wait_for_view("view-verify").await;
    browser.screenshot(&shot("3-verify")).await;

    let code = smtp.code("ana@example.com", 1).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    browser.fill("#verify-code", wrong).await;
    browser.click("#verify-form button[type=submit]").await;
    browser
        .wait_until(
            "the wrong-code message under the code field",
            "return document.getElementById('verify-code-error').textContent.includes('Invalid or expired code.')",
        )
        .await;
    browser.screenshot(&shot("3b-wrong-code")).await;
    browser.fill("#verify-code", &code).await;
    browser.click("#verify-form button[type=submit]").await;
    browser.wait_for_view("view-login").await;
    browser.screenshot(&shot("4-verified")).await;

    browser.fill("#login-username", "ana").await;
    browser.fill("#login-password", PASSWORD).await;
    browser.click("#login-form button[type=submit]").await;
    browser.wait_for_view("view-profile").await;
    browser
        .wait_until(
            "the profile",
            "return document.getElementById('profile-username').textContent === 'ana'",
        )
        .await;
    browser.screenshot(&shot("5-profile")).await;

    browser
        .fill("#profile-bio-input", "<b>Hello</b> from the browser")
        .await;
    browser
        .fill("#profile-avatar-input", "https://example.com/avatar.png")
        .await;
    browser.click("#profile-form button[type=submit]").await;
    browser
        .wait_until(
            "the saved bio",
            "return document.getElementById('profile-bio').textContent === '<b>Hello</b> from the browser'",
        )
        .await;
    let bold = browser
        .script("return document.querySelector('#profile-bio b') !== null")
        .await;
    assert_eq!(bold, false, "the bio is shown as text, never as HTML");
    let avatar = browser
        .script("return document.getElementById('profile-avatar').getAttribute('src')")
        .await;
    assert_eq!(avatar, "https://example.com/avatar.png");
    browser.screenshot(&shot("6-profile-saved")).await;

    // Let the access token expire, then save again: the page must refresh
    // the pair once and retry, staying on the profile.
    let access_before = browser
        .script("return localStorage.getItem('jwt2fa.access')")
        .await;
    tokio::time::sleep(Duration::from_secs(ACCESS_TTL_SECONDS + 1)).await;
    browser
        .fill("#profile-bio-input", "Saved after the token expired")
        .await;
    browser.click("#profile-form button[type=submit]").await;
    browser
        .wait_until(
            "the bio saved with a refreshed token",
            "return document.getElementById('profile-bio').textContent === 'Saved after the token expired'",
        )
        .await;
    let access_after = browser
        .script("return localStorage.getItem('jwt2fa.access')")
        .await;
    assert!(access_after.is_string());
    assert_ne!(
        access_before, access_after,
        "the page refreshed its access token"
    );
    browser.wait_for_view("view-profile").await;
    browser.screenshot(&shot("7-after-refresh")).await;

    browser.click("#logout-button").await;
    browser.wait_for_view("view-login").await;
    let tokens = browser
        .script("return [localStorage.getItem('jwt2fa.access'), localStorage.getItem('jwt2fa.refresh')]")
        .await;
    assert_eq!(tokens, serde_json::json!([null, null]));
    browser.screenshot(&shot("8-logged-out")).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_spa_walks_the_flow() {
    walk_the_flow("axum_spa").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocket_spa_walks_the_flow() {
    walk_the_flow("rocket_spa").await;
}
