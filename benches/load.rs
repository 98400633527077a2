//! Load benchmark of both examples in release mode, on SQLite and
//! PostgreSQL, each figure beside a baseline measured in the same run.
//!
//! Run with `benches/run.sh`, which installs `wrk`, runs the criterion
//! benchmarks, then this program; it writes `BENCHMARKS.md`.
//!
//! Scenarios, per example and database:
//! 1. `GET /api/users/profile/` with a valid Bearer token (wrk), against a
//!    baseline axum handler that decodes the same HS256 token and reads the
//!    same row with a hand-written sqlx query.
//! 2. `POST /api/users/login/` (wrk), against `permits / t_hash`.
//! 3. `GET /api/users/profile/` at a fixed offered rate, alone and during a
//!    login flood: p99 and errors.
//! 4. Peak RSS while 200 logins run at once, against
//!    `base RSS + permits x Argon2 memory`.
//! 5. `POST /api/users/token/refresh/` requests/s, each worker following its
//!    own rotation chain.

#[path = "../tests/support/smtp.rs"]
mod smtp;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use smtp::SmtpSink;

const SECRET: &str = "load-benchmark-secret-of-32-bytes-or-more";
const PASSWORD: &str = "tulip-Orbit-9-quarry";
/// Length of each throughput run.
const RUN: Duration = Duration::from_secs(10);
/// Offered rate of the fixed-rate profile scenario, requests per second.
const FIXED_RATE: u64 = 500;
/// Concurrent logins of the memory scenario.
const CONCURRENT_LOGINS: usize = 200;
/// Argon2 memory at the default parameters, MiB.
const ARGON2_MIB: f64 = 19.0;

