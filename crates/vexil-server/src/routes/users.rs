//! Accounts: login (password → personal token), who am I, users and tokens.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_core::{AuditAction, AuditDraft, Role};
use vexil_store::{TokenKind, User, Write};

use crate::auth::{
    Actor, DECOY_HASH, SESSION_COOKIE, SESSION_HOURS, TOKEN_PREFIX, check_email, csrf_token, hash_password, random_password, random_secret,
    session_cookie, token_record, verify_password,
};
use crate::error::{ApiError, ApiJson, ApiJsonOrEmpty, ApiPath, ApiResult};
use crate::service::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(open_session, close_session))
        .routes(routes!(me))
        .routes(routes!(list_users, add_user))
        .routes(routes!(update_user))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    email: String,
    password: String,
    /// A label for the token created (`vexil login` sends the host name).
    token_name: Option<String>,
}

/// A personal token, shown once.
#[derive(Debug, Serialize, ToSchema)]
struct LoginResponse {
    email: String,
    role: Role,
    /// `vxl_…`: send it as `Authorization: Bearer <token>`.
    token: String,
}

/// The panel's session: who is logged in, and the CSRF token its state-changing requests must send (`X-CSRF-Token`).
#[derive(Debug, Serialize, ToSchema)]
struct SessionResponse {
    email: String,
    role: Role,
    csrf: String,
}

/// The answer to a logout.
#[derive(Debug, Serialize, ToSchema)]
struct LoggedOut {
    /// Always true: logging out always works.
    logged_out: bool,
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
struct MeResponse {
    email: String,
    role: Role,
    /// The token (or session) this request was made with.
    token_id: String,
    /// For a panel session: the CSRF token its state-changing requests must send.
    csrf: Option<String>,
}

/// A user just added.
#[derive(Debug, Serialize, ToSchema)]
struct UserAdded {
    email: String,
    role: Role,
    /// The generated password, when none was given (shown once).
    password: Option<String>,
}

/// A token or key just created; the secret is shown once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum TokenCreated {
    /// A personal token.
    Personal {
        id: String,
        /// Whose token it is.
        user: String,
        /// `vxl_…`.
        token: String,
    },
    /// An SDK key for one environment.
    Sdk {
        id: String,
        /// Always `sdk`.
        kind: String,
        /// The environment the key reads.
        environment: String,
        /// `vxs_…`.
        token: String,
    },
}

/// A token after `DELETE /api/tokens/{id}`.
#[derive(Debug, Serialize, ToSchema)]
struct TokenRevoked {
    id: String,
    /// When it was revoked (RFC 3339 UTC).
    revoked_at: Option<String>,
}

fn audit(actor_email: &str, source: vexil_core::Source, action: AuditAction, after: serde_json::Value) -> AuditDraft {
    AuditDraft {
        flag: None,
        action,
        environment: None,
        user: actor_email.to_owned(),
        timestamp: crate::time::now(),
        reason: None,
        from_environment: None,
        before: None,
        after: Some(after),
        source,
        definition: None,
    }
}

fn check_password(password: &str) -> ApiResult<()> {
    if password.chars().count() < 8 || password.chars().count() > 200 {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", "password must be 8 to 200 characters"));
    }
    Ok(())
}

fn check_label(name: &str) -> ApiResult<()> {
    if !vexil_core::text::has_visible_text(name)
        || name.len() > 100
        || name.chars().any(|c| c.is_control() || vexil_core::text::is_bidi_control(c))
    {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", "token name must be 1 to 100 printable characters"));
    }
    Ok(())
}

/// Checks an email and password, with the per-account rate limit and the same cost for unknown accounts.
async fn verify_login(state: &AppState, address: std::net::IpAddr, email: &str, password: &str) -> ApiResult<User> {
    let refused = || ApiError::unauthenticated("email or password is wrong");
    let attempt = state.login_limiter.attempt(address, email)?;
    let user = state.store.user(email).await?;
    // Unknown accounts cost the same hash as known ones, so timing does not tell which emails exist.
    let stored = user.as_ref().and_then(|user| user.password_hash.clone()).unwrap_or_else(|| DECOY_HASH.to_owned());
    let password = password.to_owned();
    let matches = crate::auth::password_work(state, move || verify_password(&password, &stored)).await?;
    let Some(user) = user.filter(|_| matches) else {
        return Err(refused());
    };
    attempt.succeeded();
    // Only whoever knows the password learns that the account is disabled, and what to do about it.
    if user.disabled {
        return Err(crate::auth::account_disabled(&user.email));
    }
    Ok(user)
}

