//! An in-memory store for tests and quick experiments.
//!
//! Every method takes one lock, so each call is atomic like a database
//! transaction. The data lives only as long as the process, and one process
//! cannot share it with another app instance: use `jwt2fa-sqlx` for that.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

use crate::store::*;

#[derive(Default)]
struct StoredCode {
    record: Option<CodeRecord>,
    attempts: u32,
}

struct StoredToken {
    record: RefreshTokenRecord,
    used_at: Option<OffsetDateTime>,
    successor: Option<String>,
}

struct StoredFamily {
    family: RefreshFamily,
    revoked_at: Option<OffsetDateTime>,
}

#[derive(Default)]
struct Data {
    next_id: i64,
    users: HashMap<i64, (UserRecord, String, String)>,
    codes: HashMap<(i64, CodePurpose), StoredCode>,
    tokens: HashMap<String, StoredToken>,
    families: HashMap<String, StoredFamily>,
    counters: HashMap<String, CounterState>,
}

impl Data {
    fn family_is_live(&self, family_id: &str, now: OffsetDateTime) -> bool {
        self.families
            .get(family_id)
            .is_some_and(|f| f.revoked_at.is_none() && f.family.expires_at > now)
    }
}

/// In-memory implementation of every storage trait.
#[derive(Default)]
pub struct MemoryStore {
    data: Mutex<Data>,
}

impl MemoryStore {
    /// Creates an empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Data> {
        self.data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, user: NewUser) -> StoreResult<CreateUser> {
        let mut data = self.lock();
        if data
            .users
            .values()
            .any(|(_, key, _)| *key == user.username_key)
        {
            return Ok(CreateUser::UsernameTaken);
        }
        if data
            .users
            .values()
            .any(|(_, _, key)| *key == user.email_key)
        {
            return Ok(CreateUser::EmailTaken);
        }
        data.next_id += 1;
        let record = UserRecord {
            id: data.next_id,
            username: user.username,
            email: user.email,
            password_hash: user.password_hash,
            is_verified: false,
            is_active: true,
            bio: String::new(),
            avatar: String::new(),
            date_joined: user.date_joined,
        };
        data.users.insert(
            record.id,
            (record.clone(), user.username_key, user.email_key),
        );
        Ok(CreateUser::Created(record))
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<UserRecord>> {
        Ok(self.lock().users.get(&id).map(|(user, _, _)| user.clone()))
    }

    async fn user_by_username_key(&self, username_key: &str) -> StoreResult<Option<UserRecord>> {
        let data = self.lock();
        let found = data.users.values().find(|(_, key, _)| key == username_key);
        Ok(found.map(|(user, _, _)| user.clone()))
    }

    async fn user_by_email_key(&self, email_key: &str) -> StoreResult<Option<UserRecord>> {
        let data = self.lock();
        let found = data.users.values().find(|(_, _, key)| key == email_key);
        Ok(found.map(|(user, _, _)| user.clone()))
    }

    async fn mark_verified(&self, id: i64) -> StoreResult<bool> {
        let mut data = self.lock();
        let Some((user, _, _)) = data.users.get_mut(&id) else {
            return Ok(false);
        };
        user.is_verified = true;
        Ok(true)
    }

    async fn update_profile(
        &self,
        id: i64,
        changes: ProfileChanges,
    ) -> StoreResult<Option<UserRecord>> {
        let mut data = self.lock();
        let Some((user, _, _)) = data.users.get_mut(&id) else {
            return Ok(None);
        };
        if let Some(bio) = changes.bio {
            user.bio = bio;
        }
        if let Some(avatar) = changes.avatar {
            user.avatar = avatar;
        }
        Ok(Some(user.clone()))
    }

    async fn set_password_hash(&self, id: i64, password_hash: &str) -> StoreResult<bool> {
        let mut data = self.lock();
        let Some((user, _, _)) = data.users.get_mut(&id) else {
            return Ok(false);
        };
        user.password_hash = password_hash.to_owned();
        Ok(true)
    }

    async fn set_active(&self, id: i64, active: bool) -> StoreResult<bool> {
        let mut data = self.lock();
        let Some((user, _, _)) = data.users.get_mut(&id) else {
            return Ok(false);
        };
        user.is_active = active;
        Ok(true)
    }

    async fn delete_user(&self, id: i64) -> StoreResult<bool> {
        let mut data = self.lock();
        if data.users.remove(&id).is_none() {
            return Ok(false);
        }
        data.codes.retain(|(user_id, _), _| *user_id != id);
        data.tokens.retain(|_, token| token.record.user_id != id);
        data.families
            .retain(|_, family| family.family.user_id != id);
        Ok(true)
    }
}

#[async_trait]
impl CodeStore for MemoryStore {
    async fn put_code(&self, code: CodeRecord) -> StoreResult<()> {
        let key = (code.user_id, code.purpose);
        self.lock().codes.insert(
            key,
            StoredCode {
                record: Some(code),
                attempts: 0,
            },
        );
        Ok(())
    }

