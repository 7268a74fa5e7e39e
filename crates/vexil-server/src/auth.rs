//! Who is asking: bearer tokens, passwords, and the first admin of an empty store.
//!
//! Tokens are random secrets shown once; the store keeps only their SHA-256 (a token has enough entropy
//! that a fast hash is safe). Passwords are hashed with Argon2id. Every handler that needs a caller
//! takes an [`Actor`], so an unauthenticated request never reaches handler code.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::Rng;
use rand::distributions::Alphanumeric;
use sha2::{Digest, Sha256};
use vexil_core::gate::{Automation, Writer};
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

impl Actor {
    /// One of Vexil's own components, as the audit trail records it (`system:guard`); `token_id` names what set it
    /// off (a trigger's id), if anything.
    pub fn automatic(automation: Automation, token_id: &str) -> Self {
        Self { email: automation.actor().to_owned(), role: Role::Admin, token_id: token_id.to_owned(), source: Source::System }
    }

    /// Who this is to the gate: a person with a role, or one of Vexil's components (which no request can claim to
    /// be: `X-Vexil-Source: system` is ignored, and only [`Actor::automatic`] makes a system actor).
    pub fn writer(&self) -> Writer {
        if self.source != Source::System {
            return Writer::Person(self.role);
        }
        [Automation::Rollout, Automation::Guard, Automation::Trigger]
            .into_iter()
            .find(|automation| automation.actor() == self.email)
            .map(Writer::Automatic)
            .unwrap_or(Writer::Person(Role::Viewer))
    }
}

/// The prefix of SDK keys.
pub const SDK_KEY_PREFIX: &str = "vxs_";

/// The prefix of client-side keys (for browsers and mobile apps).
pub const CLIENT_KEY_PREFIX: &str = "vxc_";

/// Who a credential belongs to: a user, or an SDK key scoped to one environment.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A personal API token, acting as its user.
    User(Actor),
    /// An SDK key: read-only (stream, evaluate, metrics), one environment.
    Sdk {
        /// The key's public id.
        token_id: String,
        /// The environment it is scoped to.
        environment: vexil_core::EnvKey,
        /// A client-side key: it evaluates and reports metrics, and never reads the stream.
        client: bool,
        /// The web origins whose pages may use the key (any when empty).
        origins: std::sync::Arc<[String]>,
    },
}

impl Principal {
    /// Refuses a principal that may not read `environment` (an SDK key of another environment).
    pub fn may_read(&self, environment: &vexil_core::Environment) -> ApiResult<()> {
        match self {
            Principal::User(_) => Ok(()),
            Principal::Sdk { environment: scoped, .. } if scoped == &environment.key => Ok(()),
            Principal::Sdk { environment: scoped, .. } => {
                Err(ApiError::forbidden(format!("this SDK key is scoped to {scoped}; it cannot read {}", environment.key)))
            }
        }
    }

    /// Refuses a request from a web page whose origin the key does not admit. A key with allowed origins answers only
    /// pages of those origins: another site that copied the key from a bundle cannot use it from its visitors'
    /// browsers. A request without an `Origin` header (a server, curl) is not a page's and passes: an origin list
    /// limits where a key works in browsers, it is not a secret.
    pub fn may_serve_origin(&self, headers: &axum::http::HeaderMap) -> ApiResult<()> {
        let Principal::Sdk { origins, .. } = self else { return Ok(()) };
        let Some(origin) = headers.get(axum::http::header::ORIGIN) else { return Ok(()) };
        if origins.is_empty() || origins.iter().any(|allowed| origin.as_bytes() == allowed.as_bytes()) {
            return Ok(());
        }
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "origin_not_allowed",
            format!(
                "this key answers pages of {} only, not of {}; add the origin to the key's allowed origins (a new key: vexil token create --client --origin …)",
                origins.join(", "),
                vexil_core::name::printable(origin.to_str().unwrap_or("an origin that is not text"))
            ),
        ))
    }
}

/// The panel's session cookie.
pub const SESSION_COOKIE: &str = "vexil_session";

/// How long a panel session lasts.
pub const SESSION_HOURS: i64 = 12;

/// The session secret in the request's `Cookie` header, if any.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    session_cookie_in(headers).map(str::to_owned)
}

