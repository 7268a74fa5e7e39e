//! The panel's login session: an HttpOnly, SameSite cookie, CSRF protection on every change, logout.

mod common;

use common::Server;
use serde_json::{Value, json};

struct Session {
    cookie: String,
    csrf: String,
    body: Value,
    set_cookie: String,
}

fn open_session(server: &Server, email: &str, password: &str, headers: &[(&str, &str)]) -> Result<Session, u16> {
    let mut request = reqwest::blocking::Client::new()
        .post(format!("{}/api/auth/session", server.url))
        .json(&json!({"email": email, "password": password}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().unwrap();
    if !response.status().is_success() {
        return Err(response.status().as_u16());
    }
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let body: Value = response.json().unwrap();
    Ok(Session { cookie, csrf: body["csrf"].as_str().unwrap().to_owned(), body, set_cookie })
}

fn send(server: &Server, method: &str, path: &str, cookie: &str, csrf: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = reqwest::blocking::Client::new().request(method, format!("{}{path}", server.url)).header("cookie", cookie);
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

#[test]
fn a_session_cookie_is_http_only_same_site_and_changes_need_its_csrf_token() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    assert_eq!(open_session(&server, "admin@localhost", "wrong password", &[]).err(), Some(401));
    let session = open_session(&server, "admin@localhost", "correct horse battery", &[]).unwrap();
    assert!(session.set_cookie.contains("HttpOnly"), "{}", session.set_cookie);
    assert!(session.set_cookie.contains("SameSite=Strict"), "{}", session.set_cookie);
    assert!(!session.set_cookie.contains("Secure"), "plain HTTP on localhost: no Secure flag");
    assert_eq!(session.body["role"], "admin");
    let behind_tls = open_session(&server, "admin@localhost", "correct horse battery", &[("x-forwarded-proto", "https")]).unwrap();
    assert!(behind_tls.set_cookie.contains("; Secure"), "{}", behind_tls.set_cookie);

    let (status, me) = send(&server, "GET", "/api/me", &session.cookie, None, None);
    assert_eq!((status, me["email"].as_str(), me["csrf"].as_str()), (200, Some("admin@localhost"), Some(session.csrf.as_str())));
    let path = "/api/flags/ui.new_feature/environments/dev/enable";
    let (status, refused) = send(&server, "POST", path, &session.cookie, None, Some(json!({})));
    assert_eq!((status, refused["error"]["code"].as_str()), (403, Some("csrf_failed")), "a cross-site form post cannot change anything");
    let (status, _) = send(&server, "POST", path, &session.cookie, Some("0123456789abcdef0123456789abcdef"), Some(json!({})));
    assert_eq!(status, 403, "a guessed token is refused");
    let (status, changed) = send(&server, "POST", path, &session.cookie, Some(&session.csrf), Some(json!({})));
    assert_eq!((status, changed["changed"].as_bool()), (200, Some(true)));
    let audit = server.http().get("/api/flags/audit?flag=ui.new_feature&action=enable").body;
    assert_eq!(audit["entries"][0]["source"], "panel");
    assert_eq!(audit["entries"][0]["user"], "admin@localhost");

    let (status, _) = send(&server, "DELETE", "/api/auth/session", &session.cookie, Some(&session.csrf), None);
    assert_eq!(status, 200);
    let (status, ended) = send(&server, "GET", "/api/me", &session.cookie, None, None);
    assert_eq!((status, ended["error"]["message"].as_str()), (401, Some("the session has ended; log in again")));
}

#[test]
fn the_stream_accepts_the_session_cookie_for_eventsource() {
    let server = Server::start();
    let session = open_session(&server, "admin@localhost", "correct horse battery", &[]).unwrap();
    let response = reqwest::blocking::Client::new()
        .get(format!("{}/api/feature-flags/stream?env=prod", server.url))
        .header("cookie", &session.cookie)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
}

#[test]
fn the_panel_is_served_from_the_binary_with_a_strict_content_security_policy() {
    let server = Server::start();
    let client = reqwest::blocking::Client::new();
    for (path, kind) in [("/", "text/html"), ("/panel.js", "text/javascript"), ("/panel.css", "text/css")] {
        let response = client.get(format!("{}{path}", server.url)).send().unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with(kind), "{path}");
        let policy = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(policy.contains("default-src 'self'") && policy.contains("frame-ancestors 'none'"), "{path}: {policy}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
    let page = client.get(&server.url).send().unwrap().text().unwrap();
    assert!(!page.contains("<script>"), "no inline script, so the policy can forbid them");
}

#[test]
fn a_new_password_ends_every_other_session_and_token_of_the_account() {
    let server = Server::start();
    let added = server.http().post("/api/users", &json!({"email": "leak@example.com", "role": "admin", "password": "the old password"}));
    assert_eq!(added.status, 201, "{:?}", added.body);
    let login = |password: &str| {
        let answer = server.http().with_token(None).post("/api/auth/login", &json!({"email": "leak@example.com", "password": password}));
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        answer.body["token"].as_str().unwrap().to_owned()
    };
    let (attacker, owner) = (login("the old password"), login("the old password"));
    // The owner changes their own password: their session stays, the attacker's token stops working.
    let changed = server.http().with_token(Some(&owner)).send(
        "PATCH",
        "/api/users/leak@example.com",
        Some(json!({"password": "a brand new password"}).to_string()),
        &[],
    );
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    assert_eq!(server.http().with_token(Some(&attacker)).get("/api/me").status, 401);
    assert_eq!(server.http().with_token(Some(&owner)).get("/api/me").status, 200);
    // An admin resetting it ends every token of the account.
    let reset =
        server.http().send("PATCH", "/api/users/leak@example.com", Some(json!({"password": "reset by the admin"}).to_string()), &[]);
    assert_eq!(reset.status, 200, "{:?}", reset.body);
    assert_eq!(server.http().with_token(Some(&owner)).get("/api/me").status, 401);
    let audit = server.http().get("/api/flags/audit?action=user_update&limit=1").body;
    assert_eq!(audit["entries"][0]["after"]["tokens_revoked"].as_array().unwrap().len(), 1, "{audit}");
}

#[test]
fn password_changes_have_a_budget_like_logins() {
    let server = Server::start();
    let change = |round: u32| {
        let body = json!({"password": format!("password number {round}")}).to_string();
        server.http().send("PATCH", "/api/users/admin@localhost", Some(body), &[])
    };
    for round in 0..5 {
        assert_eq!(change(round).status, 200);
    }
    let refused = change(5);
    assert_eq!((refused.status, refused.body["error"]["code"].clone()), (429, json!("too_many_attempts")), "{:?}", refused.body);
    // The password stays the fifth one: the refused change changed nothing.
    let login =
        server.http().with_token(None).post("/api/auth/login", &json!({"email": "admin@localhost", "password": "password number 4"}));
    assert_eq!(login.status, 200, "{:?}", login.body);
}
