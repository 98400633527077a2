//! Verification codes: generation and keyed hashing.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::secret::Secret;
use crate::store::CodePurpose;

/// HKDF label of the key that hashes codes, so that it never equals the
/// token-signing key.
const CODE_KEY_LABEL: &[u8] = b"jwt2fa/verification-code-hmac/v1";

/// Derives the code-hashing key from the service secret with HKDF-SHA-256.
pub(crate) fn derive_code_key(secret: &Secret) -> [u8; 32] {
    let hkdf = Hkdf::<Sha256>::new(None, secret.expose_secret().as_bytes());
    let mut key = [0u8; 32];
    hkdf.expand(CODE_KEY_LABEL, &mut key)
        .expect("32 bytes is a valid HKDF-SHA-256 output length");
    key
}

/// Draws a 6-digit code from the OS CSPRNG. `gen_range` samples without
/// modulo bias, and the format keeps leading zeros.
pub(crate) fn generate_code() -> Secret {
    let value: u32 = rand::rngs::OsRng.gen_range(0..1_000_000);
    Secret::new(format!("{value:06}"))
}

/// Returns HMAC-SHA-256 over purpose, user id and code, so a code checks
/// only for the account and purpose it was issued for.
pub(crate) fn hash_code(key: &[u8; 32], purpose: CodePurpose, user_id: i64, code: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(purpose.as_str().as_bytes());
    mac.update(&[0]);
    mac.update(&user_id.to_be_bytes());
    mac.update(&[0]);
    mac.update(code.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..1000 {
            let code = generate_code();
            let text = code.expose_secret();
            assert_eq!(text.len(), 6);
            assert!(text.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn hash_binds_user_and_purpose() {
        let key = derive_code_key(&Secret::new("0123456789abcdef0123456789abcdef"));
        let one = hash_code(&key, CodePurpose::VerifyEmail, 1, "042137");
        let other_user = hash_code(&key, CodePurpose::VerifyEmail, 2, "042137");
        let no_zero = hash_code(&key, CodePurpose::VerifyEmail, 1, "42137");
        assert_ne!(one, other_user);
        assert_ne!(one, no_zero);
        assert_eq!(one, hash_code(&key, CodePurpose::VerifyEmail, 1, "042137"));
    }
}