fn session_cookie_in(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get_all(axum::http::header::COOKIE).iter().filter_map(|value| value.to_str().ok()).flat_map(|value| value.split(';')).find_map(
        |pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE && !value.is_empty()).then_some(value)
        },
    )
}

/// The CSRF token of a session: derived from its secret, so only a page that was given it (or can read the
/// HttpOnly cookie, which no page can) knows it. State-changing requests made with the cookie must send it.
pub fn csrf_token(session_secret: &str) -> String {
    hex::encode(&Sha256::digest(format!("vexil-csrf\n{session_secret}").as_bytes())[..16])
}

/// The credential a request carries: `Authorization: Bearer`, `X-API-Key`, or the panel's session cookie. A key in
/// the query string is read only by the streams ([`streaming_credential`]).
pub fn credential(parts: &Parts) -> Option<String> {
    credential_in(&parts.headers).map(str::to_owned)
}

/// [`credential`] of a request's headers, borrowed from them.
pub fn credential_in(headers: &axum::http::HeaderMap) -> Option<&str> {
    header_credential(headers).or_else(|| session_cookie_in(headers))
}

/// The key or token in `Authorization: Bearer` or `X-API-Key`.
fn header_credential(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION).and_then(|value| value.to_str().ok()) {
        let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).unwrap_or(value).trim();
        return Some(token).filter(|token| !token.is_empty());
    }
    headers.get("x-api-key").and_then(|value| value.to_str().ok()).map(str::trim).filter(|token| !token.is_empty())
}

/// The credential of a stream request: [`credential`], or before the session cookie `?token=`, because a browser's
/// EventSource cannot send headers. Only the streams (GET) read it: elsewhere a key in the URL would end up in
/// proxies' logs for no reason.
pub fn streaming_credential(parts: &Parts) -> Option<String> {
    header_credential(&parts.headers).or_else(|| query_credential(parts)).or_else(|| session_cookie_in(&parts.headers)).map(str::to_owned)
}

/// The key in `?token=`, for what a browser sends without headers (EventSource, `sendBeacon`).
pub fn query_credential(parts: &Parts) -> Option<&str> {
    let query = parts.uri.query()?;
    query.split('&').filter_map(|pair| pair.split_once('=')).find(|(name, _)| *name == "token").map(|(_, value)| value)
}

/// How long a looked-up credential is trusted without asking the store again. Revocations and role changes
/// made through this server take effect at once (the cache is cleared); made elsewhere, within this time.
pub const CREDENTIAL_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// Recently used credentials by the SHA-256 of their secret, so evaluation requests do not each query the store.
#[derive(Debug, Default)]
pub struct CredentialCache(
    std::sync::RwLock<std::collections::HashMap<String, (Option<Principal>, std::time::Instant)>>,
    /// Whether the store answers credential look-ups, so an outage costs one probe a second, not a round trip per request.
    Breaker,
    /// The SHA-256 of credentials recently found good.
    Digests,
    /// Personal tokens recently refused because their account is disabled, with its email: what the refusal says.
    std::sync::RwLock<std::collections::HashMap<String, (String, std::time::Instant)>>,
);

/// How many digests [`Digests`] keeps before starting over.
const DIGESTS_KEPT: usize = 10_000;

/// The SHA-256 of credentials recently found good, by a keyed 128-bit hash of the secret, so a key presented on every
/// evaluation request is hashed with SHA-256 once, not on every request (it was a sixth of a single-flag evaluation).
///
/// Only the digest is remembered: whom it belongs to, and whether it is still good, is the cache's and the store's
/// answer as before. The two 64-bit SipHash keys are random per process, so nobody can make two secrets meet (a
/// chance of 2^-128 per guess); only credentials that authenticated are remembered, so guessing fills nothing.
#[derive(Debug, Default)]
struct Digests {
    keys: (std::hash::RandomState, std::hash::RandomState),
    known: std::sync::RwLock<std::collections::HashMap<[u64; 2], std::sync::Arc<str>>>,
}

impl Digests {
    fn key(&self, secret: &str) -> [u64; 2] {
        use std::hash::BuildHasher;
        [self.keys.0.hash_one(secret), self.keys.1.hash_one(secret)]
    }

