//! JWT access and refresh tokens: HS256 with typed claims.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::AuthConfig;
use crate::error::AuthError;

/// The kind of a token. A token of one kind is never accepted as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// Short-lived token sent as `Authorization: Bearer`.
    Access,
    /// Long-lived token exchanged for a new pair at the refresh endpoint.
    Refresh,
}

/// The claims of a jwt2fa token.
///
/// Every claim is typed, so a claim of the wrong JSON type (such as `exp`
/// as a string) fails decoding instead of being skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Access or refresh.
    pub token_type: TokenType,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issue time, seconds since the Unix epoch.
    pub iat: i64,
    /// Unique token id.
    pub jti: String,
    /// The user the token was issued to.
    pub user_id: i64,
    /// Refresh-token family; only refresh tokens carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
    /// Not-before time; checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issuer; written and checked when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience; written and checked when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// An access and a refresh token, as the login and refresh endpoints return them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    /// The access token.
    pub access: String,
    /// The refresh token.
    pub refresh: String,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenPair([REDACTED])")
    }
}

/// Signs and checks tokens with the configured key.
pub(crate) struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    header: Header,
    leeway: i64,
    issuer: Option<String>,
    audience: Option<String>,
}

/// Returns 128 random bits from the OS CSPRNG as 32 hex digits.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TokenKeys {
    pub(crate) fn new(config: &AuthConfig) -> Self {
        let key = config.secret.expose_secret().as_bytes();

        // The library checks only the signature and the algorithm. Expiry
        // and not-before are checked against the injected clock, and
        // issuer and audience below, so every check uses one time source.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::from(["exp".to_owned()]);

        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            header: Header::new(Algorithm::HS256),
            leeway: config.leeway.whole_seconds(),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        }
    }

    /// Builds the claims of a new token.
    pub(crate) fn claims(
        &self,
        token_type: TokenType,
        user_id: i64,
        jti: String,
        family: Option<String>,
        issued_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Claims {
        Claims {
            token_type,
            exp: expires_at.unix_timestamp(),
            iat: issued_at.unix_timestamp(),
            jti,
            user_id,
            fam: family,
            nbf: None,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        }
    }

    /// Signs claims. The same claims always give the same token, which the
    /// refresh grace window relies on to return a successor again.
    pub(crate) fn encode(&self, claims: &Claims) -> Result<String, AuthError> {
        jsonwebtoken::encode(&self.header, claims, &self.encoding)
            .map_err(|e| AuthError::Internal(format!("JWT encoding failed: {e}")))
    }

    /// Checks a token's signature, algorithm, type, expiry, not-before,
    /// issuer and audience, and returns its claims.
    pub(crate) fn decode(
        &self,
        token: &str,
        expected: TokenType,
        now: OffsetDateTime,
    ) -> Result<Claims, AuthError> {
        // A JWT of a few hundred bytes is normal; anything near this size is
        // not one of ours and is rejected before any parsing.
        if token.len() > 8192 {
            return Err(AuthError::InvalidToken);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| AuthError::InvalidToken)?;
        let claims = data.claims;
        let now = now.unix_timestamp();

        if claims.token_type != expected {
            return Err(AuthError::InvalidToken);
        }
        if claims.exp + self.leeway <= now {
            return Err(AuthError::InvalidToken);
        }
        if claims.nbf.is_some_and(|nbf| nbf - self.leeway > now) {
            return Err(AuthError::InvalidToken);
        }
        if self.issuer.is_some() && claims.iss != self.issuer {
            return Err(AuthError::InvalidToken);
        }
        if self.audience.is_some() && claims.aud != self.audience {
            return Err(AuthError::InvalidToken);
        }
        if expected == TokenType::Refresh && claims.fam.is_none() {
            return Err(AuthError::InvalidToken);
        }
        Ok(claims)
    }
}
