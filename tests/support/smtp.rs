//! A minimal SMTP server on loopback that keeps every message it receives,
//! so tests read verification codes out of real mail.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One received message.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub recipients: Vec<String>,
    pub data: String,
}

impl ReceivedMail {
    /// Returns the verification code: the first body line of six digits.
    pub fn code(&self) -> Option<String> {
        let body = self
            .data
            .split("\r\n\r\n")
            .skip(1)
            .collect::<Vec<_>>()
            .join("\r\n\r\n");
        jwt2fa_core::find_code(&body)
    }
}

/// The server and its mailbox.
#[derive(Clone)]
pub struct SmtpSink {
    pub address: SocketAddr,
    mails: Arc<Mutex<Vec<ReceivedMail>>>,
    arrived: Arc<Notify>,
}

impl SmtpSink {
    /// Starts the server on 127.0.0.1 with a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind SMTP sink");
        let sink = Self {
            address: listener.local_addr().expect("SMTP sink address"),
            mails: Arc::default(),
            arrived: Arc::default(),
        };
        let server = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    let _ = server.serve(stream).await;
                });
            }
        });
        sink
    }

    /// Returns the URL to give `SmtpMailer::from_url` or `SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.address)
    }

    async fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        write
            .write_all(b"220 localhost jwt2fa test SMTP\r\n")
            .await?;
        let mut recipients = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_ascii_uppercase();
            if command.starts_with("EHLO") {
                write
                    .write_all(b"250-localhost\r\n250 8BITMIME\r\n")
                    .await?;
            } else if command.starts_with("HELO") {
                write.write_all(b"250 localhost\r\n").await?;
            } else if command.starts_with("MAIL FROM") {
                recipients.clear();
                write.write_all(b"250 OK\r\n").await?;
            } else if command.starts_with("RCPT TO") {
                let address = line.trim_end()[8..]
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>');
                recipients.push(address.to_owned());
                write.write_all(b"250 OK\r\n").await?;
            } else if command == "DATA" {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    // Undo dot-stuffing (RFC 5321 section 4.5.2).
                    let text = line.strip_prefix('.').unwrap_or(&line);
                    data.push_str(text);
                }
                self.mails.lock().unwrap().push(ReceivedMail {
                    recipients: std::mem::take(&mut recipients),
                    data,
                });
                self.arrived.notify_waiters();
                write.write_all(b"250 OK queued\r\n").await?;
            } else if command == "QUIT" {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            } else {
                write.write_all(b"250 OK\r\n").await?;
            }
        }
    }

    /// Returns every message received for `to`.
    pub fn mails_to(&self, to: &str) -> Vec<ReceivedMail> {
        self.mails
            .lock()
            .unwrap()
            .iter()
            .filter(|mail| mail.recipients.iter().any(|r| r.eq_ignore_ascii_case(to)))
            .cloned()
            .collect()
    }

    /// Waits up to `timeout` for message number `count` to `to`, then
    /// returns every message received for `to`.
    pub async fn wait_for(&self, to: &str, count: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            let mails = self.mails_to(to);
            if mails.len() >= count || tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.mails_to(to);
            }
        }
    }

    /// Waits for message number `nth` to `to` and returns its code.
    pub async fn code(&self, to: &str, nth: usize) -> String {
        let mails = self.wait_for(to, nth, Duration::from_secs(10)).await;
        assert!(
            mails.len() >= nth,
            "mail number {nth} to {to} did not arrive"
        );
        mails[nth - 1]
            .code()
            .expect("a six-digit code line in the mail body")
    }
}