    fn get(&self, secret: &str) -> Option<std::sync::Arc<str>> {
        self.known.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&self.key(secret)).cloned()
    }

    fn remember(&self, secret: &str, digest: std::sync::Arc<str>) {
        let key = self.key(secret);
        let mut known = self.known.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if known.len() >= DIGESTS_KEPT {
            known.clear();
        }
        known.insert(key, digest);
    }
}

/// How long after a failed look-up the next request probes the store again.
const PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A circuit breaker over credential look-ups. Closed, every cache miss asks the store. After a look-up finds the
/// store unavailable it opens: requests answer from what the cache last knew (or 503) without waiting for a store
/// that will not answer, and once a second one request probes; the first answer closes it again.
#[derive(Debug, Default)]
struct Breaker {
    open_since: std::sync::Mutex<Option<std::time::Instant>>,
    probing: std::sync::atomic::AtomicBool,
}

impl Breaker {
    /// Whether this request may ask the store.
    fn may_ask(&self) -> bool {
        self.may_ask_at(std::time::Instant::now())
    }

    fn may_ask_at(&self, now: std::time::Instant) -> bool {
        use std::sync::atomic::Ordering;
        let mut open_since = self.open_since.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match *open_since {
            None => true,
            Some(since) if now.saturating_duration_since(since) >= PROBE_INTERVAL => {
                let probe = self.probing.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok();
                if probe {
                    *open_since = Some(now);
                }
                probe
            }
            Some(_) => false,
        }
    }

    fn answered(&self, available: bool) {
        self.answered_at(available, std::time::Instant::now());
    }

    fn answered_at(&self, available: bool, now: std::time::Instant) {
        *self.open_since.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = (!available).then_some(now);
        self.probing.store(false, std::sync::atomic::Ordering::Release);
    }
}

impl CredentialCache {
    fn get(&self, hash: &str, max_age: std::time::Duration) -> Option<Option<Principal>> {
        let entries = self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(hash).filter(|(_, at)| at.elapsed() < max_age.min(CREDENTIAL_CACHE_TTL)).map(|(principal, _)| principal.clone())
    }

    /// The entry whatever its age: used when the store cannot be asked, so evaluation goes on through an outage.
    fn get_stale(&self, hash: &str) -> Option<Option<Principal>> {
        let entries = self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(hash).map(|(principal, _)| principal.clone())
    }

    fn put(&self, hash: String, principal: Option<Principal>) {
        let mut entries = self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= 10_000 {
            entries.retain(|_, (_, at)| at.elapsed() < CREDENTIAL_CACHE_TTL);
            if entries.len() >= 10_000 {
                entries.clear();
            }
        }
        entries.insert(hash, (principal, std::time::Instant::now()));
    }

    /// Remembers that the personal token `hash` was refused because its account, `email`, is disabled.
    fn note_disabled(&self, hash: &str, email: &str) {
        let mut entries = self.3.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= 10_000 {
            entries.retain(|_, (_, at)| at.elapsed() < CREDENTIAL_CACHE_TTL);
            if entries.len() >= 10_000 {
                entries.clear();
            }
        }
        entries.insert(hash.to_owned(), (email.to_owned(), std::time::Instant::now()));
    }

    /// The disabled account a refused credential belongs to, when its look-up said so recently (no store read: a
    /// refused token sent again and again costs what any cached refusal costs).
    pub fn disabled_owner(&self, hash: &str) -> Option<String> {
        let entries = self.3.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(hash).filter(|(_, at)| at.elapsed() < CREDENTIAL_CACHE_TTL).map(|(email, _)| email.clone())
    }

