//! Who is asking: bearer tokens, passwords, and the first admin of an empty store.
//!
//! Tokens are random secrets shown once; the store keeps only their SHA-256 (a token has enough entropy
//! that a fast hash is safe). Passwords are hashed with Argon2id. Every handler that needs a caller
//! takes an [`Actor`], so an unauthenticated request never reaches handler code.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::Rng;
use rand::distributions::Alphanumeric;
use sha2::{Digest, Sha256};
use vexil_core::{AuditAction, AuditDraft, Role, Source};
use vexil_store::{TokenKind, TokenRecord, User, Write};

use crate::error::{ApiError, ApiResult};
use crate::service::AppState;

/// The prefix of personal API tokens, so a leaked one is recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "vxl_";

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The user's email.
    pub email: String,
    /// The user's role.
    pub role: Role,
    /// The token used.
    pub token_id: String,
    /// Where the request says it comes from (`X-Vexil-Source`: cli, panel; api otherwise).
    pub source: Source,
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthenticated("no credentials: send `Authorization: Bearer <token>` (vexil login, or vexil token create)")
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ApiError::unauthenticated("the Authorization header must be `Bearer <token>`"))?;
        let record = state
            .store
            .token_by_hash(&hash_token(token))
            .await?
            .filter(|record| record.revoked_at.is_none() && record.kind == TokenKind::Personal)
            .ok_or_else(|| ApiError::unauthenticated("the token is unknown or revoked; log in again or create a new token"))?;
        let user = state
            .store
            .user(&record.user)
            .await?
            .filter(|user| !user.disabled)
            .ok_or_else(|| ApiError::unauthenticated("the token's user is disabled or removed"))?;
        let source = parts
            .headers
            .get("x-vexil-source")
            .and_then(|value| value.to_str().ok())
            .and_then(Source::parse)
            .filter(|source| *source != Source::System)
            .unwrap_or(Source::Api);
        Ok(Actor { email: user.email, role: user.role, token_id: record.id, source })
    }
}

/// Hex SHA-256 of a token secret, as stored.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random secret with `prefix`: 40 alphanumeric characters, about 238 bits.
pub fn random_secret(prefix: &str) -> String {
    let body: String = rand::thread_rng().sample_iter(&Alphanumeric).take(40).map(char::from).collect();
    format!("{prefix}{body}")
}

/// A random password for generated accounts.
pub fn random_password() -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(20).map(char::from).collect()
}

/// Hashes a password with Argon2id and a random salt.
pub fn hash_password(password: &str) -> ApiResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|hash| hash.to_string()).map_err(ApiError::internal)
}

/// Whether `password` matches a stored Argon2 hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// A new token record for `secret`.
pub fn token_record(secret: &str, kind: TokenKind, user: &str, environment: Option<vexil_core::EnvKey>, name: &str) -> TokenRecord {
    TokenRecord {
        id: random_secret("tok_")[..16].to_owned(),
        hash: hash_token(secret),
        kind,
        user: user.to_owned(),
        environment,
        name: name.to_owned(),
        created_at: crate::time::now(),
        revoked_at: None,
    }
}

/// Checks an email address well enough to refuse typos and hostile strings.
pub fn check_email(email: &str) -> ApiResult<()> {
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
        && email.chars().all(|c| c.is_ascii_graphic())
        && !email.starts_with("system:");
    if valid {
        Ok(())
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
            format!("`{}` is not an email address such as admin@example.com", vexil_core::name::printable(email)),
        ))
    }
}

/// What the first start on an empty store may be told to use instead of random credentials.
#[derive(Debug, Clone, Default)]
pub struct BootstrapOptions {
    /// The admin's email (`admin@localhost` when not given).
    pub email: Option<String>,
    /// The admin's password.
    pub password: Option<String>,
    /// The admin's API token.
    pub token: Option<String>,
}

/// The first admin's credentials, to be shown once.
#[derive(Debug, Clone)]
pub struct BootstrapCredentials {
    /// The admin's email.
    pub email: String,
    /// The password, when it was generated (a configured one is not echoed).
    pub password: Option<String>,
    /// The API token, when it was generated.
    pub token: Option<String>,
}

/// On an empty store, creates the first admin and an API token for them; does nothing otherwise.
pub async fn bootstrap(state: &AppState, options: BootstrapOptions) -> ApiResult<Option<BootstrapCredentials>> {
    if !state.store.users().await?.is_empty() {
        return Ok(None);
    }
    let email = options.email.unwrap_or_else(|| "admin@localhost".to_owned());
    check_email(&email)?;
    let generated_password = options.password.is_none().then(random_password);
    let password = options.password.clone().or_else(|| generated_password.clone()).unwrap_or_default();
    if password.len() < 8 {
        return Err(ApiError::bad_request("VEXIL_BOOTSTRAP_PASSWORD must be at least 8 characters"));
    }
    let generated_token = options.token.is_none().then(|| random_secret(TOKEN_PREFIX));
    let token = options.token.clone().or_else(|| generated_token.clone()).unwrap_or_default();
    if token.len() < 16 || !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::bad_request("VEXIL_BOOTSTRAP_TOKEN must be at least 16 printable characters without spaces"));
    }
    let now = crate::time::now();
    let user = User {
        email: email.clone(),
        role: Role::Admin,
        password_hash: Some(hash_password(&password)?),
        created_at: now.clone(),
        disabled: false,
    };
    let record = token_record(&token, TokenKind::Personal, &email, None, "bootstrap");
    let audit = |action: AuditAction, after: serde_json::Value| AuditDraft {
        flag: None,
        action,
        environment: None,
        user: "system:bootstrap".to_owned(),
        timestamp: now.clone(),
        reason: Some("first start on an empty store".to_owned()),
        from_environment: None,
        before: None,
        after: Some(after),
        source: Source::System,
    };
    let write = Write {
        users: vec![user],
        tokens: vec![record.clone()],
        audit: vec![
            audit(AuditAction::UserAdd, serde_json::json!({"email": email, "role": "admin"})),
            audit(AuditAction::TokenCreate, serde_json::json!({"id": record.id, "user": email, "name": "bootstrap"})),
        ],
        ..Write::default()
    };
    state.store.commit(write).await?;
    Ok(Some(BootstrapCredentials { email, password: generated_password.or(options.password), token: Some(token) }))
}
