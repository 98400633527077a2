-- Tables of jwt2fa on MySQL and MariaDB (InnoDB). Times are unix seconds.
--
-- Keys and ids are VARBINARY, so they compare byte for byte: the application
-- normalizes them. A VARCHAR with utf8mb4_bin would still ignore trailing
-- spaces, because that collation is PAD SPACE on MariaDB and on MySQL.
-- 3072 bytes is the largest InnoDB index key with the DYNAMIC row format.

CREATE TABLE jwt2fa_users (
    id BIGINT NOT NULL AUTO_INCREMENT,
    username TEXT NOT NULL,
    username_key VARBINARY(3072) NOT NULL,
    email TEXT NOT NULL,
    email_key VARBINARY(3072) NOT NULL,
    password_hash TEXT NOT NULL,
    is_verified BOOLEAN NOT NULL DEFAULT FALSE,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    bio TEXT NOT NULL,
    avatar TEXT NOT NULL,
    date_joined BIGINT NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY jwt2fa_users_username_key_unique (username_key),
    UNIQUE KEY jwt2fa_users_email_key_unique (email_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE jwt2fa_verification_codes (
    user_id BIGINT NOT NULL,
    purpose VARBINARY(64) NOT NULL,
    code_hash VARBINARY(255) NOT NULL,
    attempts INT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, purpose),
    KEY jwt2fa_verification_codes_expires_at (expires_at),
    CONSTRAINT jwt2fa_verification_codes_user_id_fk FOREIGN KEY (user_id)
        REFERENCES jwt2fa_users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE jwt2fa_refresh_families (
    id VARBINARY(255) NOT NULL,
    user_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NULL,
    PRIMARY KEY (id),
    KEY jwt2fa_refresh_families_user_id (user_id),
    KEY jwt2fa_refresh_families_expires_at (expires_at),
    CONSTRAINT jwt2fa_refresh_families_user_id_fk FOREIGN KEY (user_id)
        REFERENCES jwt2fa_users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE jwt2fa_refresh_tokens (
    jti VARBINARY(255) NOT NULL,
    family_id VARBINARY(255) NOT NULL,
    user_id BIGINT NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT NULL,
    successor_jti VARBINARY(255) NULL,
    PRIMARY KEY (jti),
    KEY jwt2fa_refresh_tokens_family_id (family_id),
    KEY jwt2fa_refresh_tokens_user_id (user_id),
    CONSTRAINT jwt2fa_refresh_tokens_family_id_fk FOREIGN KEY (family_id)
        REFERENCES jwt2fa_refresh_families (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE jwt2fa_counters (
    `key` VARBINARY(3072) NOT NULL,
    count BIGINT NOT NULL,
    window_ends_at BIGINT NOT NULL,
    last_hit_at BIGINT NOT NULL,
    PRIMARY KEY (`key`),
    KEY jwt2fa_counters_window_ends_at (window_ends_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