    /// After a write to users or tokens (committed or not, since a failed commit may have landed), forgets exactly the
    /// credentials it names: its tokens, every token acting as its users, and (after a user change) the credentials
    /// known to be refused, since re-enabling a user makes their tokens good again. Everything else stays, so a
    /// failed token change during an outage locks nobody out, while a revoked token or a disabled user is never
    /// answered from the cache again.
    pub fn forget(&self, touched: &CredentialsTouched) {
        if touched.is_empty() {
            return;
        }
        let mut entries = self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.retain(|hash, (principal, _)| {
            let named = touched.hashes.contains(hash)
                || match principal {
                    Some(Principal::User(actor)) => touched.users.contains(&actor.email),
                    Some(Principal::Sdk { token_id, .. }) => touched.token_ids.contains(token_id),
                    None => !touched.users.is_empty(),
                };
            !named
        });
        drop(entries);
        if !touched.users.is_empty() || !touched.hashes.is_empty() {
            let mut disabled = self.3.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            disabled.retain(|hash, (email, _)| !touched.users.contains(email) && !touched.hashes.contains(hash));
        }
    }
}

/// The credentials a write to users or tokens changes, for [`CredentialCache::forget`].
#[derive(Debug, Default)]
pub struct CredentialsTouched {
    hashes: std::collections::HashSet<String>,
    token_ids: std::collections::HashSet<String>,
    users: std::collections::HashSet<String>,
}

impl CredentialsTouched {
    /// What `write` touches: its tokens (by hash and id) and its users (every token acting as them).
    pub fn of(write: &vexil_store::Write) -> Self {
        Self {
            hashes: write.tokens.iter().map(|token| token.hash.clone()).collect(),
            token_ids: write.tokens.iter().map(|token| token.id.clone()).collect(),
            users: write.users.iter().map(|user| user.email.clone()).collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.hashes.is_empty() && self.users.is_empty()
    }
}

/// Finds who `token` belongs to; `None` for unknown, revoked or disabled credentials.
pub async fn authenticate(state: &AppState, token: &str, source: Source) -> ApiResult<Option<Principal>> {
    Ok(authenticate_with_digest(state, token, source).await?.map(|(principal, _)| principal))
}

/// [`authenticate`], with the credential's SHA-256 (what the store keeps, and the ticket of OFREP's event stream).
pub async fn authenticate_with_digest(
    state: &AppState,
    token: &str,
    source: Source,
) -> ApiResult<Option<(Principal, std::sync::Arc<str>)>> {
    let digests = &state.credentials.2;
    if let Some(digest) = digests.get(token) {
        return Ok(authenticate_hash(state, &digest, source).await?.map(|principal| (principal, digest)));
    }
    let digest: std::sync::Arc<str> = hash_token(token).into();
    let principal = authenticate_hash(state, &digest, source).await?;
    if principal.is_some() {
        digests.remember(token, digest.clone());
    }
    Ok(principal.map(|principal| (principal, digest)))
}

/// [`authenticate`] by the SHA-256 of the secret.
pub async fn authenticate_hash(state: &AppState, hash: &str, source: Source) -> ApiResult<Option<Principal>> {
    authenticate_hash_within(state, hash, source, CREDENTIAL_CACHE_TTL).await
}

/// [`authenticate_hash`] trusting a cached answer only when it is younger than `max_age`: open streams recheck
/// their credential this way every half heartbeat with half a heartbeat as the age, so a revocation made on another
/// server ends a stream within one heartbeat, not a heartbeat plus the cache's lifetime.
pub async fn authenticate_hash_within(
    state: &AppState,
    hash: &str,
    source: Source,
    max_age: std::time::Duration,
) -> ApiResult<Option<Principal>> {
    let cache = &state.credentials;
    let unavailable = |error: ApiError| match cache.get_stale(hash) {
        Some(principal) => Ok(principal),
        None => Err(error),
    };
    let lookups = &state.telemetry.lookups;
    let unavailable = |error: ApiError| {
        let answer = unavailable(error);
        if answer.is_ok() {
            lookups.stale.inc()
        } else {
            lookups.unavailable.inc()
        };
        answer
    };
    let principal = match cache.get(hash, max_age) {
        Some(principal) => {
            lookups.cache.inc();
            principal
        }
        None if !cache.1.may_ask() => unavailable(ApiError::store_unavailable())?,
        // A wiped or replaced store knows none of this deployment's credentials: that is no answer about them.
        None if state.identity_lost().is_some() => unavailable(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "store_replaced",
            state.identity_lost().unwrap_or_default(),
        ))?,
        None => match lookup(state, hash).await {
            // A credential known good that the store no longer knows: before taking that as a revocation, make sure the
            // store is still this deployment's (a wipe is noticed here at once, not at the next identity check).
            Ok(None) if matches!(cache.get_stale(hash), Some(Some(_))) && state.check_identity().await.is_some() => {
                lookups.stale.inc();
                cache.get_stale(hash).flatten()
            }
            Ok(principal) => {
                lookups.store.inc();
                cache.1.answered(true);
                cache.put(hash.to_owned(), principal.clone());
                principal
            }
            Err(error) if error.status == axum::http::StatusCode::SERVICE_UNAVAILABLE => {
                cache.1.answered(false);
                unavailable(error)?
            }
            Err(error) => {
                cache.1.answered(true);
                return Err(error);
            }
        },
    };
    Ok(principal.map(|principal| match principal {
        Principal::User(actor) => Principal::User(Actor { source, ..actor }),
        sdk => sdk,
    }))
}