/// The client's address as the listener saw it (the loopback address when a test calls the router directly).
type Peer = Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>;

/// The client a login comes from: the connecting address, or, when that is one of the configured `trusted_proxies`,
/// the last address in `X-Forwarded-For` that is not one of them (what the nearest trusted proxy saw).
fn client_address(state: &AppState, peer: &Peer, headers: &axum::http::HeaderMap) -> std::net::IpAddr {
    let connected = peer.as_ref().map(|peer| peer.0.0.ip()).unwrap_or(std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST));
    address_behind_proxies(state, connected, headers)
}

/// [`client_address`] of a request whose connecting address is `connected`.
pub(crate) fn address_behind_proxies(state: &AppState, connected: std::net::IpAddr, headers: &axum::http::HeaderMap) -> std::net::IpAddr {
    let trusted = &state.config.trusted_proxies;
    if !trusted.contains(&connected) {
        return connected;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|hop| forwarded_hop(hop.trim()))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        // Walking back from the nearest proxy: trusted hops are skipped, the first other address is the client, and an
        // entry that is no address ends the walk (what lies before it is the client's own say).
        .take_while(Option::is_some)
        .flatten()
        .find(|hop| !trusted.contains(hop))
        .unwrap_or(connected)
}

/// One `X-Forwarded-For` entry: `203.0.113.8`, `203.0.113.8:51234`, `2001:db8::1` or `[2001:db8::1]:51234`.
fn forwarded_hop(hop: &str) -> Option<std::net::IpAddr> {
    hop.parse::<std::net::IpAddr>().ok().or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|address| address.ip()))
}

/// Log in with a password: the answer carries a new personal token.
#[utoipa::path(post, path = "/api/auth/login", tag = "accounts", security(()), request_body = LoginRequest,
    responses((status = OK, body = LoginResponse)))]
