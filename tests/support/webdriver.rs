//! A small W3C WebDriver client over reqwest, enough to drive headless
//! Chromium through ChromeDriver from Debian's packages.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A running ChromeDriver, stopped on drop.
pub struct Driver {
    process: Child,
    pub url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Returns a free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

impl Driver {
    /// Starts ChromeDriver on a free port and waits until it is ready.
    pub async fn start() -> Self {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: install Debian's chromium and chromium-driver packages (.ci/run does)"
            );
        }
        let port = free_port();
        let process = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Self {
            process,
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..100 {
            let status = client.get(format!("{}/status", driver.url)).send().await;
            if let Ok(response) = status {
                let body: Value = response.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    return driver;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not become ready at {}", driver.url);
    }

    /// Opens a headless Chromium session with a fresh profile.
    pub async fn session(&self, profile_dir: &Path) -> Session {
        let capabilities = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--window-size=1100,1000",
                        format!("--user-data-dir={}", profile_dir.display()),
                    ]
                }
            }}
        });
        let client = reqwest::Client::new();
        let response: Value = client
            .post(format!("{}/session", self.url))
            .json(&capabilities)
            .send()
            .await
            .expect("create a WebDriver session")
            .json()
            .await
            .expect("session response");
        let id = response["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {response}"))
            .to_owned();
        Session {
            client,
            base: format!("{}/session/{id}", self.url),
        }
    }
}

/// One browser session.
pub struct Session {
    client: reqwest::Client,
    base: String,
}

impl Session {
    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request
            .send()
            .await
            .expect("WebDriver command sent")
            .json()
            .await
            .expect("WebDriver response");
        if let Some(error) = response["value"]["error"].as_str() {
            panic!(
                "WebDriver {path} failed: {error}: {}",
                response["value"]["message"]
            );
        }
        response["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn find(&self, selector: &str) -> String {
        let value = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": selector})),
            )
            .await;
        value[ELEMENT_KEY]
            .as_str()
            .expect("element reference")
            .to_owned()
    }

    /// Replaces the value of an input.
    pub async fn fill(&self, selector: &str, text: &str) {
        let element = self.find(selector).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    pub async fn click(&self, selector: &str) {
        let element = self.find(selector).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Runs a script in the page and returns its result.
    pub async fn script(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Waits up to 15 seconds until `script` returns `true`.
    pub async fn wait_until(&self, what: &str, script: &str) {
        for _ in 0..150 {
            if self.script(script).await == true {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let notice = self.script("return document.body.innerText").await;
        panic!("timed out waiting for {what}; page text: {notice}");
    }

    /// Waits until the view with this id is the visible one.
    pub async fn wait_for_view(&self, view: &str) {
        let script =
            format!("const v = document.getElementById('{view}'); return !!v && !v.hidden;");
        self.wait_until(view, &script).await;
    }

    /// Saves a PNG screenshot.
    pub async fn screenshot(&self, path: &Path) {
        let value = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let png = STANDARD
            .decode(value.as_str().expect("base64 screenshot"))
            .expect("PNG bytes");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("screenshot folder");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    pub async fn close(self) {
        let _ = self.client.delete(&self.base).send().await;
    }
}