async fn lookup(state: &AppState, hash: &str) -> ApiResult<Option<Principal>> {
    let now = crate::time::now();
    let usable = |record: &TokenRecord| record.revoked_at.is_none() && record.expires_at.as_ref().is_none_or(|expires| *expires > now);
    let Some(record) = state.store.token_by_hash(hash).await?.filter(usable) else {
        return Ok(None);
    };
    match record.kind {
        TokenKind::Sdk | TokenKind::Client => {
            let client = record.kind == TokenKind::Client;
            let origins = record.origins.into();
            Ok(record.environment.map(|environment| Principal::Sdk { token_id: record.id, environment, client, origins }))
        }
        // A trigger's secret works only at its own URL, never as a credential.
        TokenKind::Trigger => Ok(None),
        TokenKind::Personal => {
            let user = state.store.user(&record.user).await?;
            if let Some(user) = user.as_ref().filter(|user| user.disabled) {
                state.credentials.note_disabled(hash, &user.email);
            }
            let user = user.filter(|user| !user.disabled);
            Ok(user.map(|user| Principal::User(Actor { email: user.email, role: user.role, token_id: record.id, source: Source::Api })))
        }
    }
}

/// The refusal of a disabled account's login or token (401 `account_disabled`).
pub fn account_disabled(email: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "account_disabled",
        format!(
            "the account {} is disabled; an admin can enable it again (vexil user enable {})",
            vexil_core::name::printable(email),
            vexil_core::name::printable(email)
        ),
    )
}

fn source_of(parts: &Parts) -> Source {
    parts
        .headers
        .get("x-vexil-source")
        .and_then(|value| value.to_str().ok())
        .and_then(Source::parse)
        .filter(|source| *source != Source::System)
        .unwrap_or(Source::Api)
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let (token, by_session) = match parts.headers.get(axum::http::header::AUTHORIZATION) {
            Some(header) => {
                let token = header
                    .to_str()
                    .ok()
                    .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
                    .map(str::trim)
                    .filter(|token| !token.is_empty())
                    .ok_or_else(|| ApiError::unauthenticated("the Authorization header must be `Bearer <token>`"))?;
                (token.to_owned(), false)
            }
            None => match session_cookie(&parts.headers) {
                Some(secret) => (secret, true),
                None => {
                    return Err(ApiError::unauthenticated(
                        "no credentials: send `Authorization: Bearer <token>` (vexil login, or vexil token create)",
                    ));
                }
            },
        };
        if by_session && !parts.method.is_safe() {
            // A cookie is sent by the browser whoever made the page; the CSRF token proves it was ours.
            let sent = parts.headers.get("x-csrf-token").and_then(|value| value.to_str().ok()).unwrap_or_default();
            if sent != csrf_token(&token) {
                return Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "csrf_failed",
                    "this request carries the session cookie but not its CSRF token (X-CSRF-Token); reload the panel",
                ));
            }
        }
        let source = if by_session { Source::Panel } else { source_of(parts) };
        match authenticate(state, &token, source).await? {
            Some(Principal::User(actor)) => Ok(actor),
            Some(Principal::Sdk { .. }) => {
                Err(ApiError::forbidden("SDK keys are read-only (stream, evaluate, metrics); use a personal API token for this"))
            }
            // Refused: its holder is told why when it is a disabled account's, rather than to log in again, which
            // would fail too (from what the look-up noted, never another store read).
            None => match state.credentials.disabled_owner(&hash_token(&token)) {
                Some(email) => Err(account_disabled(&email)),
                None if by_session => Err(ApiError::unauthenticated("the session has ended; log in again")),
                None => Err(ApiError::unauthenticated("the token is unknown or revoked; log in again or create a new token")),
            },
        }
    }
}