async fn login(
    State(state): State<AppState>,
    peer: Peer,
    headers: axum::http::HeaderMap,
    ApiJson(request): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let user = verify_login(&state, client_address(&state, &peer, &headers), &request.email, &request.password).await?;
    let name = request.token_name.unwrap_or_else(|| "vexil login".to_owned());
    check_label(&name)?;
    let secret = random_secret(TOKEN_PREFIX);
    let record = token_record(&secret, TokenKind::Personal, &user.email, None, &name);
    let write = Write {
        tokens: vec![record.clone()],
        audit: vec![audit(
            &user.email,
            vexil_core::Source::Api,
            AuditAction::TokenCreate,
            json!({"id": record.id, "user": user.email, "name": name}),
        )],
        // Only while the account is as the password was checked against (not changed or disabled meanwhile).
        reads: vec![vexil_store::Read::User { email: user.email.clone(), user: Some(user.clone()) }],
        ..Write::default()
    };
    state.commit(write).await?;
    Ok(Json(LoginResponse { email: user.email, role: user.role, token: secret }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SessionRequest {
    email: String,
    password: String,
}

/// `POST /api/auth/session`: the panel's login. The session is a personal token that expires, held in an HttpOnly,
/// SameSite=Strict cookie (Secure behind HTTPS); the answer carries the CSRF token state-changing requests must send.
#[utoipa::path(post, path = "/api/auth/session", tag = "accounts", security(()), request_body = SessionRequest,
    responses((status = OK, body = SessionResponse, headers(("set-cookie" = String, description = "the session cookie")))))]
async fn open_session(
    State(state): State<AppState>,
    peer: Peer,
    headers: axum::http::HeaderMap,
    ApiJson(request): ApiJson<SessionRequest>,
) -> ApiResult<Response> {
    let user = verify_login(&state, client_address(&state, &peer, &headers), &request.email, &request.password).await?;
    let secret = random_secret(TOKEN_PREFIX);
    let mut record = token_record(&secret, TokenKind::Personal, &user.email, None, "panel session");
    record.expires_at = Some(crate::time::format(time::OffsetDateTime::now_utc() + time::Duration::hours(SESSION_HOURS)));
    let write = Write {
        tokens: vec![record.clone()],
        audit: vec![audit(
            &user.email,
            vexil_core::Source::Panel,
            AuditAction::TokenCreate,
            json!({"id": record.id, "user": user.email, "name": "panel session"}),
        )],
        reads: vec![vexil_store::Read::User { email: user.email.clone(), user: Some(user.clone()) }],
        ..Write::default()
    };
    state.commit(write).await?;
    let secure = headers.get("x-forwarded-proto").is_some_and(|value| value == "https");
    let cookie = format!(
        "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_HOURS * 3600,
        if secure { "; Secure" } else { "" }
    );
    let mut response = Json(SessionResponse { email: user.email, role: user.role, csrf: csrf_token(&secret) }).into_response();
    response.headers_mut().insert(axum::http::header::SET_COOKIE, cookie.parse().map_err(ApiError::internal)?);
    Ok(response)
}

/// `DELETE /api/auth/session`: log out; the session's token is revoked and the cookie cleared.
#[utoipa::path(delete, path = "/api/auth/session", tag = "accounts", responses((status = OK, body = LoggedOut)))]
async fn close_session(State(state): State<AppState>, actor: Actor, headers: axum::http::HeaderMap) -> ApiResult<Response> {
    if let Some(secret) = session_cookie(&headers) {
        let hash = crate::auth::hash_token(&secret);
        let guard = state.serialised().await;
        if let Some(mut token) = state.store.token_by_hash(&hash).await?.filter(|token| token.revoked_at.is_none()) {
            token.revoked_at = Some(crate::time::now());
            let write = Write {
                tokens: vec![token.clone()],
                audit: vec![audit(
                    &actor.email,
                    actor.source,
                    AuditAction::TokenRevoke,
                    json!({"id": token.id, "user": token.user, "name": "panel session"}),
                )],
                ..Write::default()
            };
            drop(guard);
            // Logging out always works, whatever became of the account.
            state.commit(write).await?;
        }
    }
    let mut response = Json(LoggedOut { logged_out: true }).into_response();
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    response.headers_mut().insert(axum::http::header::SET_COOKIE, cookie.parse().map_err(ApiError::internal)?);
    Ok(response)
}

/// Who the caller is.
#[utoipa::path(get, path = "/api/me", tag = "accounts", responses((status = OK, body = MeResponse)))]
async fn me(actor: Actor, headers: axum::http::HeaderMap) -> Json<MeResponse> {
    let csrf = if headers.get(axum::http::header::AUTHORIZATION).is_none() {
        session_cookie(&headers).map(|secret| csrf_token(&secret))
    } else {
        None
    };
    Json(MeResponse { email: actor.email, role: actor.role, token_id: actor.token_id, csrf })
}

/// A user account.
#[derive(Debug, Serialize, ToSchema)]
struct UserView {
    email: String,
    role: Role,
    created_at: String,
    disabled: bool,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        Self { email: user.email, role: user.role, created_at: user.created_at, disabled: user.disabled }
    }
}