fn main() {
    if std::env::var("JWT2FA_BENCH_ROLE").as_deref() == Ok("baseline") {
        baseline::serve();
        return;
    }
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(run());
}

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// A server process, stopped on drop.
struct Server {
    process: Child,
    address: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Server {
    fn start(mut command: Command, what: &str) -> Self {
        let port = free_port();
        command
            .env("JWT2FA_BIND", format!("127.0.0.1:{port}"))
            .env("JWT2FA_SECRET", SECRET)
            .env("JWT2FA_CLIENT_LIMITS", "off")
            .env("RUST_LOG", "warn,axum_spa=info,rocket_spa=info,load=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut process = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        let stdout = process.stdout.take().expect("stdout");
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
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{what} did not start"));
        Self {
            process,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/api/users/{path}", self.address)
    }

    /// Resident set size now and at its peak, in MiB.
    fn rss(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.id()))
            .expect("read /proc status");
        let field = |name: &str| {
            status
                .lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
                .map_or(0.0, |kib| kib / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Db {
    Sqlite,
    Postgres,
}

impl Db {
    fn name(self) -> &'static str {
        match self {
            Db::Sqlite => "SQLite",
            Db::Postgres => "PostgreSQL",
        }
    }
}

/// A fresh database for one server; PostgreSQL ones are dropped on drop.
struct Database {
    url: String,
    admin_url: Option<String>,
    name: String,
    _dir: tempfile::TempDir,
}

impl Database {
    async fn create(db: Db, label: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        match db {
            Db::Sqlite => Self {
                url: format!("sqlite://{}", dir.path().join("bench.sqlite3").display()),
                admin_url: None,
                name: String::new(),
                _dir: dir,
            },
            Db::Postgres => {
                let admin_url = std::env::var("JWT2FA_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
                let name = format!("jwt2fa_bench_{}_{label}", std::process::id());
                let pool = sqlx::PgPool::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("connect to {admin_url}: {e}"));
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                    .execute(&pool)
                    .await
                    .unwrap();
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&pool)
                    .await
                    .unwrap();
                let mut url = url::Url::parse(&admin_url).expect("PostgreSQL URL");
                url.set_path(&name);
                Self {
                    url: url.to_string(),
                    admin_url: Some(admin_url),
                    name,
                    _dir: dir,
                }
            }
        }
    }

    async fn drop_now(self) {
        if let Some(admin_url) = &self.admin_url {
            if let Ok(pool) = sqlx::PgPool::connect(admin_url).await {
                let _ = sqlx::query(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .execute(&pool)
                .await;
            }
        }
    }
}

/// Registers, verifies and logs in one user; returns the token pair.
async fn prepare_user(
    client: &reqwest::Client,
    server: &Server,
    smtp: &SmtpSink,
) -> (String, String) {
    let email = "bench@example.com";
    let register = client
        .post(server.url("register/"))
        .json(&json!({"username": "bench", "email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("register");
    assert_eq!(register.status(), 201, "register the benchmark user");
    let earlier_mails = smtp.mails_to(email).len();
    client
        .post(server.url("verify/send/"))
        .json(&json!({"email": email}))
        .send()
        .await
        .expect("verify/send");
    let code = smtp.code(email, earlier_mails + 1).await;
    let verify = client
        .post(server.url("verify/"))
        .json(&json!({"email": email, "code": code}))
        .send()
        .await
        .expect("verify");
    assert_eq!(verify.status(), 200, "verify the benchmark user");
    login(client, server)
        .await
        .expect("login the benchmark user")
}

async fn login(client: &reqwest::Client, server: &Server) -> Option<(String, String)> {
    let response = client
        .post(server.url("login/"))
        .json(&json!({"username": "bench", "password": PASSWORD}))
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    Some((
        body["access"].as_str()?.to_owned(),
        body["refresh"].as_str()?.to_owned(),
    ))
}

/// Figures of one wrk run.
#[derive(Debug, Clone, Copy, Default)]
struct WrkResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn parse_latency(text: &str) -> f64 {
    let text = text.trim();
    let (number, factor) = if let Some(us) = text.strip_suffix("us") {
        (us, 0.001)
    } else if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1.0)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1000.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * factor
}

/// Runs wrk against `url` with an optional Lua script and header.
fn wrk(
    url: &str,
    connections: u32,
    duration: Duration,
    header: Option<&str>,
    script: Option<&std::path::Path>,
) -> WrkResult {
    let mut command = Command::new("wrk");
    command
        .arg("-t2")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs()))
        .arg("--latency");
    if let Some(header) = header {
        command.arg("-H").arg(header);
    }
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command
        .arg(url)
        .output()
        .expect("run wrk (install it with apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut result = WrkResult::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rps) = line.strip_prefix("Requests/sec:") {
            result.rps = rps.trim().parse().unwrap_or(0.0);
        } else if let Some(p50) = line.strip_prefix("50%") {
            result.p50_ms = parse_latency(p50);
        } else if let Some(p99) = line.strip_prefix("99%") {
            result.p99_ms = parse_latency(p99);
        } else if let Some(non_2xx) = line.strip_prefix("Non-2xx or 3xx responses:") {
            result.errors += non_2xx.trim().parse::<u64>().unwrap_or(0);
        } else if line.starts_with("Socket errors:") {
            result.errors += line
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    assert!(result.rps > 0.0, "wrk printed no throughput:\n{text}");
    result
}

fn login_script(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("login.lua");
    std::fs::write(
        &path,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{{\"username\": \"bench\", \"password\": \"{PASSWORD}\"}}'\n"
        ),
    )
    .expect("write the wrk script");
    path
}

/// Offers `rate` requests per second for `duration`, however long the
/// responses take (open loop), and returns the p99 latency in ms and the errors.
async fn fixed_rate(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    rate: u64,
    duration: Duration,
) -> (f64, u64, u64) {
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    while start.elapsed() < duration {
        ticker.tick().await;
        let client = client.clone();
        let url = url.to_owned();
        let header = format!("Bearer {token}");
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let ok = client
                .get(&url)
                .header("Authorization", header)
                .send()
                .await
                .is_ok_and(|response| response.status() == 200);
            if !ok {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            sent.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for task in tasks {
        latencies.push(task.await.expect("request task"));
    }
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    (
        p99.as_secs_f64() * 1000.0,
        errors.load(Ordering::Relaxed),
        latencies.len() as u64,
    )
}

/// Runs `workers` refresh chains for `duration`; returns successful refreshes per second.
async fn refresh_chains(server: &Server, workers: usize, duration: Duration) -> (f64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let client = reqwest::Client::new();
    let mut chains = Vec::new();
    for _ in 0..workers {
        chains.push(
            login(&client, server)
                .await
                .expect("login for a refresh chain")
                .1,
        );
    }
    let start = Instant::now();
    for mut refresh in chains {
        let client = client.clone();
        let url = server.url("token/refresh/");
        let done = done.clone();
        let failed = failed.clone();
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < duration {
                let response = client
                    .post(&url)
                    .json(&json!({"refresh": refresh}))
                    .send()
                    .await;
                let next = match response {
                    Ok(response) if response.status() == 200 => response.json::<Value>().await.ok(),
                    _ => None,
                };
                match next.and_then(|body| body["refresh"].as_str().map(str::to_owned)) {
                    Some(token) => {
                        refresh = token;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("refresh chain");
    }
    let elapsed = start.elapsed().as_secs_f64();
    (
        done.load(Ordering::Relaxed) as f64 / elapsed,
        failed.load(Ordering::Relaxed),
    )
}

/// Median time of one Argon2id verification at the default parameters, ms.
fn measure_t_hash() -> f64 {
    use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
    let argon2 = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(19_456, 2, 1, None).expect("parameters"),
    );
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let hash = argon2
        .hash_password(PASSWORD.as_bytes(), &salt)
        .expect("hash")
        .to_string();
    let parsed = PasswordHash::new(&hash).expect("PHC string");
    let mut times: Vec<f64> = (0..21)
        .map(|_| {
            let start = Instant::now();
            argon2
                .verify_password(PASSWORD.as_bytes(), &parsed)
                .expect("verify");
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

struct Row {
    scenario: String,
    server: String,
    db: &'static str,
    figure: String,
    baseline: String,
    ratio: f64,
    target: String,
    met: bool,
}

fn example(name: &str) -> Command {
    Command::new(root().join("target/release/examples").join(name))
}

async fn run() {
    let started = time::OffsetDateTime::now_utc();
    println!("building the examples in release mode");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--example",
            "axum_spa",
            "--example",
            "rocket_spa",
        ])
        .current_dir(root())
        .status()
        .expect("cargo build");
    assert!(status.success(), "building the examples failed");

    let permits = std::thread::available_parallelism().map_or(2, |n| n.get());
    let t_hash = measure_t_hash();
    let ceiling = permits as f64 * 1000.0 / t_hash;
    println!("t_hash = {t_hash:.1} ms, permits = {permits}, login ceiling = {ceiling:.1}/s");

    let scripts = tempfile::tempdir().expect("script folder");
    let login_lua = login_script(scripts.path());
    let smtp = SmtpSink::start().await;
    let client = reqwest::Client::new();
    let mut rows: Vec<Row> = Vec::new();

    for db in [Db::Sqlite, Db::Postgres] {
        // Baseline: the hand-written handler on its own database with the
        // same schema and user.
        let base_db = Database::create(db, "baseline").await;
        let mut seed = example("axum_spa");
        seed.env("DATABASE_URL", &base_db.url)
            .env("SMTP_URL", smtp.url());
        let seeder = Server::start(seed, "schema seeder");
        let smtp_for_seed = smtp.clone();
        let (token, _) = prepare_user(&client, &seeder, &smtp_for_seed).await;
        drop(seeder);
        let mut command = Command::new(std::env::current_exe().expect("benchmark binary"));
        command
            .env("JWT2FA_BENCH_ROLE", "baseline")
            .env("DATABASE_URL", &base_db.url);
        let baseline_server = Server::start(command, "baseline server");
        let baseline = wrk(
            &baseline_server.url("profile/"),
            32,
            RUN,
            Some(&format!("Authorization: Bearer {token}")),
            None,
        );
        assert_eq!(baseline.errors, 0, "baseline answered errors");
        println!("{} baseline profile GET: {:.0}/s", db.name(), baseline.rps);
        drop(baseline_server);
        base_db.drop_now().await;

        for (name, target) in [("axum_spa", 0.8), ("rocket_spa", 0.6)] {
            let database = Database::create(db, name).await;
            let start_server = || {
                let mut command = example(name);
                command
                    .env("DATABASE_URL", &database.url)
                    .env("SMTP_URL", smtp.url());
                Server::start(command, name)
            };
            let server = start_server();
            let mailbox = smtp.clone();
            // Each server has its own database, so the user is new there;
            // the sink keeps earlier mails, which `prepare_user` skips.
            let (access, _) = prepare_user(&client, &server, &mailbox).await;
            let bearer = format!("Authorization: Bearer {access}");

            let profile = wrk(&server.url("profile/"), 32, RUN, Some(&bearer), None);
            rows.push(Row {
                scenario: "profile GET, requests/s (p50 / p99 ms)".into(),
                server: name.into(),
                db: db.name(),
                figure: format!(
                    "{:.0} ({:.2} / {:.2})",
                    profile.rps, profile.p50_ms, profile.p99_ms
                ),
                baseline: format!(
                    "{:.0} ({:.2} / {:.2})",
                    baseline.rps, baseline.p50_ms, baseline.p99_ms
                ),
                ratio: profile.rps / baseline.rps,
                target: format!(">= {target}"),
                met: profile.rps / baseline.rps >= target && profile.errors == 0,
            });

            let logins = wrk(&server.url("login/"), 16, RUN, None, Some(&login_lua));
            rows.push(Row {
                scenario: "login, requests/s".into(),
                server: name.into(),
                db: db.name(),
                figure: format!("{:.1} ({} errors)", logins.rps, logins.errors),
                baseline: format!("{ceiling:.1} = {permits} / {t_hash:.1} ms"),
                ratio: logins.rps / ceiling,
                target: ">= 0.85".into(),
                met: logins.rps / ceiling >= 0.85 && logins.errors == 0,
            });

            let url = server.url("profile/");
            let (p99_alone, errors_alone, sent_alone) =
                fixed_rate(&client, &url, &access, FIXED_RATE, RUN).await;
            let flood_url = server.url("login/");
            let flood_script = login_lua.clone();
            let flood = std::thread::spawn(move || {
                wrk(
                    &flood_url,
                    32,
                    RUN + Duration::from_secs(2),
                    None,
                    Some(&flood_script),
                )
            });
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (p99_flood, errors_flood, sent_flood) =
                fixed_rate(&client, &url, &access, FIXED_RATE, RUN).await;
            let flood = flood.join().expect("login flood");
            rows.push(Row {
                scenario: format!("profile GET at {FIXED_RATE}/s: p99 ms, errors"),
                server: name.into(),
                db: db.name(),
                figure: format!("{p99_flood:.2} ms, {errors_flood}/{sent_flood} errors during a login flood of {:.0}/s", flood.rps),
                baseline: format!("{p99_alone:.2} ms, {errors_alone}/{sent_alone} errors alone"),
                ratio: p99_flood / p99_alone,
                target: "<= 10, no errors".into(),
                met: p99_flood / p99_alone <= 10.0 && errors_flood == 0 && errors_alone == 0,
            });

            let (refresh_rps, refresh_failed) = refresh_chains(&server, 16, RUN).await;
            rows.push(Row {
                scenario: "refresh, requests/s".into(),
                server: name.into(),
                db: db.name(),
                figure: format!("{refresh_rps:.0} ({refresh_failed} failed chains)"),
                baseline: format!("{:.0} (profile GET baseline)", baseline.rps),
                ratio: refresh_rps / baseline.rps,
                target: "no target".into(),
                met: refresh_failed == 0,
            });
            drop(server);

            // Memory: a fresh process, so the peak belongs to this scenario.
            let server = start_server();
            login(&client, &server).await.expect("warm-up login");
            let (base_rss, _) = server.rss();
            let burst = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("client");
            let tasks: Vec<_> = (0..CONCURRENT_LOGINS)
                .map(|_| {
                    let burst = burst.clone();
                    let url = server.url("login/");
                    tokio::spawn(async move {
                        burst
                            .post(url)
                            .json(&json!({"username": "bench", "password": PASSWORD}))
                            .send()
                            .await
                            .map(|response| response.status().as_u16())
                            .unwrap_or(0)
                    })
                })
                .collect();
            let mut statuses = std::collections::BTreeMap::new();
            for task in tasks {
                *statuses.entry(task.await.expect("login task")).or_insert(0) += 1;
            }
            let (_, peak) = server.rss();
            let limit = base_rss + permits as f64 * ARGON2_MIB * 1.5;
            rows.push(Row {
                scenario: format!("peak RSS MiB, {CONCURRENT_LOGINS} logins at once"),
                server: name.into(),
                db: db.name(),
                figure: format!("{peak:.1} (statuses {statuses:?})"),
                baseline: format!("{limit:.1} = {base_rss:.1} + {permits} x {ARGON2_MIB} x 1.5"),
                ratio: peak / limit,
                target: "<= 1".into(),
                met: peak <= limit,
            });
            drop(server);
            database.drop_now().await;
        }
    }

    let criterion = criterion_rows();
    write_report(started, permits, t_hash, &rows, &criterion);
}

/// Reads the criterion results of the core's benchmarks, if they ran.
fn criterion_rows() -> Vec<(String, f64)> {
    let base = root().join("target/criterion");
    let mut rows = Vec::new();
    for id in [
        "access_token_verify/baseline_jsonwebtoken_decode",
        "access_token_verify/jwt2fa_authenticate",
        "access_token_issue/baseline_jsonwebtoken_encode",
        "access_token_issue/jwt2fa_issue_access_token",
        "password/login_one_argon2_verification",
        "verify_code_unknown_address",
    ] {
        let path = base.join(id).join("new/estimates.json");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let value: Value = serde_json::from_str(&text).unwrap_or_default();
            if let Some(ns) = value["median"]["point_estimate"].as_f64() {
                rows.push((id.to_owned(), ns));
            }
        }
    }
    rows
}

fn write_report(
    started: time::OffsetDateTime,
    permits: usize,
    t_hash: f64,
    rows: &[Row],
    criterion: &[(String, f64)],
) {
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .next()
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .map(|line| line.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();

    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Measured {} UTC on {permits} cores ({cpu}), {memory_gib:.0} GiB of memory.",
        started
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    );
    let _ = writeln!(out, "Every figure stands beside a baseline measured in the same run, since absolute figures drift on shared machines.\n");
    let _ = writeln!(out, "Reproduce with `benches/run.sh` (installs `wrk`, runs `cargo bench -p jwt2fa-core --bench hot_paths` and `cargo bench --bench load`, and rewrites this file).\n");
    let _ = writeln!(out, "## Hot functions (criterion, median)\n");
    let _ = writeln!(out, "| benchmark | median |");
    let _ = writeln!(out, "|---|---|");
    for (id, ns) in criterion {
        let figure = if *ns > 1e6 {
            format!("{:.2} ms", ns / 1e6)
        } else {
            format!("{:.2} µs", ns / 1e3)
        };
        let _ = writeln!(out, "| `{id}` | {figure} |");
    }
    let find = |id: &str| {
        criterion
            .iter()
            .find(|(name, _)| name == id)
            .map(|(_, ns)| *ns)
    };
    if let (Some(ours), Some(bare)) = (
        find("access_token_verify/jwt2fa_authenticate"),
        find("access_token_verify/baseline_jsonwebtoken_decode"),
    ) {
        let ratio = ours / bare;
        let _ = writeln!(out, "\nAccess-token verification: {ratio:.2} x bare `jsonwebtoken` decode (target <= 1.5: {}).", if ratio <= 1.5 { "met" } else { "missed" });
    }
    let _ = writeln!(
        out,
        "\n## Servers (release builds, `wrk` with 2 threads, {}-second runs)\n",
        RUN.as_secs()
    );
    let _ = writeln!(out, "t_hash (one Argon2id verification, m = 19456 KiB, t = 2, p = 1) = {t_hash:.1} ms; permits = {permits}.\n");
    let _ = writeln!(
        out,
        "| scenario | server | database | figure | baseline | ratio | target | met |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.2} | {} | {} |",
            row.scenario,
            row.server,
            row.db,
            row.figure,
            row.baseline,
            row.ratio,
            row.target,
            if row.met { "yes" } else { "no" }
        );
    }
    let path = root().join("BENCHMARKS.md");
    let notes_marker = "\n## Notes\n";
    let notes = std::fs::read_to_string(&path)
        .ok()
        .and_then(|old| old.find(notes_marker).map(|at| old[at..].to_owned()))
        .unwrap_or_default();
    out.push_str(&notes);
    std::fs::write(&path, &out).expect("write BENCHMARKS.md");
    println!("{out}");
}

/// The baseline server: one axum handler that decodes the HS256 token and
/// reads the user row with a hand-written query, nothing else.
mod baseline {
    use super::*;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    use axum::{Json, Router};
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    #[derive(serde::Deserialize)]
    struct Claims {
        user_id: i64,
        #[allow(dead_code)]
        exp: i64,
    }

    #[derive(Clone)]
    enum Pool {
        Sqlite(sqlx::SqlitePool),
        Postgres(sqlx::PgPool),
    }

    #[derive(Clone)]
    struct App {
        pool: Pool,
        key: DecodingKey,
        validation: Validation,
    }

    type Row = (i64, String, String, String, String, bool, i64);
    const QUERY_SQLITE: &str = "SELECT id, username, email, bio, avatar, is_verified, date_joined FROM jwt2fa_users WHERE id = ?";
    const QUERY_POSTGRES: &str = "SELECT id, username, email, bio, avatar, is_verified, date_joined FROM jwt2fa_users WHERE id = $1";

    async fn profile(
        State(app): State<App>,
        headers: HeaderMap,
    ) -> Result<Json<Value>, StatusCode> {
        let token = headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or(StatusCode::UNAUTHORIZED)?;
        let claims = jsonwebtoken::decode::<Claims>(token, &app.key, &app.validation)
            .map_err(|_| StatusCode::UNAUTHORIZED)?
            .claims;
        let row: Row = match &app.pool {
            Pool::Sqlite(pool) => {
                sqlx::query_as(QUERY_SQLITE)
                    .bind(claims.user_id)
                    .fetch_one(pool)
                    .await
            }
            Pool::Postgres(pool) => {
                sqlx::query_as(QUERY_POSTGRES)
                    .bind(claims.user_id)
                    .fetch_one(pool)
                    .await
            }
        }
        .map_err(|_| StatusCode::UNAUTHORIZED)?;
        let joined = time::OffsetDateTime::from_unix_timestamp(row.6)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        Ok(Json(json!({
            "id": row.0, "username": row.1, "email": row.2, "bio": row.3,
            "avatar": row.4, "is_verified": row.5, "date_joined": joined,
        })))
    }

    pub fn serve() {
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        runtime.block_on(async {
            let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
            let bind = std::env::var("JWT2FA_BIND").expect("JWT2FA_BIND");
            let secret = std::env::var("JWT2FA_SECRET").expect("JWT2FA_SECRET");
            let pool = if url.starts_with("sqlite") {
                Pool::Sqlite(sqlx::SqlitePool::connect(&url).await.expect("SQLite"))
            } else {
                Pool::Postgres(sqlx::PgPool::connect(&url).await.expect("PostgreSQL"))
            };
            let mut validation = Validation::new(Algorithm::HS256);
            validation.validate_aud = false;
            let app = App {
                pool,
                key: DecodingKey::from_secret(secret.as_bytes()),
                validation,
            };
            let router = Router::new()
                .route("/api/users/profile/", get(profile))
                .with_state(app);
            let listener = tokio::net::TcpListener::bind(&bind).await.expect("bind");
            println!("baseline listening on http://{bind}/");
            axum::serve(listener, router).await.expect("serve");
        });
    }
}