/// An Argon2id hash (default parameters) verified against when a login names an unknown account,
/// so that timing does not reveal which accounts exist.
pub const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0pB0Hhv2+L0mS5uQ2mQk8Qvq9G9p7sGZ8yK2mF6x0ro";

/// Failed logins allowed per account within [`LOGIN_WINDOW`] before further attempts are refused.
pub const LOGIN_ATTEMPTS: u32 = 5;

/// The window failed logins are counted in, and how long an account stays locked after too many.
pub const LOGIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Failed (and in-flight) logins an address may spend on one account within [`LOGIN_WINDOW`].
const ADDRESS_ACCOUNT_ATTEMPTS: u32 = LOGIN_ATTEMPTS;

/// Failed (and in-flight) logins an address may spend on all accounts together within [`LOGIN_WINDOW`].
const ADDRESS_ATTEMPTS: u32 = 10 * LOGIN_ATTEMPTS;

/// Counts logins so a password cannot be guessed at speed, without letting anyone lock an account out.
///
/// The budget is per client address *and* account ([`LOGIN_ATTEMPTS`] within [`LOGIN_WINDOW`]) plus per address
/// across accounts (ten times that), so a guesser is stopped while the account's owner, working from another
/// address, still logs in. An attempt takes its place in the budget *before* the password is checked (an
/// [`Attempt`]), so forty concurrent wrong passwords get five checks, not forty; it counts as a failure unless it
/// succeeds, and a success clears that address's count for the account.
#[derive(Debug, Default)]
pub struct LoginLimiter(std::sync::Mutex<std::collections::HashMap<LimiterKey, (u32, std::time::Instant)>>);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LimiterKey {
    AddressAccount(std::net::IpAddr, String),
    Address(std::net::IpAddr),
}

/// One login attempt's place in the budget; dropped without [`Attempt::succeeded`], it stays counted as a failure.
#[derive(Debug)]
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    keys: [LimiterKey; 2],
}

impl LoginLimiter {
    /// Takes a place for an attempt on `email` from `address`, or refuses (429) with how long to wait.
    pub fn attempt(&self, address: std::net::IpAddr, email: &str) -> ApiResult<Attempt<'_>> {
        let keys = [LimiterKey::AddressAccount(address, email.to_owned()), LimiterKey::Address(address)];
        let mut counts = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if counts.len() > 100_000 {
            counts.retain(|_, (_, since)| since.elapsed() < LOGIN_WINDOW);
        }
        for (key, limit) in keys.iter().zip([ADDRESS_ACCOUNT_ATTEMPTS, ADDRESS_ATTEMPTS]) {
            if let Some((count, since)) = counts.get(key)
                && *count >= limit
                && since.elapsed() < LOGIN_WINDOW
            {
                let minutes = (LOGIN_WINDOW - since.elapsed()).as_secs().div_ceil(60);
                let whose = if matches!(key, LimiterKey::Address(_)) { "from your address" } else { "for this account from your address" };
                return Err(ApiError::new(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    format!("too many failed logins {whose}; try again in {minutes} minutes"),
                ));
            }
        }
        for key in &keys {
            let entry = counts.entry(key.clone()).or_insert((0, std::time::Instant::now()));
            if entry.1.elapsed() >= LOGIN_WINDOW {
                *entry = (0, std::time::Instant::now());
            }
            entry.0 += 1;
        }
        Ok(Attempt { limiter: self, keys })
    }
}

impl Attempt<'_> {
    /// The password was right: this address starts over for this account (and gets this attempt back overall).
    pub fn succeeded(self) {
        let mut counts = self.limiter.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        counts.remove(&self.keys[0]);
        if let Some(entry) = counts.get_mut(&self.keys[1]) {
            entry.0 = entry.0.saturating_sub(1);
        }
    }
}

