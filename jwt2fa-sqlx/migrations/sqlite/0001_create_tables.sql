-- Tables of jwt2fa on SQLite. Times are unix seconds. Keys compare with the
-- default BINARY collation, byte for byte: the application normalizes them.

CREATE TABLE jwt2fa_users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,
    username_key TEXT NOT NULL,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_verified BOOLEAN NOT NULL DEFAULT FALSE,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    bio TEXT NOT NULL DEFAULT '',
    avatar TEXT NOT NULL DEFAULT '',
    date_joined BIGINT NOT NULL,
    CONSTRAINT jwt2fa_users_username_key_unique UNIQUE (username_key),
    CONSTRAINT jwt2fa_users_email_key_unique UNIQUE (email_key)
);

CREATE TABLE jwt2fa_verification_codes (
    user_id INTEGER NOT NULL REFERENCES jwt2fa_users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    code_hash BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, purpose)
);

CREATE INDEX jwt2fa_verification_codes_expires_at ON jwt2fa_verification_codes (expires_at);

CREATE TABLE jwt2fa_refresh_families (
    id TEXT NOT NULL PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES jwt2fa_users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX jwt2fa_refresh_families_user_id ON jwt2fa_refresh_families (user_id);
CREATE INDEX jwt2fa_refresh_families_expires_at ON jwt2fa_refresh_families (expires_at);

CREATE TABLE jwt2fa_refresh_tokens (
    jti TEXT NOT NULL PRIMARY KEY,
    family_id TEXT NOT NULL REFERENCES jwt2fa_refresh_families (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    successor_jti TEXT
);

CREATE INDEX jwt2fa_refresh_tokens_family_id ON jwt2fa_refresh_tokens (family_id);
CREATE INDEX jwt2fa_refresh_tokens_user_id ON jwt2fa_refresh_tokens (user_id);

CREATE TABLE jwt2fa_counters (
    "key" TEXT NOT NULL PRIMARY KEY,
    count BIGINT NOT NULL,
    window_ends_at BIGINT NOT NULL,
    last_hit_at BIGINT NOT NULL
);

CREATE INDEX jwt2fa_counters_window_ends_at ON jwt2fa_counters (window_ends_at);
