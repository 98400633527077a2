//! The `Auth` service: one method per step of the account flow.

use std::sync::Arc;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use tracing::{error, info, warn};

use crate::clock::{Clock, SystemClock};
use crate::codes::{derive_code_key, generate_code, hash_code};
use crate::config::AuthConfig;
use crate::error::{AuthError, FieldErrors};
use crate::mailer::{ConsoleMailer, EmailMessage, Mailer};
use crate::password::Hasher;
use crate::secret::Secret;
use crate::store::*;
use crate::tokens::{random_id, Claims, TokenKeys, TokenPair, TokenType};
use crate::validate;

/// Attempts to deliver one verification mail before giving up.
const MAIL_ATTEMPTS: u32 = 5;
/// Maximum duration of one delivery attempt. A mail server that accepts
/// the connection and then never replies fails the attempt, which is retried.
const MAIL_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Delay before the first retry of a failed mail; it doubles each time.
const MAIL_FIRST_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// A new account, as the register endpoint receives it.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Requested username.
    pub username: String,
    /// Email address that will receive the code.
    pub email: String,
    /// Password.
    pub password: Secret,
}

/// The public view of a new account, as the register endpoint returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegisteredUser {
    /// User id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// Email.
    pub email: String,
    /// Always `false` right after registration.
    pub is_verified: bool,
}

/// A profile, as the profile endpoint returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// User id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// Email.
    pub email: String,
    /// Free text, `""` when unset.
    pub bio: String,
    /// Avatar URL, `""` when unset.
    pub avatar: String,
    /// Whether the email is verified.
    pub is_verified: bool,
    /// Creation time, RFC 3339 in UTC.
    pub date_joined: String,
}

impl From<UserRecord> for Profile {
    fn from(user: UserRecord) -> Self {
        Self {
            id: user.id,
            username: user.username,
            email: user.email,
            bio: user.bio,
            avatar: user.avatar,
            is_verified: user.is_verified,
            date_joined: user
                .date_joined
                .format(&Rfc3339)
                .unwrap_or_else(|_| user.date_joined.unix_timestamp().to_string()),
        }
    }
}

/// The identity behind a valid access token, checked without the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    /// User id.
    pub user_id: i64,
    /// The access token's claims.
    pub claims: Claims,
}

/// Rows removed by [`Auth::purge_expired`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Expired codes.
    pub codes: u64,
    /// Ended or revoked refresh-token families.
    pub families: u64,
    /// Counters whose window ended.
    pub counters: u64,
}

struct Inner {
    config: AuthConfig,
    store: Arc<dyn Store>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
    keys: TokenKeys,
    code_key: [u8; 32],
    hasher: Hasher,
}

/// The account-flow service. Cheap to clone: the state is shared.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("config", &self.inner.config)
            .field("mailer", &self.inner.mailer.describe())
            .finish_non_exhaustive()
    }
}

/// Builder of [`Auth`].
pub struct AuthBuilder {
    config: AuthConfig,
    store: Arc<dyn Store>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
}

impl AuthBuilder {
    /// Sets the mailer. Default: [`ConsoleMailer`], for development.
    pub fn mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = mailer;
        self
    }

    /// Sets the clock. Default: [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the service. This hashes the dummy password that unknown
    /// users are checked against, which takes one Argon2 run.
    ///
    /// # Errors
    ///
    /// [`AuthError::Internal`] when the Argon2 parameters are invalid.
    pub fn build(self) -> Result<Auth, AuthError> {
        let hasher = Hasher::new(&self.config)?;
        Ok(Auth {
            inner: Arc::new(Inner {
                keys: TokenKeys::new(&self.config),
                code_key: derive_code_key(&self.config.secret),
                hasher,
                config: self.config,
                store: self.store,
                mailer: self.mailer,
                clock: self.clock,
            }),
        })
    }
}

impl Auth {
    /// Starts a builder over a configuration and a store.
    pub fn builder(config: AuthConfig, store: Arc<dyn Store>) -> AuthBuilder {
        AuthBuilder {
            config,
            store,
            mailer: Arc::new(ConsoleMailer),
            clock: Arc::new(SystemClock),
        }
    }

    /// Returns the configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    /// Returns the mailer's description, for a start-up log line.
    pub fn mailer_description(&self) -> String {
        self.inner.mailer.describe()
    }