/// Argon2 checks running at once, and how long a login waits for one: each holds ~19 MiB while it runs, so a
/// flood of logins costs a bounded amount of memory and is answered 503 instead of queueing without end.
pub const PASSWORD_CHECKS: usize = 4;
const PASSWORD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `work` (an Argon2 hash or check) once one of the [`PASSWORD_CHECKS`] places is free, on one of as many
/// dedicated threads. Not on the blocking pool: its many threads would each keep a malloc arena holding an Argon2
/// block after the work is done (100 concurrent logins left ~1 GiB resident even when only four ran at a time).
pub async fn password_work<T: Send + 'static>(state: &AppState, work: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    let permit = tokio::time::timeout(PASSWORD_WAIT, state.password_checks.acquire()).await.ok().and_then(Result::ok).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many logins are being checked at once; retry in a few seconds",
        )
    })?;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let job: PasswordJob = Box::new(move || {
        let _ = sender.send(work());
    });
    password_threads().lock().unwrap_or_else(|poisoned| poisoned.into_inner()).send(job).map_err(ApiError::internal)?;
    let outcome = receiver.await.map_err(ApiError::internal);
    drop(permit);
    outcome
}

type PasswordJob = Box<dyn FnOnce() + Send>;

/// The queue of the password threads, started on first use.
fn password_threads() -> &'static std::sync::Mutex<std::sync::mpsc::Sender<PasswordJob>> {
    static QUEUE: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<PasswordJob>>> = std::sync::OnceLock::new();
    QUEUE.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel::<PasswordJob>();
        let receiver = std::sync::Arc::new(std::sync::Mutex::new(receiver));
        for index in 0..PASSWORD_CHECKS {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("vexil-password-{index}"))
                .spawn(move || {
                    loop {
                        let job = receiver.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("a password thread starts");
        }
        std::sync::Mutex::new(sender)
    })
}

