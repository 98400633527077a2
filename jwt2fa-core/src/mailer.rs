//! Mail delivery: the `Mailer` trait and its SMTP, console and in-memory
//! implementations.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::Notify;

/// An email to send: one plain-text part.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailMessage {
    /// Sender, such as `jwt2fa <no-reply@localhost>`.
    pub from: String,
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
}

impl fmt::Debug for EmailMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body carries a code and the recipient is personal data.
        f.debug_struct("EmailMessage")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A failed delivery.
#[derive(Debug, thiserror::Error)]
#[error("mail delivery failed: {0}")]
pub struct MailError(pub String);

/// Sends email.
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Sends one message.
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError>;

    /// Returns a short description for the start-up log, without secrets.
    fn describe(&self) -> String;
}

/// The development mailer: writes each message, code included, to the log
/// at info level, as Django's console email backend does.
///
/// This is the only place where jwt2fa logs a code, because printing the
/// message is this mailer's whole job. Never use it in production.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsoleMailer;

#[async_trait]
impl Mailer for ConsoleMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        tracing::info!(
            target: "jwt2fa::console_mailer",
            "development console mailer, message not sent:\nFrom: {}\nTo: {}\nSubject: {}\n\n{}",
            message.from,
            message.to,
            message.subject,
            message.text
        );
        Ok(())
    }

    fn describe(&self) -> String {
        "console (development only: messages are printed to the log, not sent)".to_owned()
    }
}

/// Keeps every message in memory, for tests.
#[derive(Clone, Default)]
pub struct MemoryMailer {
    messages: Arc<Mutex<Vec<EmailMessage>>>,
    arrived: Arc<Notify>,
}

impl MemoryMailer {
    /// Creates an empty mailbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns every message sent so far.
    pub fn messages(&self) -> Vec<EmailMessage> {
        self.messages
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Returns the messages sent to `to`.
    pub fn messages_to(&self, to: &str) -> Vec<EmailMessage> {
        self.messages()
            .into_iter()
            .filter(|message| message.to == to)
            .collect()
    }

    /// Waits until at least `count` messages were sent to `to` or
    /// `timeout` passes, then returns the messages sent to `to`.
    pub async fn wait_for(
        &self,
        to: &str,
        count: usize,
        timeout: std::time::Duration,
    ) -> Vec<EmailMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            let found = self.messages_to(to);
            if found.len() >= count {
                return found;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.messages_to(to);
            }
        }
    }
}

#[async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        self.messages
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(message.clone());
        self.arrived.notify_waiters();
        Ok(())
    }

    fn describe(&self) -> String {
        "in-memory (test mailbox)".to_owned()
    }
}

/// Returns the first line of `text` that is exactly six ASCII digits: the
/// verification code in a message built by jwt2fa.
pub fn find_code(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|line| line.len() == 6 && line.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned)
}

#[cfg(feature = "smtp")]
pub use smtp::SmtpMailer;

#[cfg(feature = "smtp")]
mod smtp {
    use super::*;
    use lettre::message::{Mailbox, SinglePart};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    /// Sends mail over SMTP with lettre (tokio, rustls).
    #[derive(Clone)]
    pub struct SmtpMailer {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        description: String,
    }

    impl fmt::Debug for SmtpMailer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("SmtpMailer")
                .field("server", &self.description)
                .finish_non_exhaustive()
        }
    }

    impl SmtpMailer {
        /// Builds a mailer from a URL, as lettre reads it:
        /// `smtp://host:port` (plain), `smtp://host:port?tls=required`
        /// (STARTTLS), `smtps://host:port` (TLS from the start), with
        /// optional `user:password@` for authentication.
        ///
        /// # Errors
        ///
        /// Returns a message naming what is wrong with the URL.
        pub fn from_url(url: &str) -> Result<Self, String> {
            let parsed = url::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
            if !matches!(parsed.scheme(), "smtp" | "smtps") {
                return Err(format!(
                    "unsupported scheme {:?}, expected smtp or smtps",
                    parsed.scheme()
                ));
            }
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err("the URL has no host".to_owned());
            }
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map_err(|e| format!("invalid SMTP URL: {e}"))?
                .timeout(Some(std::time::Duration::from_secs(30)))
                .build();
            Ok(Self {
                transport,
                description: format!("SMTP {}", redact_url(url)),
            })
        }
    }

    #[async_trait]
    impl Mailer for SmtpMailer {
        async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
            let from: Mailbox = message
                .from
                .parse()
                .map_err(|e| MailError(format!("invalid sender address: {e}")))?;
            let to: Mailbox = message
                .to
                .parse()
                .map_err(|e| MailError(format!("invalid recipient address: {e}")))?;
            // A single part gives the MIME-Version header, and `message_id`
            // without a value generates a unique Message-ID: some providers
            // reject or file as spam mail without them.
            let email = Message::builder()
                .from(from)
                .to(to)
                .subject(message.subject.clone())
                .message_id(None)
                .singlepart(SinglePart::plain(message.text.clone()))
                .map_err(|e| MailError(format!("could not build the message: {e}")))?;
            self.transport
                .send(email)
                .await
                .map_err(|e| MailError(e.to_string()))?;
            Ok(())
        }

        fn describe(&self) -> String {
            self.description.clone()
        }
    }
}

/// Returns `url` with any password replaced by `***`, for logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_code_keeps_leading_zero() {
        let text = "Your code is:\n\n042137\n\nIt is valid for 10 minutes.";
        assert_eq!(find_code(text).as_deref(), Some("042137"));
    }

    #[test]
    fn redact_url_hides_password() {
        let redacted = redact_url("postgres://app:s3cret@db:5432/app");
        assert!(!redacted.contains("s3cret"));
        assert!(redacted.contains("app:***@db"));
    }

    #[test]
    fn message_debug_hides_body() {
        let message = EmailMessage {
            from: "a@b.c".into(),
            to: "d@e.f".into(),
            subject: "Code".into(),
            text: "123456".into(),
        };
        let debug = format!("{message:?}");
        assert!(!debug.contains("123456"));
        assert!(!debug.contains("d@e.f"));
    }
}