    /// Returns how many password verifications ran since start. Every login
    /// attempt that reaches the password check runs exactly one.
    pub fn password_verifications(&self) -> u64 {
        self.inner.hasher.verifications()
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// Creates an unverified account.
    ///
    /// # Errors
    ///
    /// [`AuthError::Validation`] for an invalid field or a username or email
    /// that is taken (compared case-insensitively); every field's reasons
    /// are reported together.
    pub async fn register(&self, input: Registration) -> Result<RegisteredUser, AuthError> {
        let mut errors = FieldErrors::new();
        let username = validate::username(&input.username, &mut errors);
        let email = validate::email(&input.email, &mut errors);
        let user_inputs: Vec<&str> = [input.username.as_str(), input.email.as_str()]
            .into_iter()
            .chain(input.email.split('@').next())
            .collect();
        let password =
            validate::new_password(&input.password, "password", &user_inputs, &mut errors);
        errors.into_result()?;
        let (Some(username), Some(email), Some(password)) = (username, email, password) else {
            return Err(AuthError::Internal(
                "validation passed without values".to_owned(),
            ));
        };

        let username_key = validate::username_key(&username);
        let email_key = validate::email_key(&email);
        let mut errors = FieldErrors::new();
        if self
            .store()
            .user_by_username_key(&username_key)
            .await?
            .is_some()
        {
            errors.add("username", "A user with that username already exists.");
        }
        if self.store().user_by_email_key(&email_key).await?.is_some() {
            errors.add("email", "A user with that email already exists.");
        }
        errors.into_result()?;

        let password_hash = self.inner.hasher.hash(password).await?;
        let new_user = NewUser {
            username,
            username_key,
            email,
            email_key,
            password_hash,
            date_joined: self.now(),
        };
        // The checks above give friendly errors; the database's unique
        // constraints decide when two registrations race.
        match self.store().create_user(new_user).await? {
            CreateUser::Created(user) => {
                info!(user_id = user.id, "user registered");
                Ok(RegisteredUser {
                    id: user.id,
                    username: user.username,
                    email: user.email,
                    is_verified: user.is_verified,
                })
            }
            CreateUser::UsernameTaken => Err(AuthError::Validation(FieldErrors::single(
                "username",
                "A user with that username already exists.",
            ))),
            CreateUser::EmailTaken => Err(AuthError::Validation(FieldErrors::single(
                "email",
                "A user with that email already exists.",
            ))),
        }
    }

    /// Accepts a request for a verification code and returns at once.
    ///
    /// The lookup, the resend cooldown, the daily cap and the delivery all
    /// run in a background task, so the caller's response and its timing are
    /// the same for unknown, unverified, verified and cooling-down
    /// addresses. A failed delivery is retried with back-off and logged
    /// with the user id.
    ///
    /// # Errors
    ///
    /// [`AuthError::Validation`] only when `email` is not a valid address.
    pub async fn send_verification_code(&self, email: &str) -> Result<(), AuthError> {
        let mut errors = FieldErrors::new();
        let email = validate::email(email, &mut errors);
        errors.into_result()?;
        let Some(email) = email else {
            return Err(AuthError::Internal(
                "validation passed without value".to_owned(),
            ));
        };

        let service = self.clone();
        tokio::spawn(async move {
            if let Err(e) = service.issue_code(&validate::email_key(&email)).await {
                error!(error = %e, "issuing a verification code failed");
            }
        });
        Ok(())
    }

    /// Issues a code to the account with this email key, unless it is
    /// unknown, verified, inactive or held back by the cooldown or daily cap.
    async fn issue_code(&self, email_key: &str) -> Result<(), AuthError> {
        let config = &self.inner.config;
        let Some(user) = self.store().user_by_email_key(email_key).await? else {
            return Ok(());
        };
        if user.is_verified || !user.is_active {
            return Ok(());
        }

        let now = self.now();
        let cooldown = self
            .store()
            .hit(
                &format!("code-cooldown:{email_key}"),
                now,
                config.code_resend_cooldown,
            )
            .await?;
        if cooldown.count > 1 {
            info!(
                user_id = user.id,
                "verification code held back by the resend cooldown"
            );
            return Ok(());
        }
        let daily = self
            .store()
            .hit(&format!("code-daily:{email_key}"), now, Duration::days(1))
            .await?;
        if daily.count > config.code_daily_sends {
            warn!(
                user_id = user.id,
                "verification code held back by the daily cap"
            );
            return Ok(());
        }

        let code = generate_code();
        let purpose = CodePurpose::VerifyEmail;
        self.store()
            .put_code(CodeRecord {
                user_id: user.id,
                purpose,
                code_hash: hash_code(&self.inner.code_key, purpose, user.id, code.expose_secret()),
                created_at: now,
                expires_at: now + config.code_ttl,
            })
            .await?;

        let message = EmailMessage {
            from: config.mail_from.clone(),
            to: user.email.clone(),
            subject: config.mail_subject.clone(),
            text: format!(
                "Your verification code is:\n\n{}\n\nIt is valid for {} minutes and works once. \
                 If you did not ask for it, you can ignore this message.\n",
                code.expose_secret(),
                config.code_ttl.whole_minutes()
            ),
        };
        self.deliver(user.id, &message).await;
        Ok(())
    }

    async fn deliver(&self, user_id: i64, message: &EmailMessage) {
        let mut delay = MAIL_FIRST_RETRY;
        for attempt in 1..=MAIL_ATTEMPTS {
            let sent = tokio::time::timeout(MAIL_ATTEMPT_TIMEOUT, self.inner.mailer.send(message))
                .await
                .unwrap_or_else(|_| {
                    Err(crate::mailer::MailError(format!(
                        "the mail server sent no response within {MAIL_ATTEMPT_TIMEOUT:?}"
                    )))
                });
            match sent {
                Ok(()) => {
                    info!(user_id, attempt, "verification code sent");
                    return;
                }
                Err(e) if attempt < MAIL_ATTEMPTS => {
                    warn!(user_id, attempt, error = %e, "sending the verification code failed, retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    error!(user_id, attempt, error = %e, "sending the verification code failed, giving up; the user can request a new code");
                }
            }
        }
    }

    /// Verifies an email address with a code.
    ///
    /// # Errors
    ///
    /// [`AuthError::Validation`] for a malformed email or code, and
    /// [`AuthError::InvalidCode`] for an unknown address, a wrong, expired
    /// or used code, or a code out of tries.
    pub async fn verify_email(&self, email: &str, code: &Secret) -> Result<(), AuthError> {
        let mut errors = FieldErrors::new();
        let email = validate::email(email, &mut errors);
        validate::code(code, &mut errors);
        errors.into_result()?;
        let Some(email) = email else {
            return Err(AuthError::Internal(
                "validation passed without value".to_owned(),
            ));
        };

        let Some(user) = self
            .store()
            .user_by_email_key(&validate::email_key(&email))
            .await?
        else {
            return Err(AuthError::InvalidCode);
        };
        let purpose = CodePurpose::VerifyEmail;
        let code_hash = hash_code(&self.inner.code_key, purpose, user.id, code.expose_secret());
        let check = self
            .store()
            .check_code(
                user.id,
                purpose,
                &code_hash,
                self.now(),
                self.inner.config.code_max_attempts,
            )
            .await?;
        match check {
            CodeCheck::Accepted => {
                self.store().mark_verified(user.id).await?;
                info!(user_id = user.id, "email verified");
                Ok(())
            }
            CodeCheck::Rejected | CodeCheck::NoLiveCode => Err(AuthError::InvalidCode),
        }
    }

    /// Logs in with username and password and returns a token pair.
    ///
    /// Unknown user, wrong password and inactive account fail alike and run
    /// one Argon2 verification each. Failures are counted per normalized
    /// username, existing or not; past the free failures each further one
    /// doubles a delay, during which attempts get [`AuthError::Throttled`].
    ///
    /// # Errors
    ///
    /// [`AuthError::Validation`] for an empty username or password (never
    /// counted), [`AuthError::InvalidCredentials`],
    /// [`AuthError::NotVerified`] for the right password on an unverified
    /// account, [`AuthError::Throttled`] and [`AuthError::Busy`].
    pub async fn login(&self, username: &str, password: &Secret) -> Result<TokenPair, AuthError> {
        let mut errors = FieldErrors::new();
        let username = validate::nfkc(username.trim());
        if username.is_empty() {
            errors.add("username", "This field may not be blank.");
        }
        if password.expose_secret().is_empty() {
            errors.add("password", "This field may not be blank.");
        }
        errors.into_result()?;

        let username_key = validate::username_key(&username);
        let failure_key = format!("login-failures:{username_key}");
        self.check_login_delay(&failure_key).await?;

        // The stored form is NFKC, so the given password is normalized the
        // same way before checking. An overlong password cannot match.
        let password = Secret::new(validate::nfkc(password.expose_secret()));
        let user = self.store().user_by_username_key(&username_key).await?;
        let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
        let verified = self
            .inner
            .hasher
            .verify(password.clone(), stored_hash)
            .await?;

        let user = match user {
            Some(user) if verified.matches && user.is_active => user,
            _ => {
                let config = &self.inner.config;
                self.store()
                    .hit(&failure_key, self.now(), config.login_failure_window)
                    .await?;
                return Err(AuthError::InvalidCredentials);
            }
        };
        if !user.is_verified {
            return Err(AuthError::NotVerified);
        }
        self.store().reset(&failure_key).await?;

        if verified.needs_rehash {
            let new_hash = self.inner.hasher.hash(password).await?;
            self.store().set_password_hash(user.id, &new_hash).await?;
            info!(
                user_id = user.id,
                "password re-hashed with the current parameters"
            );
        }
        let pair = self.issue_pair(user.id).await?;
        info!(user_id = user.id, "user logged in");
        Ok(pair)
    }

    async fn check_login_delay(&self, failure_key: &str) -> Result<(), AuthError> {
        let config = &self.inner.config;
        let now = self.now();
        let Some(state) = self.store().peek(failure_key, now).await? else {
            return Ok(());
        };
        if state.count < config.login_free_failures {
            return Ok(());
        }
        let doublings = (state.count - config.login_free_failures).min(30);
        let delay = config
            .login_first_delay
            .saturating_mul(1i32 << doublings)
            .min(config.login_max_delay);
        let free_at = state.last_hit_at + delay;
        if now < free_at {
            let retry_after = (free_at - now).whole_seconds().max(1) as u64;
            return Err(AuthError::Throttled { retry_after });
        }
        Ok(())
    }

    /// Starts a refresh-token family for a user and returns its first pair.
    async fn issue_pair(&self, user_id: i64) -> Result<TokenPair, AuthError> {
        let config = &self.inner.config;
        let now = self.now();
        let family = RefreshFamily {
            id: random_id(),
            user_id,
            created_at: now,
            expires_at: now + config.family_ttl,
        };
        let first = RefreshTokenRecord {
            jti: random_id(),
            family_id: family.id.clone(),
            user_id,
            issued_at: now,
            expires_at: (now + config.refresh_ttl).min(family.expires_at),
        };
        let refresh = self.encode_refresh(&first)?;
        self.store().create_family(family, first).await?;
        Ok(TokenPair {
            access: self.encode_access(user_id, now)?,
            refresh,
        })
    }

    /// Issues an access token for a user without a login, for tests,
    /// benchmarks and services that vouch for the user themselves.
    ///
    /// # Errors
    ///
    /// [`AuthError::Internal`] when signing fails.
    pub fn issue_access_token(&self, user_id: i64) -> Result<String, AuthError> {
        self.encode_access(user_id, self.now())
    }

    fn encode_access(&self, user_id: i64, now: OffsetDateTime) -> Result<String, AuthError> {
        let keys = &self.inner.keys;
        let claims = keys.claims(
            TokenType::Access,
            user_id,
            random_id(),
            None,
            now,
            now + self.inner.config.access_ttl,
        );
        keys.encode(&claims)
    }

    fn encode_refresh(&self, record: &RefreshTokenRecord) -> Result<String, AuthError> {
        let keys = &self.inner.keys;
        let claims = keys.claims(
            TokenType::Refresh,
            record.user_id,
            record.jti.clone(),
            Some(record.family_id.clone()),
            record.issued_at,
            record.expires_at,
        );
        keys.encode(&claims)
    }

    /// Exchanges a refresh token for a new pair, rotating it.
    ///
    /// The presented token is marked used and a successor is issued in the
    /// same family. Presented again within the grace window, it returns the
    /// same successor. Presented later, or when an older ancestor is
    /// presented, the whole family is revoked and the reuse logged.
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidToken`] for any token that fails a check, a
    /// revoked family, a detected reuse, or a deactivated or deleted user.
    pub async fn refresh(&self, refresh: &Secret) -> Result<TokenPair, AuthError> {
        let now = self.now();
        let claims = self
            .inner
            .keys
            .decode(refresh.expose_secret(), TokenType::Refresh, now)?;
        let Some(family_id) = claims.fam.clone() else {
            return Err(AuthError::InvalidToken);
        };
        match self.store().user_by_id(claims.user_id).await? {
            Some(user) if user.is_active => {}
            _ => return Err(AuthError::InvalidToken),
        }

        let config = &self.inner.config;
        let successor = RefreshTokenRecord {
            jti: random_id(),
            family_id,
            user_id: claims.user_id,
            issued_at: now,
            expires_at: now + config.refresh_ttl,
        };
        let rotation = self
            .store()
            .rotate(&claims.jti, successor.clone(), now, config.refresh_grace)
            .await?;
        let next = match rotation {
            Rotation::Rotated => successor,
            Rotation::Replayed(earlier) => earlier,
            Rotation::ReuseDetected { family_id, user_id } => {
                warn!(
                    user_id,
                    family_id, "refresh token reused after rotation; family revoked"
                );
                return Err(AuthError::InvalidToken);
            }
            Rotation::Invalid => return Err(AuthError::InvalidToken),
        };
        Ok(TokenPair {
            access: self.encode_access(claims.user_id, now)?,
            refresh: self.encode_refresh(&next)?,
        })
    }

    /// Checks an access token without the database and returns its user.
    ///
    /// A deactivated user's access token stays valid until it expires
    /// (5 minutes by default); the profile endpoints read the user and
    /// reject it at once.
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidToken`] for any token that fails a check.
    pub fn authenticate(&self, access_token: &str) -> Result<AuthenticatedUser, AuthError> {
        let claims = self
            .inner
            .keys
            .decode(access_token, TokenType::Access, self.now())?;
        Ok(AuthenticatedUser {
            user_id: claims.user_id,
            claims,
        })
    }

    /// Reads an `Authorization` header value and checks its Bearer token.
    ///
    /// # Errors
    ///
    /// [`AuthError::NotAuthenticated`] when the header is missing or uses
    /// another scheme, and [`AuthError::InvalidToken`] when the token fails.
    pub fn authenticate_header(
        &self,
        authorization: Option<&str>,
    ) -> Result<AuthenticatedUser, AuthError> {
        let Some(value) = authorization else {
            return Err(AuthError::NotAuthenticated);
        };
        let mut parts = value.trim().splitn(2, ' ');
        let scheme = parts.next().unwrap_or_default();
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::NotAuthenticated);
        }
        let token = parts.next().unwrap_or_default().trim();
        if token.is_empty() || token.contains(' ') {
            return Err(AuthError::InvalidToken);
        }
        self.authenticate(token)
    }

    /// Revokes the family of a refresh token owned by `user`.
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidToken`] for a token that fails a check or whose
    /// family is already revoked, and [`AuthError::PermissionDenied`] for
    /// another user's token.
    pub async fn logout(
        &self,
        user: &AuthenticatedUser,
        refresh: &Secret,
    ) -> Result<(), AuthError> {
        let now = self.now();
        let claims = self
            .inner
            .keys
            .decode(refresh.expose_secret(), TokenType::Refresh, now)?;
        if claims.user_id != user.user_id {
            return Err(AuthError::PermissionDenied);
        }
        let Some(record) = self.store().live_token(&claims.jti, now).await? else {
            return Err(AuthError::InvalidToken);
        };
        if !self.store().revoke_family(&record.family_id, now).await? {
            return Err(AuthError::InvalidToken);
        }
        info!(user_id = user.user_id, "user logged out");
        Ok(())
    }

    async fn active_user(&self, user_id: i64) -> Result<UserRecord, AuthError> {
        match self.store().user_by_id(user_id).await? {
            Some(user) if user.is_active => Ok(user),
            _ => Err(AuthError::InvalidToken),
        }
    }

    /// Returns the profile of an active user.
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidToken`] when the user was deleted or deactivated.
    pub async fn profile(&self, user_id: i64) -> Result<Profile, AuthError> {
        Ok(self.active_user(user_id).await?.into())
    }

    /// Changes the given profile fields and returns the profile.
    ///
    /// # Errors
    ///
    /// [`AuthError::Validation`] for an invalid bio or avatar, and
    /// [`AuthError::InvalidToken`] when the user was deleted or deactivated.
    pub async fn update_profile(
        &self,
        user_id: i64,
        changes: ProfileChanges,
    ) -> Result<Profile, AuthError> {
        let mut errors = FieldErrors::new();
        if let Some(bio) = &changes.bio {
            validate::bio(bio, &mut errors);
        }
        let avatar = changes
            .avatar
            .as_deref()
            .and_then(|avatar| validate::avatar(avatar, &mut errors));
        errors.into_result()?;

        self.active_user(user_id).await?;
        let changes = ProfileChanges {
            bio: changes.bio,
            avatar,
        };
        match self.store().update_profile(user_id, changes).await? {
            Some(user) => Ok(user.into()),
            None => Err(AuthError::InvalidToken),
        }
    }

    /// Changes a user's password, revokes every refresh-token family of the
    /// user and returns a fresh pair.
    ///
    /// # Errors
    ///
    /// [`AuthError::Validation`] for a wrong old password or a weak new one.
    pub async fn change_password(
        &self,
        user_id: i64,
        old_password: &Secret,
        new_password: &Secret,
    ) -> Result<TokenPair, AuthError> {
        let user = self.active_user(user_id).await?;
        let mut errors = FieldErrors::new();
        let user_inputs = [user.username.as_str(), user.email.as_str()];
        let new_password =
            validate::new_password(new_password, "new_password", &user_inputs, &mut errors);
        errors.into_result()?;
        let Some(new_password) = new_password else {
            return Err(AuthError::Internal(
                "validation passed without value".to_owned(),
            ));
        };

        let old = Secret::new(validate::nfkc(old_password.expose_secret()));
        let verified = self
            .inner
            .hasher
            .verify(old, Some(user.password_hash.clone()))
            .await?;
        if !verified.matches {
            return Err(AuthError::Validation(FieldErrors::single(
                "old_password",
                "Your old password was entered incorrectly.",
            )));
        }

        let new_hash = self.inner.hasher.hash(new_password).await?;
        self.store().set_password_hash(user.id, &new_hash).await?;
        let revoked = self
            .store()
            .revoke_user_families(user.id, self.now())
            .await?;
        info!(
            user_id = user.id,
            revoked, "password changed; refresh-token families revoked"
        );
        self.issue_pair(user.id).await
    }

    /// Deactivates a user: login fails and every refresh-token family is
    /// revoked. Returns `false` when the user does not exist.
    ///
    /// # Errors
    ///
    /// [`AuthError::Store`] when the store fails.
    pub async fn deactivate_user(&self, user_id: i64) -> Result<bool, AuthError> {
        if !self.store().set_active(user_id, false).await? {
            return Ok(false);
        }
        self.store()
            .revoke_user_families(user_id, self.now())
            .await?;
        info!(user_id, "user deactivated");
        Ok(true)
    }

    /// Deletes a user with its codes and refresh tokens. Returns `false`
    /// when the user does not exist.
    ///
    /// # Errors
    ///
    /// [`AuthError::Store`] when the store fails.
    pub async fn delete_user(&self, user_id: i64) -> Result<bool, AuthError> {
        let deleted = self.store().delete_user(user_id).await?;
        if deleted {
            info!(user_id, "user deleted");
        }
        Ok(deleted)
    }

    /// Deletes expired codes, ended refresh-token families and counters.
    ///
    /// # Errors
    ///
    /// [`AuthError::Store`] when the store fails.
    pub async fn purge_expired(&self) -> Result<PurgeReport, AuthError> {
        let now = self.now();
        Ok(PurgeReport {
            codes: self.store().purge_expired_codes(now).await?,
            families: self.store().purge_expired_tokens(now).await?,
            counters: self.store().purge_expired_counters(now).await?,
        })
    }

    /// Starts a task that calls [`purge_expired`](Self::purge_expired)
    /// every `period` and logs failures.
    pub fn spawn_purge_task(&self, period: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            loop {
                interval.tick().await;
                match service.purge_expired().await {
                    Ok(report) => tracing::debug!(?report, "expired rows purged"),
                    Err(e) => error!(error = %e, "purging expired rows failed"),
                }
            }
        })
    }
}