    async fn check_code(
        &self,
        user_id: i64,
        purpose: CodePurpose,
        code_hash: &[u8],
        now: OffsetDateTime,
        max_attempts: u32,
    ) -> StoreResult<CodeCheck> {
        let mut data = self.lock();
        let Some(stored) = data.codes.get_mut(&(user_id, purpose)) else {
            return Ok(CodeCheck::NoLiveCode);
        };
        let Some(record) = &stored.record else {
            return Ok(CodeCheck::NoLiveCode);
        };
        if record.expires_at <= now || stored.attempts >= max_attempts {
            return Ok(CodeCheck::NoLiveCode);
        }

        stored.attempts += 1;
        if bool::from(record.code_hash.as_slice().ct_eq(code_hash)) {
            data.codes.remove(&(user_id, purpose));
            Ok(CodeCheck::Accepted)
        } else {
            Ok(CodeCheck::Rejected)
        }
    }

    async fn purge_expired_codes(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let mut data = self.lock();
        let before = data.codes.len();
        data.codes.retain(|_, code| {
            code.record
                .as_ref()
                .is_some_and(|record| record.expires_at > now)
        });
        Ok((before - data.codes.len()) as u64)
    }
}

#[async_trait]
impl RefreshTokenStore for MemoryStore {
    async fn create_family(
        &self,
        family: RefreshFamily,
        first: RefreshTokenRecord,
    ) -> StoreResult<()> {
        let mut data = self.lock();
        data.families.insert(
            family.id.clone(),
            StoredFamily {
                family,
                revoked_at: None,
            },
        );
        data.tokens.insert(
            first.jti.clone(),
            StoredToken {
                record: first,
                used_at: None,
                successor: None,
            },
        );
        Ok(())
    }

    async fn rotate(
        &self,
        jti: &str,
        successor: RefreshTokenRecord,
        now: OffsetDateTime,
        grace: Duration,
    ) -> StoreResult<Rotation> {
        let mut data = self.lock();
        let Some(token) = data.tokens.get(jti) else {
            return Ok(Rotation::Invalid);
        };
        let family_id = token.record.family_id.clone();
        let user_id = token.record.user_id;
        if !data.family_is_live(&family_id, now) || token.record.expires_at <= now {
            return Ok(Rotation::Invalid);
        }

        match (token.used_at, token.successor.clone()) {
            (None, _) => {
                let token = data.tokens.get_mut(jti).expect("token checked above");
                token.used_at = Some(now);
                token.successor = Some(successor.jti.clone());
                data.tokens.insert(
                    successor.jti.clone(),
                    StoredToken {
                        record: successor,
                        used_at: None,
                        successor: None,
                    },
                );
                Ok(Rotation::Rotated)
            }
            (Some(used_at), Some(successor_jti)) if now - used_at <= grace => {
                match data.tokens.get(&successor_jti) {
                    Some(next) => Ok(Rotation::Replayed(next.record.clone())),
                    None => Ok(Rotation::Invalid),
                }
            }
            _ => {
                if let Some(family) = data.families.get_mut(&family_id) {
                    family.revoked_at = Some(now);
                }
                Ok(Rotation::ReuseDetected { family_id, user_id })
            }
        }
    }

    async fn live_token(
        &self,
        jti: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<RefreshTokenRecord>> {
        let data = self.lock();
        let Some(token) = data.tokens.get(jti) else {
            return Ok(None);
        };
        if !data.family_is_live(&token.record.family_id, now) {
            return Ok(None);
        }
        Ok(Some(token.record.clone()))
    }

    async fn revoke_family(&self, family_id: &str, now: OffsetDateTime) -> StoreResult<bool> {
        let mut data = self.lock();
        match data.families.get_mut(family_id) {
            Some(family) if family.revoked_at.is_none() => {
                family.revoked_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn revoke_user_families(&self, user_id: i64, now: OffsetDateTime) -> StoreResult<u64> {
        let mut data = self.lock();
        let mut revoked = 0;
        for family in data.families.values_mut() {
            if family.family.user_id == user_id && family.revoked_at.is_none() {
                family.revoked_at = Some(now);
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    async fn purge_expired_tokens(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let mut data = self.lock();
        let before = data.families.len();
        data.families
            .retain(|_, f| f.revoked_at.is_none() && f.family.expires_at > now);
        let Data {
            families, tokens, ..
        } = &mut *data;
        tokens.retain(|_, token| families.contains_key(&token.record.family_id));
        Ok((before - families.len()) as u64)
    }
}

#[async_trait]
impl CounterStore for MemoryStore {
    async fn hit(
        &self,
        key: &str,
        now: OffsetDateTime,
        window: Duration,
    ) -> StoreResult<CounterState> {
        let mut data = self.lock();
        let state = data
            .counters
            .entry(key.to_owned())
            .and_modify(|state| {
                if state.window_ends_at <= now {
                    state.count = 1;
                    state.window_ends_at = now + window;
                } else {
                    state.count += 1;
                }
                state.last_hit_at = now;
            })
            .or_insert(CounterState {
                count: 1,
                window_ends_at: now + window,
                last_hit_at: now,
            });
        Ok(*state)
    }

    async fn peek(&self, key: &str, now: OffsetDateTime) -> StoreResult<Option<CounterState>> {
        let data = self.lock();
        Ok(data
            .counters
            .get(key)
            .filter(|state| state.window_ends_at > now)
            .copied())
    }

    async fn reset(&self, key: &str) -> StoreResult<()> {
        self.lock().counters.remove(key);
        Ok(())
    }

    async fn purge_expired_counters(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let mut data = self.lock();
        let before = data.counters.len();
        data.counters.retain(|_, state| state.window_ends_at > now);
        Ok((before - data.counters.len()) as u64)
    }
}