/// Every user (admin).
#[utoipa::path(get, path = "/api/users", tag = "accounts", responses((status = OK, body = Vec<UserView>)))]
async fn list_users(State(state): State<AppState>, actor: Actor) -> ApiResult<Json<Vec<UserView>>> {
    actor.role.may_administer().map_err(ApiError::forbidden)?;
    Ok(Json(state.store.users().await?.into_iter().map(UserView::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AddUserRequest {
    email: String,
    /// `viewer`, `developer` or `admin`.
    role: String,
    /// 8 to 200 characters; one is generated (and answered once) when absent.
    password: Option<String>,
}

/// Add a user (admin).
#[utoipa::path(post, path = "/api/users", tag = "accounts", request_body = AddUserRequest,
    responses((status = CREATED, body = UserAdded)))]
async fn add_user(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(request): ApiJson<AddUserRequest>,
) -> ApiResult<(StatusCode, Json<UserAdded>)> {
    actor.role.may_administer().map_err(ApiError::forbidden)?;
    check_email(&request.email)?;
    let role = Role::parse(&request.role)?;
    let generated = request.password.is_none().then(random_password);
    let password = request.password.clone().or_else(|| generated.clone()).unwrap_or_default();
    check_password(&password)?;
    // Hashed before the write lock is taken: Argon2 takes tens of milliseconds, and nothing may queue the kill switch.
    let password_hash = {
        let password = password.clone();
        crate::auth::password_work(&state, move || hash_password(&password)).await??
    };
    let guard = state.serialised().await;
    if state.store.user(&request.email).await?.is_some() {
        return Err(ApiError::conflict(
            "user_exists",
            format!("user {} already exists; change their role with `vexil user set-role {} ROLE`", request.email, request.email),
        ));
    }
    let user =
        User { email: request.email.clone(), role, password_hash: Some(password_hash), created_at: crate::time::now(), disabled: false };
    let write = Write {
        users: vec![user],
        audit: vec![audit(&actor.email, actor.source, AuditAction::UserAdd, json!({"email": request.email, "role": role}))],
        // Nobody else created this user meanwhile (on another server).
        reads: vec![vexil_store::Read::User { email: request.email.clone(), user: None }],
        ..Write::default()
    };
    state.commit_holding(guard, &actor, write).await?;
    Ok((StatusCode::CREATED, Json(UserAdded { email: request.email, role, password: generated })))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateUserRequest {
    /// `viewer`, `developer` or `admin` (admin only).
    role: Option<String>,
    /// Disable or enable the account (admin only).
    disabled: Option<bool>,
    /// A new password (yours, or anyone's as admin); it ends the account's other sessions and personal tokens.
    password: Option<String>,
}

/// Change a user's role, disable or enable them, or set a password.
#[utoipa::path(patch, path = "/api/users/{email}", tag = "accounts", params(("email" = String, Path, description = "the user's email")),
    request_body = UpdateUserRequest, responses((status = OK, body = UserView)))]
async fn update_user(
    State(state): State<AppState>,
    peer: Peer,
    headers: axum::http::HeaderMap,
    actor: Actor,
    ApiPath(email): ApiPath<String>,
    ApiJson(request): ApiJson<UpdateUserRequest>,
) -> ApiResult<Json<UserView>> {
    let changing_self_password_only = email == actor.email && request.role.is_none() && request.disabled.is_none();
    if !changing_self_password_only {
        actor.role.may_administer().map_err(ApiError::forbidden)?;
    }
    // Hashed before the write lock is taken, so a flood of password changes cannot queue anyone else's write.
    let password_hash = match &request.password {
        Some(password) => {
            check_password(password)?;
            // Password changes have a budget like logins (5 per 15 minutes from one address for one account): each
            // costs an Argon2 hash, and a flood of them would keep the password threads from logins.
            let _budget = state.password_changes.attempt(client_address(&state, &peer, &headers), &email)?;
            let password = password.clone();
            Some(crate::auth::password_work(&state, move || hash_password(&password)).await??)
        }
        None => None,
    };
    // The caller's role is checked again under the lock, and the commit checks the record it was read from
    // (`commit_holding`): an admin disabled or demoted while this request waited changes nothing.
    let guard = state.serialised().await;
    let mut user = state
        .store
        .user(&email)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {} does not exist", vexil_core::name::printable(&email))))?;
    let was_admin = user.role == Role::Admin && !user.disabled;
    let before = json!({"role": user.role, "disabled": user.disabled});
    // The record is written back whole: the commit checks it is still what was read here, so a disable made through
    // another server meanwhile is never overwritten by this (a password change, say).
    let mut reads = vec![vexil_store::Read::User { email: email.clone(), user: Some(user.clone()) }];
    if let Some(role) = &request.role {
        user.role = Role::parse(role)?;
    }
    if let Some(disabled) = request.disabled {
        user.disabled = disabled;
    }
    if password_hash.is_some() {
        user.password_hash = password_hash;
    }
    // Whoever is demoted or disabled, counted under the lock: two admins demoting each other at once leave one.
    if was_admin && (user.role != Role::Admin || user.disabled) {
        let other_admins: Vec<User> = state
            .store
            .users()
            .await?
            .into_iter()
            .filter(|other| other.email != email && other.role == Role::Admin && !other.disabled)
            .collect();
        // The admins counted must still be admins when this commits: two servers demoting each other's admin at once
        // conflict instead of leaving none.
        reads.extend(other_admins.iter().map(|other| vexil_store::Read::User { email: other.email.clone(), user: Some(other.clone()) }));
        if other_admins.is_empty() {
            let whom = if email == actor.email { "you are".to_owned() } else { format!("{} is", vexil_core::name::printable(&email)) };
            return Err(ApiError::conflict("last_admin", format!("{whom} the last admin; make someone else admin first")));
        }
    }
    // A new password ends every session and personal token of the account (but the one making the change, when the
    // user changes their own): whoever logged in with the old password is out.
    let mut revoked = Vec::new();
    if request.password.is_some() {
        let now = crate::time::now();
        for mut token in state.store.tokens().await? {
            let theirs = token.user == email && token.kind == TokenKind::Personal && token.revoked_at.is_none();
            if theirs && token.id != actor.token_id {
                token.revoked_at = Some(now.clone());
                revoked.push(token);
            }
        }
    }
    let mut record = audit(
        &actor.email,
        actor.source,
        AuditAction::UserUpdate,
        json!({"email": user.email, "role": user.role, "disabled": user.disabled, "password_changed": request.password.is_some(),
            "tokens_revoked": revoked.iter().map(|token| token.id.clone()).collect::<Vec<_>>()}),
    );
    record.before = Some(before);
    let write = Write { users: vec![user.clone()], tokens: revoked, audit: vec![record], reads, ..Write::default() };
    state.commit_holding(guard, &actor, write).await?;
    Ok(Json(user.into()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTokenRequest {
    /// Whose token (yourself when absent; someone else needs admin).
    user: Option<String>,
    name: Option<String>,
    /// `personal` (default), `sdk` or `client` (a client-side key).
    kind: Option<String>,
    /// For SDK keys: the environment the key reads.
    environment: Option<String>,
    /// For client-side keys: the web origins whose pages may use the key (`https://app.example.com`); any when absent.
    origins: Option<Vec<String>>,
}

/// A token or key, without its secret.
#[derive(Debug, Serialize, ToSchema)]
struct TokenView {
    id: String,
    /// `personal`, `sdk`, `client` or `trigger`.
    #[schema(value_type = String)]
    kind: TokenKind,
    user: String,
    environment: Option<String>,
    flag: Option<String>,
    /// For triggers: `disable` or `rollback`.
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<String>,
    name: String,
    created_at: String,
    revoked_at: Option<String>,
    /// For client-side keys: the web origins whose pages may use it (any when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    origins: Vec<String>,
}

/// Create a personal token (yours, or anyone's as admin) or an SDK key for one environment.
#[utoipa::path(post, path = "/api/tokens", tag = "accounts", request_body(content = Option<CreateTokenRequest>),
    responses((status = CREATED, body = TokenCreated)))]
async fn create_token(
    State(state): State<AppState>,
    actor: Actor,
    ApiJsonOrEmpty(request): ApiJsonOrEmpty<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    let name = request.name.clone().unwrap_or_else(|| "api".to_owned());
    check_label(&name)?;
    match request.kind.as_deref().unwrap_or("personal") {
        "personal" => {}
        "sdk" => return create_sdk_key(state, actor, request, name, false).await,
        "client" => return create_sdk_key(state, actor, request, name, true).await,
        other => {
            return Err(ApiError::bad_request(format!(
                "token kind `{}` is unknown; accepted: personal, sdk, client",
                vexil_core::name::printable(other)
            )));
        }
    }
    if request.environment.is_some() {
        return Err(ApiError::bad_request(
            "personal tokens act as their user in every environment; `environment` is for SDK keys (kind sdk)",
        ));
    }
    if request.origins.is_some() {
        return Err(origins_for_client_keys_only());
    }
    let owner = request.user.unwrap_or_else(|| actor.email.clone());
    if owner != actor.email {
        actor.role.may_administer().map_err(ApiError::forbidden)?;
    }
    let user = state.store.user(&owner).await?.ok_or_else(|| {
        ApiError::not_found(format!("user {} does not exist; add them first (vexil user add)", vexil_core::name::printable(&owner)))
    })?;
    let secret = random_secret(TOKEN_PREFIX);
    let record = token_record(&secret, TokenKind::Personal, &user.email, None, &name);
    let write = Write {
        tokens: vec![record.clone()],
        audit: vec![audit(
            &actor.email,
            actor.source,
            AuditAction::TokenCreate,
            json!({"id": record.id, "user": user.email, "name": name}),
        )],
        // The owner is still as read (not disabled through another server meanwhile).
        reads: vec![vexil_store::Read::User { email: user.email.clone(), user: Some(user.clone()) }],
        ..Write::default()
    };
    state.commit_as(&actor, write).await?;
    Ok((StatusCode::CREATED, Json(TokenCreated::Personal { id: record.id, user: user.email, token: secret })))
}

/// An SDK key (or, with `client`, a client-side key) reads one environment; creating one takes the right to change
/// that environment, because the key's metrics can later steer rollouts there.
async fn create_sdk_key(
    state: AppState,
    actor: Actor,
    request: CreateTokenRequest,
    name: String,
    client: bool,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    let (kind, flag) = if client { ("client", "--client") } else { ("sdk", "--sdk") };
    let environment = request
        .environment
        .as_deref()
        .ok_or_else(|| ApiError::bad_request(format!("an SDK key needs an environment (vexil token create {flag} --env staging)")))?;
    let environment = state.environment(environment)?;
    actor.role.may_change(&environment).map_err(ApiError::forbidden)?;
    if request.user.is_some() {
        return Err(ApiError::bad_request("SDK keys belong to an environment, not a user; leave `user` out"));
    }
    if request.origins.is_some() && !client {
        return Err(origins_for_client_keys_only());
    }
    let origins = request.origins.unwrap_or_default();
    if origins.len() > MAX_ORIGINS {
        return Err(ApiError::invalid_field(
            "origins",
            format!("a key admits at most {MAX_ORIGINS} origins; this names {}", origins.len()),
        ));
    }
    let origins = origins.iter().enumerate().map(|(index, origin)| web_origin(index, origin)).collect::<ApiResult<Vec<_>>>()?;
    let secret = random_secret(if client { crate::auth::CLIENT_KEY_PREFIX } else { crate::auth::SDK_KEY_PREFIX });
    let token_kind = if client { TokenKind::Client } else { TokenKind::Sdk };
    let mut record = token_record(&secret, token_kind, &actor.email, Some(environment.key.clone()), &name);
    record.origins = origins;
    let mut details = json!({"id": record.id, "kind": kind, "environment": environment.key, "name": name});
    if !record.origins.is_empty() {
        details["origins"] = json!(record.origins);
    }
    let mut entry = audit(&actor.email, actor.source, AuditAction::TokenCreate, details);
    entry.environment = Some(environment.name.clone());
    state.commit_as(&actor, Write { tokens: vec![record.clone()], audit: vec![entry], ..Write::default() }).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated::Sdk { id: record.id, kind: kind.to_owned(), environment: environment.key.to_string(), token: secret }),
    ))
}

