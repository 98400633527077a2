//! Input rules for usernames, emails, passwords, codes and profile fields.

use email_address::{EmailAddress, Options};
use unicode_normalization::UnicodeNormalization;

use crate::error::FieldErrors;
use crate::secret::Secret;

/// Maximum length of a username, in characters (Django's limit).
pub const USERNAME_MAX_CHARS: usize = 150;
/// Maximum length of an email address, in characters (RFC 5321 path limit less brackets).
pub const EMAIL_MAX_CHARS: usize = 254;
/// Minimum length of a password, in characters.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Maximum length of a password, in UTF-8 bytes after NFKC. Longer is rejected, never truncated.
pub const PASSWORD_MAX_BYTES: usize = 1024;
/// Maximum length of a bio, in characters.
pub const BIO_MAX_CHARS: usize = 1000;
/// Maximum length of an avatar URL, in characters.
pub const AVATAR_MAX_CHARS: usize = 2048;
/// Characters of a password that the strength estimator reads. Longer
/// passwords are judged on this prefix, which bounds the estimator's work.
const STRENGTH_PREFIX_CHARS: usize = 100;

/// Returns the NFKC form of `value`.
pub fn nfkc(value: &str) -> String {
    value.nfkc().collect()
}

/// Returns the unique key of a username: NFKC, lowercased, NFKC again.
pub fn username_key(username: &str) -> String {
    nfkc(&nfkc(username).to_lowercase())
}

/// Returns the unique key of an email address: lowercased as a whole.
pub fn email_key(email: &str) -> String {
    email.to_lowercase()
}

/// Checks a username and returns its stored form (trimmed, NFKC).
pub fn username(value: &str, errors: &mut FieldErrors) -> Option<String> {
    let value = nfkc(value.trim());
    if value.is_empty() {
        errors.add("username", "This field may not be blank.");
        return None;
    }
    if value.chars().count() > USERNAME_MAX_CHARS {
        errors.add(
            "username",
            format!("Ensure this field has no more than {USERNAME_MAX_CHARS} characters."),
        );
        return None;
    }
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '@' | '.' | '+' | '-' | '_');
    if !value.chars().all(allowed) {
        errors.add(
            "username",
            "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
        );
        return None;
    }
    Some(value)
}

/// Checks an email address and returns its stored form (trimmed).
///
/// Control characters, CR and LF included, are rejected before parsing, so
/// no address can inject a mail header.
pub fn email(value: &str, errors: &mut FieldErrors) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        errors.add("email", "This field may not be blank.");
        return None;
    }
    if value.chars().count() > EMAIL_MAX_CHARS {
        errors.add(
            "email",
            format!("Ensure this field has no more than {EMAIL_MAX_CHARS} characters."),
        );
        return None;
    }
    let options = Options {
        minimum_sub_domains: 2,
        allow_domain_literal: false,
        allow_display_text: false,
        allow_long_local_parts: false,
    };
    let clean = !value
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '"');
    if !clean || EmailAddress::parse_with_options(value, options).is_err() {
        errors.add("email", "Enter a valid email address.");
        return None;
    }
    Some(value.to_owned())
}

/// Returns whether `value` is a sender mailbox such as
/// `jwt2fa <no-reply@localhost>` or `no-reply@example.com`.
pub fn is_valid_mailbox(value: &str) -> bool {
    let options = Options {
        minimum_sub_domains: 1,
        allow_domain_literal: false,
        allow_display_text: true,
        allow_long_local_parts: false,
    };
    !value.chars().any(char::is_control) && EmailAddress::parse_with_options(value, options).is_ok()
}

/// Checks a new password and returns its NFKC form. Every reason it fails
/// is added to `field`.
pub fn new_password(
    value: &Secret,
    field: &str,
    user_inputs: &[&str],
    errors: &mut FieldErrors,
) -> Option<Secret> {
    let normalized = nfkc(value.expose_secret());
    let before = errors.get(field).map_or(0, <[String]>::len);

    if normalized.is_empty() {
        errors.add(field, "This field may not be blank.");
        return None;
    }
    if normalized.len() > PASSWORD_MAX_BYTES {
        errors.add(
            field,
            format!("Ensure this field has no more than {PASSWORD_MAX_BYTES} bytes."),
        );
        return None;
    }
    if normalized.chars().count() < PASSWORD_MIN_CHARS {
        errors.add(
            field,
            format!(
                "This password is too short. It must contain at least {PASSWORD_MIN_CHARS} characters."
            ),
        );
    }

    let prefix: String = normalized.chars().take(STRENGTH_PREFIX_CHARS).collect();
    let estimate = zxcvbn::zxcvbn(&prefix, user_inputs);
    if estimate.score() < zxcvbn::Score::Three {
        errors.add(field, "This password is too easy to guess.");
        if let Some(feedback) = estimate.feedback() {
            if let Some(warning) = feedback.warning() {
                errors.add(field, warning.to_string());
            }
            for suggestion in feedback.suggestions() {
                errors.add(field, suggestion.to_string());
            }
        }
    }

    let after = errors.get(field).map_or(0, <[String]>::len);
    (after == before).then(|| Secret::new(normalized))
}