/// Hex SHA-256 of a token secret, as stored.
pub fn hash_token(token: &str) -> String {
    // Every authenticated request hashes its credential: written with a table into one allocation, as `hex::encode`'s
    // character iterator is not.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(token.as_bytes());
    let mut text = Vec::with_capacity(64);
    for byte in digest {
        text.push(DIGITS[usize::from(byte >> 4)]);
        text.push(DIGITS[usize::from(byte & 0x0f)]);
    }
    String::from_utf8(text).expect("hex digits are ASCII")
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

/// The largest Argon2 memory a stored hash may ask of a check (ours use 19 MiB).
const MAX_CHECK_MEMORY_KIB: u32 = 64 * 1024;

/// Whether `password` matches a stored Argon2 hash. The Argon2 memory is one buffer per thread, reused: checks
/// run on the password threads ([`password_work`]), so a flood of logins holds at most that many buffers.
pub fn verify_password(password: &str, stored: &str) -> bool {
    thread_local! {
        static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let Ok(hash) = PasswordHash::new(stored) else { return false };
    let (Ok(algorithm), Ok(params), Some(expected), Some(salt)) =
        (argon2::Algorithm::try_from(hash.algorithm), argon2::Params::try_from(&hash), hash.hash, hash.salt)
    else {
        return false;
    };
    let version = hash.version.map(argon2::Version::try_from).unwrap_or(Ok(argon2::Version::V0x13));
    let (Ok(version), true) = (version, params.m_cost() <= MAX_CHECK_MEMORY_KIB) else { return false };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let mut out = vec![0u8; expected.len()];
    let hashed = BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        if blocks.len() < params.block_count() {
            blocks.resize(params.block_count(), argon2::Block::default());
        }
        Argon2::new(algorithm, version, params.clone()).hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut blocks[..])
    });
    // `Output`'s equality is constant-time.
    hashed.is_ok() && argon2::password_hash::Output::new(&out).is_ok_and(|computed| computed == expected)
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
        flag: None,
        expires_at: None,
        action: None,
        origins: Vec::new(),
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
        definition: None,
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
    state.commit(write).await?;
    Ok(Some(BootstrapCredentials { email, password: generated_password.or(options.password), token: Some(token) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_digests_are_found_by_exactly_their_secret_and_bounded() {
        let digests = Digests::default();
        let secret = "vxs_0123456789abcdefghijklmnopqrstuvwxyzABCD";
        assert!(digests.get(secret).is_none());
        digests.remember(secret, hash_token(secret).into());
        assert_eq!(digests.get(secret).as_deref(), Some(hash_token(secret).as_str()));
        for other in ["vxs_0123456789abcdefghijklmnopqrstuvwxyzABCE", "", &secret[..secret.len() - 1]] {
            assert!(digests.get(other).is_none(), "{other}");
        }
        for index in 0..DIGESTS_KEPT {
            digests.remember(&format!("vxs_{index}"), hash_token("x").into());
        }
        assert!(digests.known.read().unwrap().len() <= DIGESTS_KEPT, "at most {DIGESTS_KEPT} are kept");
    }

    #[test]
    fn a_token_s_hash_is_the_hex_of_its_sha256() {
        for token in ["", "vxl_test_admin_token_0123456789", "vxs_ÿ"] {
            assert_eq!(hash_token(token), hex::encode(Sha256::digest(token.as_bytes())));
        }
    }

    #[test]
    fn through_an_outage_the_breaker_lets_one_request_a_second_ask_the_store() {
        let breaker = Breaker::default();
        let start = std::time::Instant::now();
        let at = |millis: u64| start + std::time::Duration::from_millis(millis);
        assert!(breaker.may_ask_at(at(0)), "closed: every cache miss asks the store");
        breaker.answered_at(false, at(0));
        // Open: a thousand requests in the next second ask nothing.
        assert!((0..1000).all(|request| !breaker.may_ask_at(at(request % 999))));
        // A second on, exactly one probes; while it is out, nobody else asks.
        assert!(breaker.may_ask_at(at(1000)));
        assert!((0..1000).all(|_| !breaker.may_ask_at(at(1500))));
        assert!(!breaker.may_ask_at(at(2500)), "the probe has not answered: still one at a time");
        // The probe failed: another second of silence, then one more probe.
        breaker.answered_at(false, at(2600));
        assert!(!breaker.may_ask_at(at(3500)));
        assert!(breaker.may_ask_at(at(3600)));
        // It answered: closed again, everyone asks.
        breaker.answered_at(true, at(3700));
        assert!((0..10).all(|_| breaker.may_ask_at(at(3701))));
    }

    #[test]
    fn passwords_verify_and_the_decoy_costs_a_real_hash() {
        let stored = hash_password("correct horse battery").unwrap();
        assert!(verify_password("correct horse battery", &stored));
        assert!(!verify_password("correct horse", &stored));
        let decoy = PasswordHash::new(DECOY_HASH).expect("the decoy parses, so it is verified like a real hash");
        assert_eq!(decoy.algorithm.as_str(), "argon2id");
        assert!(!verify_password("anything", DECOY_HASH));
    }

    #[test]
    fn the_limiter_stops_a_guesser_but_not_the_owner_elsewhere() {
        let limiter = LoginLimiter::default();
        let (guesser, owner): (std::net::IpAddr, std::net::IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        // Places are taken before the check: concurrent attempts beyond the budget are refused at once.
        let attempts: Vec<_> = (0..LOGIN_ATTEMPTS).map(|_| limiter.attempt(guesser, "a@x").unwrap()).collect();
        assert_eq!(limiter.attempt(guesser, "a@x").unwrap_err().status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        drop(attempts);
        assert_eq!(limiter.attempt(guesser, "a@x").unwrap_err().status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        // The owner, from another address, is not locked out, and a success starts that address over.
        for _ in 0..3 {
            drop(limiter.attempt(owner, "a@x").unwrap());
        }
        limiter.attempt(owner, "a@x").unwrap().succeeded();
        for _ in 0..LOGIN_ATTEMPTS - 1 {
            drop(limiter.attempt(owner, "a@x").unwrap());
        }
        // One address spraying many accounts runs out too.
        let sprayer: std::net::IpAddr = "10.0.0.3".parse().unwrap();
        let refused = (0..ADDRESS_ATTEMPTS + 1).filter(|index| limiter.attempt(sprayer, &format!("u{index}@x")).is_err()).count();
        assert_eq!(refused, 1);
    }
}