/// The most web origins one client-side key admits.
const MAX_ORIGINS: usize = 50;

fn origins_for_client_keys_only() -> ApiError {
    ApiError::bad_request(
        "`origins` limits the web pages that may use a client-side key (kind client); SDK keys and personal tokens do not go in pages",
    )
}

/// A web origin as browsers send it in `Origin`: `scheme://host` or `scheme://host:port`, lower case, with no path.
fn web_origin(index: usize, origin: &str) -> ApiResult<String> {
    let refused = |why: &str| {
        ApiError::invalid_field(
            &format!("origins[{index}]"),
            format!(
                "origin `{}` {why}; an origin is a scheme, a host and an optional port, as browsers send it: https://app.example.com, http://localhost:5173",
                vexil_core::name::printable(origin)
            ),
        )
    };
    let lowered = origin.trim().to_ascii_lowercase();
    let Some((scheme, authority)) = lowered.split_once("://") else { return Err(refused("has no scheme")) };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(refused("has no valid scheme"));
    }
    if authority.contains('/') {
        return Err(refused("has a path (leave out everything after the host and port, the trailing `/` too)"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => match host.starts_with('[') || !host.contains(':') {
            true => (host, Some(port)),
            false => return Err(refused("is not a host and port")),
        },
        _ => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && (host.starts_with('[') && host.ends_with(']') || host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')));
    if !host_ok {
        return Err(refused("has no valid host (`*` and wildcards are not accepted: leave origins out to admit any)"));
    }
    if port.is_some_and(|port| port.is_empty() || port.len() > 5 || !port.chars().all(|c| c.is_ascii_digit())) {
        return Err(refused("has no valid port"));
    }
    Ok(lowered)
}

/// Your tokens (every token, for an admin), without secrets.
#[utoipa::path(get, path = "/api/tokens", tag = "accounts", responses((status = OK, body = Vec<TokenView>)))]
async fn list_tokens(State(state): State<AppState>, actor: Actor) -> ApiResult<Json<Vec<TokenView>>> {
    let is_admin = actor.role == Role::Admin;
    let tokens = state
        .store
        .tokens()
        .await?
        .into_iter()
        .filter(|token| is_admin || token.user == actor.email)
        .map(|token| TokenView {
            id: token.id,
            kind: token.kind,
            user: token.user,
            environment: token.environment.map(|environment| environment.to_string()),
            action: (token.kind == TokenKind::Trigger).then(|| token.action.unwrap_or_else(|| "rollback".to_owned())),
            flag: token.flag,
            name: token.name,
            created_at: token.created_at,
            revoked_at: token.revoked_at,
            origins: token.origins,
        })
        .collect();
    Ok(Json(tokens))
}

/// Revoke a token (yours, or anyone's as admin); open streams that use it end.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "accounts", params(("id" = String, Path, description = "the token's id")),
    responses((status = OK, body = TokenRevoked)))]
async fn revoke_token(State(state): State<AppState>, actor: Actor, ApiPath(id): ApiPath<String>) -> ApiResult<Json<TokenRevoked>> {
    let guard = state.serialised().await;
    let mut token = state.store.tokens().await?.into_iter().find(|token| token.id == id).ok_or_else(|| {
        // A secret given for an id is not echoed back (it would land in a terminal's scrollback or a log).
        if ["vxl_", "vxs_", "vxc_", "vxt_"].iter().any(|prefix| id.starts_with(prefix)) {
            ApiError::not_found("that is a token's secret, not its id: `vexil token list` shows the ids (tok_…)")
        } else {
            ApiError::not_found(format!("token {} does not exist; `vexil token list` shows the ids", vexil_core::name::printable(&id)))
        }
    })?;
    // An SDK key or a trigger belongs to its environment: revoking one cuts that environment's applications off, or
    // takes an automatic kill switch away, so it takes the right to change the environment, as creating it did
    // (whoever created it, whatever their role is now). A personal token is its owner's, or an admin's, to revoke.
    // (An environment since removed from the configuration leaves its keys to admins.)
    let environment = token.environment.as_ref().and_then(|key| state.config.environments.get(key).cloned());
    match &environment {
        Some(environment) if token.kind != TokenKind::Personal => actor.role.may_change(environment).map_err(ApiError::forbidden)?,
        None if token.kind != TokenKind::Personal => actor.role.may_administer().map_err(ApiError::forbidden)?,
        _ if token.user != actor.email => actor.role.may_administer().map_err(ApiError::forbidden)?,
        _ => {}
    }
    let environment = environment.filter(|_| token.kind != TokenKind::Personal);
    if token.revoked_at.is_none() {
        token.revoked_at = Some(crate::time::now());
        let mut record = audit(&actor.email, actor.source, AuditAction::TokenRevoke, json!({"id": token.id, "user": token.user}));
        if let Some(environment) = &environment {
            record.after = Some(json!({"id": token.id, "user": token.user, "kind": token.kind, "name": token.name}));
            record.environment = Some(environment.name.clone());
            record.flag = token.flag.clone();
        }
        let write = Write { tokens: vec![token.clone()], audit: vec![record], ..Write::default() };
        state.commit_holding(guard, &actor, write).await?;
    }
    Ok(Json(TokenRevoked { id: token.id, revoked_at: token.revoked_at }))
}

#[cfg(test)]
mod tests {
    use super::forwarded_hop;

    #[test]
    fn forwarded_hops_are_read_with_or_without_a_port() {
        assert_eq!(forwarded_hop("203.0.113.8"), Some("203.0.113.8".parse().unwrap()));
        assert_eq!(forwarded_hop("203.0.113.8:51234"), Some("203.0.113.8".parse().unwrap()));
        assert_eq!(forwarded_hop("2001:db8::1"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(forwarded_hop("[2001:db8::1]:51234"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(forwarded_hop("unknown"), None);
    }
}