/// Checks a 6-digit code.
pub fn code(value: &Secret, errors: &mut FieldErrors) -> bool {
    let code = value.expose_secret();
    let valid = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        errors.add("code", "Enter the 6-digit code from the email.");
    }
    valid
}

/// Checks a bio.
pub fn bio(value: &str, errors: &mut FieldErrors) -> bool {
    let valid = value.chars().count() <= BIO_MAX_CHARS;
    if !valid {
        errors.add(
            "bio",
            format!("Ensure this field has no more than {BIO_MAX_CHARS} characters."),
        );
    }
    valid
}

/// Checks an avatar URL: empty (no avatar), or an absolute http or https URL.
pub fn avatar(value: &str, errors: &mut FieldErrors) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return Some(String::new());
    }
    if value.chars().count() > AVATAR_MAX_CHARS {
        errors.add(
            "avatar",
            format!("Ensure this field has no more than {AVATAR_MAX_CHARS} characters."),
        );
        return None;
    }
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Some(value.to_owned())
        }
        Ok(_) => {
            errors.add("avatar", "Enter an http or https URL.");
            None
        }
        Err(_) => {
            errors.add("avatar", "Enter a valid URL.");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_rules() {
        let mut errors = FieldErrors::new();
        assert_eq!(
            username(" Ana.B+1@x_y-z ", &mut errors).as_deref(),
            Some("Ana.B+1@x_y-z")
        );
        assert!(username("has space", &mut errors).is_none());
        assert!(username(&"a".repeat(151), &mut errors).is_none());
        assert_eq!(errors.get("username").unwrap().len(), 2);
    }

    #[test]
    fn username_key_folds_case_and_width() {
        assert_eq!(username_key("ＡＮＡ"), username_key("ana"));
        assert_ne!(username_key("José"), username_key("Jose"));
    }

    #[test]
    fn email_rejects_header_injection() {
        let mut errors = FieldErrors::new();
        assert!(email("a@example.com\r\nBcc: b@example.com", &mut errors).is_none());
        assert!(email("a@example.com\nBcc: b@example.com", &mut errors).is_none());
        assert!(email("Ana <a@example.com>", &mut errors).is_none());
        assert!(email("a@localhost", &mut errors).is_none());
        assert_eq!(
            email("Ana@Example.com", &mut errors).as_deref(),
            Some("Ana@Example.com")
        );
        assert_eq!(errors.get("email").unwrap().len(), 4);
    }

    #[test]
    fn password_reports_every_reason() {
        let mut errors = FieldErrors::new();
        assert!(new_password(&Secret::new("abc"), "password", &[], &mut errors).is_none());
        let messages = errors.get("password").unwrap();
        assert!(messages.iter().any(|m| m.contains("too short")));
        assert!(messages.iter().any(|m| m.contains("too easy")));
    }

    #[test]
    fn password_close_to_username_is_rejected() {
        let mut errors = FieldErrors::new();
        let result = new_password(
            &Secret::new("marguerite1984"),
            "password",
            &["marguerite1984"],
            &mut errors,
        );
        assert!(result.is_none());
    }

    #[test]
    fn password_over_limit_is_rejected_not_truncated() {
        let mut errors = FieldErrors::new();
        let long = "Xq7!vR2#".repeat(129);
        assert!(new_password(&Secret::new(long), "password", &[], &mut errors).is_none());
        assert!(errors.get("password").unwrap()[0].contains("1024 bytes"));
    }

    #[test]
    fn strong_password_is_accepted() {
        let mut errors = FieldErrors::new();
        let result = new_password(
            &Secret::new("tulip-Orbit-9-quarry"),
            "password",
            &[],
            &mut errors,
        );
        assert!(result.is_some(), "{errors:?}");
    }

    #[test]
    fn avatar_requires_http_url() {
        let mut errors = FieldErrors::new();
        assert!(avatar("javascript:alert(1)", &mut errors).is_none());
        assert!(avatar("/relative.png", &mut errors).is_none());
        assert_eq!(avatar("", &mut errors).as_deref(), Some(""));
        assert!(avatar("https://example.com/a.png", &mut errors).is_some());
    }
}
