//! The admin panel in headless Chromium (Debian's `chromium` and `chromium-driver`), against the real server.
//!
//! A tiny W3C WebDriver client over HTTP drives the browser. Waiting is the driver's own implicit wait for an
//! element matching an XPath that states the expected condition, so no test sleeps.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::Server;
use serde_json::{Value, json};

/// A chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("chromedriver is installed (scripts/test.sh installs chromium and chromium-driver)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("chromedriver said it started").unwrap();
            if line.contains("started successfully") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Self { child, url: format!("http://127.0.0.1:{port}"), _profile: tempfile::tempdir().unwrap() }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
struct Browser {
    http: reqwest::blocking::Client,
    base: String,
}

impl Browser {
    fn open(driver: &Driver) -> Self {
        let http = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(60)).build().unwrap();
        let profile = driver._profile.path().to_str().unwrap().to_owned();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium",
                "prefs": {"download.default_directory": format!("{profile}/downloads"), "download.prompt_for_download": false},
                "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
                "--window-size=1280,900", format!("--user-data-dir={profile}")]}
        }}});
        let session: Value = http.post(format!("{}/session", driver.url)).json(&capabilities).send().unwrap().json().unwrap();
        let id = session["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {session}")).to_owned();
        let browser = Self { http, base: format!("{}/session/{id}", driver.url) };
        browser.call("POST", "/timeouts", json!({"implicit": 10_000}));
        browser
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let request = match method {
            "GET" => self.http.get(format!("{}{path}", self.base)),
            "DELETE" => self.http.delete(format!("{}{path}", self.base)),
            _ => self.http.post(format!("{}{path}", self.base)).json(&body),
        };
        let answer: Value = request.send().unwrap().json().unwrap();
        if answer["value"].get("error").is_some() {
            panic!("webdriver {method} {path}: {}", answer["value"]["message"]);
        }
        answer["value"].clone()
    }

    /// Waits until nothing matches `xpath` (asking again is the wait).
    fn gone(&self, xpath: &str) {
        let deadline = std::time::Instant::now() + common::MOMENT;
        loop {
            // Counted in the page: asking the driver for elements would wait out its implicit timeout each time.
            let script =
                "return document.evaluate(arguments[0], document, null, XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null).snapshotLength;";
            let found = self.call("POST", "/execute/sync", json!({"script": script, "args": [xpath]}));
            if found == json!(0) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "still on the page: {xpath}");
            std::thread::park_timeout(std::time::Duration::from_millis(50));
        }
    }

    /// The serious and critical accessibility violations axe-core (npm, `tests/web`) finds on the page as it is now.
    fn accessibility_violations(&self) -> Vec<String> {
        let axe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/web/node_modules/axe-core/axe.min.js");
        let source =
            std::fs::read_to_string(&axe).unwrap_or_else(|error| panic!("{}: {error} (scripts/test.sh installs it)", axe.display()));
        self.call("POST", "/execute/sync", json!({"script": format!("{source}\nreturn true;"), "args": []}));
        let found = self.execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document).then((result) => done({passes: result.passes.length, violations: result.violations
               .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
               .map((violation) => `${violation.id} (${violation.impact}): ${violation.help}: ${violation.nodes.slice(0, 3).map((node) => node.target.join(' ')).join(', ')}`)}));",
        );
        assert!(found["passes"].as_u64().unwrap() >= 10, "axe checked the page: {found}");
        found["violations"].as_array().unwrap().iter().map(|violation| violation.as_str().unwrap().to_owned()).collect()
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url}));
    }

    /// The element matching `xpath`, waiting (implicitly) until one does.
    fn find(&self, xpath: &str) -> String {
        let found = self.call("POST", "/element", json!({"using": "xpath", "value": xpath}));
        found.as_object().and_then(|object| object.values().next()).and_then(Value::as_str).unwrap().to_owned()
    }

    /// Clicks the element matching `xpath`. A live page may redraw between finding the element and clicking it (a
    /// change arrived from the stream); the element is then found again.
    fn click(&self, xpath: &str) {
        for _ in 0..5 {
            let element = self.find(xpath);
            let answer: Value =
                self.http.post(format!("{}/element/{element}/click", self.base)).json(&json!({})).send().unwrap().json().unwrap();
            match answer["value"].get("error").and_then(Value::as_str) {
                None => return,
                Some("stale element reference") => continue,
                Some(_) => panic!("webdriver click {xpath}: {}", answer["value"]["message"]),
            }
        }
        panic!("{xpath} kept being redrawn");
    }

    fn type_into(&self, xpath: &str, text: &str) {
        let element = self.find(xpath);
        self.call("POST", &format!("/element/{element}/value"), json!({"text": text}));
    }

    /// Replaces the text of the input matching `xpath` with `text`.
    fn replace(&self, xpath: &str, text: &str) {
        let element = self.find(xpath);
        self.call("POST", &format!("/element/{element}/clear"), json!({}));
        self.type_into(xpath, text);
    }

    /// The text of the element with this id, as the page has it now.
    fn text_of(&self, id: &str) -> String {
        let script = "return document.getElementById(arguments[0]).textContent;";
        self.call("POST", "/execute/sync", json!({"script": script, "args": [id]})).as_str().unwrap_or_default().to_owned()
    }

    fn attribute(&self, xpath: &str, name: &str) -> Value {
        let element = self.find(xpath);
        self.call("GET", &format!("/element/{element}/attribute/{name}"), Value::Null)
    }

    /// Runs an async script; it gets a `done` callback as its last argument.
    fn execute_async(&self, script: &str) -> Value {
        self.call("POST", "/execute/async", json!({"script": script, "args": []}))
    }

    fn screenshot(&self, name: &str) {
        if let Some(directory) = std::env::var_os("VEXIL_SCREENSHOTS") {
            use base64_decode::decode;
            let png = self.call("GET", "/screenshot", Value::Null);
            // A relative directory is taken from the workspace root: `VEXIL_SCREENSHOTS=docs/screenshots cargo test -p vexil --test panel`.
            let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(directory);
            std::fs::write(directory.join(name), decode(png.as_str().unwrap())).unwrap();
        }
    }

    fn log_in(&self, server: &Server, email: &str, password: &str) {
        self.goto(&server.url);
        // The form starts hidden and is shown once the page knows nobody is logged in: typing earlier fails.
        self.find("//form[@id='login' and not(@hidden)]");
        self.type_into("//input[@id='email']", email);
        self.type_into("//input[@id='password']", password);
        self.click("//form[@id='login']//button[@type='submit']");
        self.find(&format!("//span[@id='user' and text()='{email}']"));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.http.delete(&self.base).send();
    }
}

/// Just enough base64 for screenshots, without a dependency.
mod base64_decode {
    pub fn decode(text: &str) -> Vec<u8> {
        let value = |byte: u8| match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        let bytes: Vec<u8> = text.bytes().filter(|byte| *byte != b'=' && !byte.is_ascii_whitespace()).collect();
        let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
        for chunk in bytes.chunks(4) {
            let mut buffer = 0u32;
            for (index, byte) in chunk.iter().enumerate() {
                buffer |= u32::from(value(*byte)) << (18 - 6 * index);
            }
            out.extend_from_slice(&buffer.to_be_bytes()[1..chunk.len()]);
        }
        out
    }
}

/// A browser with the panel open, logged in as the admin (the driver is dropped after the browser).
fn admin_panel(server: &Server) -> (Driver, Browser) {
    let driver = Driver::start();
    let browser = Browser::open(&driver);
    browser.log_in(server, "admin@localhost", "correct horse battery");
    (driver, browser)
}

fn cell(flag: &str, environment: &str) -> String {
    format!("//tr[@data-flag='{flag}']/td[@data-environment='{environment}']/button")
}

#[test]
fn log_in_see_every_environment_follow_a_cli_change_live_and_promote_to_production() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature", "--description", "The new voice panel"]).ok();
    server.cli(&["define", "experiment.voice_v2", "--tag", "voice"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "dev"]).ok();
    let (_driver, browser) = admin_panel(&server);

    // The matrix: every flag, every environment side by side, as the seed's switcher shows them.
    for title in ["Dev", "Staging", "Prod"] {
        browser.find(&format!("//thead//th[text()='{title}']"));
    }
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.new_feature", "dev")));
    browser.find(&format!("{}[normalize-space(.)='✗ Disabled']", cell("ui.new_feature", "prod")));
    browser.screenshot("panel-matrix.png");
    // At a phone's width the matrix stays usable: the toggles remain, secondary columns fold away.
    browser.call("POST", "/window/rect", json!({"width": 390, "height": 844}));
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.new_feature", "dev")));
    let widths = browser.call(
        "POST",
        "/execute/sync",
        json!({"script": "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];", "args": []}),
    );
    browser.screenshot("panel-phone.png");
    assert!(widths[0].as_u64() <= widths[1].as_u64(), "the page scrolls sideways on a phone: {widths}");
    browser.call("POST", "/window/rect", json!({"width": 1280, "height": 900}));

    // A change made with the CLI appears without a reload, saying who made it.
    server.cli(&["enable", "ui.new_feature", "--env", "staging"]).ok();
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.new_feature", "staging")));
    browser.find("//span[@id='live' and contains(., 'ui.new_feature in staging') and contains(., 'by admin@localhost')]");

    // Promote to production through the modal: the diff, a reason and an explicit confirmation.
    browser.click("//tr[@data-flag='ui.new_feature']//button[text()='Promote to Prod']");
    browser.find("//dialog[@id='confirm' and @open]//pre[normalize-space(.)='turned on']");
    browser.click("//button[@id='confirm-ok']");
    browser.find("//p[@id='confirm-error' and contains(., 'give a reason')]");
    browser.type_into("//input[@id='confirm-reason']", "Rollout approved by PM");
    browser.click("//input[@id='confirm-check']");
    browser.screenshot("panel-promote.png");
    browser.click("//button[@id='confirm-ok']");
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.new_feature", "prod")));
    let audit = server.http().get("/api/flags/audit?flag=ui.new_feature&env=prod").body;
    assert_eq!(audit["entries"][0]["action"], "promote");
    assert_eq!(audit["entries"][0]["reason"], "Rollout approved by PM");
    assert_eq!(audit["entries"][0]["source"], "panel");

    // The history shows it, with the reason.
    browser.click("//button[@aria-label='History of ui.new_feature']");
    browser.find("//tbody[@id='history-body']/tr[1][td[contains(., 'promote (from staging)')] and td[text()='Rollout approved by PM']]");
    browser.screenshot("panel-history.png");
}

/// Feedback is a message on the page, never a browser alert or prompt: what was done, what was wrong, and a promotion
/// with nothing to promote says so instead of asking for a reason. A session that ends sends the page to the login form.
#[test]
fn feedback_is_a_message_on_the_page_and_an_ended_session_asks_to_log_in_again() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    let (_driver, browser) = admin_panel(&server);

    browser.click(&cell("ui.new_feature", "dev"));
    let done = "//div[@id='toasts']/div[contains(@class, 'done') and contains(., 'ui.new_feature in Dev: Enabled')]";
    browser.find(done);
    // Where a change needs no reason it can be undone from its message, and undone again.
    browser.click(&format!("{done}/button[text()='Undo']"));
    browser.find(&format!("{}[normalize-space(.)='✗ Disabled']", cell("ui.new_feature", "dev")));
    browser.click("//div[@id='toasts']/div[contains(., 'ui.new_feature in Dev: Disabled')]/button[text()='Undo']");
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.new_feature", "dev")));
    // Staging and production serve the same (both off): nothing to promote, and no dialog asking for a reason.
    browser.click("//tr[@data-flag='ui.new_feature']//button[text()='Promote to Prod']");
    browser.find("//div[@id='toasts']/div[contains(., 'Nothing to promote')]");
    browser.find("//dialog[@id='confirm' and not(@open)]");
    // An error stays until dismissed.
    browser.click("//button[@id='bulk-enable']");
    let error = "//div[@id='toasts']/div[contains(@class, 'error') and contains(., 'Select flags first')]";
    browser.find(error);
    browser.screenshot("panel-toasts.png");
    browser.click(&format!("{error}/button[text()='Dismiss']"));
    browser.gone(error);

    // A change refused because someone changed the flag meanwhile says what it serves now.
    server.cli(&["set", "ui.new_feature", "--env", "staging", "--rollout", "40"]).ok();
    // (Off, and armed: the cell says what turning it on would serve.)
    browser.find(&format!("{}[normalize-space(.)='✗ Disabled · when enabled: rolled out to 40 %']", cell("ui.new_feature", "staging")));
    browser.call(
        "POST",
        "/execute/sync",
        json!({"script": "panel.flags.get('ui.new_feature').environments.staging.version = 1;", "args": []}),
    );
    browser.click(&cell("ui.new_feature", "staging"));
    browser.find("//div[@id='toasts']/div[contains(@class, 'error') and contains(., 'It now serves: Disabled') and contains(., 'changed by admin@localhost')]");
    assert_eq!(server.http().get("/api/flags/ui.new_feature/environments/staging").body["state"]["enabled"], false, "nothing was enabled");

    // The session is revoked elsewhere: the next request the page makes brings the login form, saying why.
    let tokens = server.http().get("/api/tokens").body;
    let session =
        tokens.as_array().unwrap().iter().find(|token| token["name"] == "panel session" && token["revoked_at"].is_null()).unwrap();
    let revoked = server.http().send("DELETE", &format!("/api/tokens/{}", session["id"].as_str().unwrap()), None, &[]);
    assert_eq!(revoked.status, 200);
    browser.click("//button[@aria-label='History of ui.new_feature']");
    browser.find("//form[@id='login' and not(@hidden)]//p[@id='login-error' and contains(., 'Your session has ended')]");
    browser.log_in(&server, "admin@localhost", "correct horse battery");
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.new_feature", "dev")));
}

/// The page says whether it is live: when the server goes away it shows that it is reconnecting, and once the server
/// is back it is live again and shows a change made while it was away.
#[test]
fn the_page_shows_its_connection_and_catches_up_after_the_server_comes_back() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let server = Server::start_on(&data);
    let address = server.url.trim_start_matches("http://").to_owned();
    server.cli(&["define", "ui.new_feature"]).ok();
    let (_driver, browser) = admin_panel(&server);
    browser.find("//span[@id='connection' and contains(@class, 'is-live') and text()='Live']");

    server.kill();
    browser.find("//span[@id='connection' and contains(@class, 'is-reconnecting')]");
    browser.screenshot("panel-reconnecting.png");
    let server = common::start_on_address(&data, &address);
    server.cli(&["enable", "ui.new_feature", "--env", "staging"]).ok();
    browser.find("//span[@id='connection' and contains(@class, 'is-live')]");
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.new_feature", "staging")));
}

/// Every view has a URL: the environment in focus and the filters survive a reload, the history is a page that Back
/// leaves and Forward returns to, and a URL opens the place it names.
#[test]
fn every_view_has_a_url_that_back_forward_and_reload_keep() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature", "--owner", "team-web", "--tag", "launch"]).ok();
    server.cli(&["define", "experiment.voice_v2"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "staging"]).ok();
    let (_driver, browser) = admin_panel(&server);
    let url = || browser.call("GET", "/url", Value::Null).as_str().unwrap().to_owned();

    browser.click("//nav[@id='switcher']/button[text()='Staging']");
    browser.type_into("//input[@id='filter']", "voice");
    browser.gone("//tr[@data-flag='ui.new_feature']");
    assert!(url().ends_with("/?env=staging&q=voice"), "{}", url());
    browser.call("POST", "/refresh", json!({}));
    browser.find("//nav[@id='switcher']/button[text()='Staging' and @aria-pressed='true']");
    browser.find("//tr[@data-flag='experiment.voice_v2']");
    let filter = browser.call("POST", "/execute/sync", json!({"script": "return document.getElementById('filter').value;", "args": []}));
    assert_eq!(filter, json!("voice"), "the filter is kept");
    browser.gone("//tr[@data-flag='ui.new_feature']");

    // A tag or an owner, named as such.
    for (filter, shown, hidden) in [
        ("tag:launch", "ui.new_feature", "experiment.voice_v2"),
        ("owner:team-web", "ui.new_feature", "experiment.voice_v2"),
        ("tag:launc", "", "ui.new_feature"),
    ] {
        browser.call("POST", "/execute/sync", json!({"script": "const f = document.getElementById('filter'); f.value = arguments[0]; f.dispatchEvent(new Event('input'));", "args": [filter]}));
        browser.gone(&format!("//tr[@data-flag='{hidden}']"));
        if !shown.is_empty() {
            browser.find(&format!("//tr[@data-flag='{shown}']"));
        }
    }

    // Flags that serve differently somewhere: ui.new_feature is on in staging only.
    browser.call("POST", "/execute/sync", json!({"script": "document.getElementById('filter').value = ''; document.getElementById('filter').dispatchEvent(new Event('input')); const s = document.getElementById('state-filter'); s.value = 'differs'; s.dispatchEvent(new Event('change'));", "args": []}));
    browser.find("//tr[@data-flag='ui.new_feature']");
    browser.gone("//tr[@data-flag='experiment.voice_v2']");
    browser.find("//caption/span[@id='flag-count' and text()='· 1 of 2 shown']");
    browser.find("//tr[@class='group']/th[text()='ui · 1 flag']");
    browser.call("POST", "/execute/sync", json!({"script": "const s = document.getElementById('state-filter'); s.value = ''; s.dispatchEvent(new Event('change'));", "args": []}));
    // Most recently changed first: a change made now puts its flag on top, without category groups; the URL keeps it.
    server.cli(&["enable", "experiment.voice_v2", "--env", "dev"]).ok();
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("experiment.voice_v2", "dev")));
    browser.call("POST", "/execute/sync", json!({"script": "const s = document.getElementById('sort'); s.value = 'changed'; s.dispatchEvent(new Event('change'));", "args": []}));
    browser.find("//tbody[@id='matrix-body']/tr[1][@data-flag='experiment.voice_v2']");
    browser.gone("//tbody[@id='matrix-body']/tr[@class='group']");
    assert!(url().contains("sort=changed"), "{}", url());
    browser.call(
        "POST",
        "/execute/sync",
        json!({"script": "const s = document.getElementById('sort'); s.value = ''; s.dispatchEvent(new Event('change'));", "args": []}),
    );
    browser.click("//button[@aria-label='History of experiment.voice_v2']");
    browser.find("//h2[@id='history-title' and text()='History of experiment.voice_v2']");
    assert!(url().contains("view=history") && url().contains("flag=experiment.voice_v2"), "{}", url());
    browser.call("POST", "/back", json!({}));
    browser.find("//section[@id='flags-view' and not(@hidden)]");
    browser.call("POST", "/forward", json!({}));
    browser.find("//section[@id='history' and not(@hidden)]//h2[text()='History of experiment.voice_v2']");

    // A URL sent to someone opens the history of that flag directly.
    browser.goto(&format!("{}/?view=history&flag=ui.new_feature", server.url));
    browser.find("//section[@id='history' and not(@hidden)]//h2[text()='History of ui.new_feature']");
    browser.find("//tbody[@id='history-body']/tr[td[contains(., 'enable')]]");
}

/// On a phone the focused environment keeps its promotion, and the history fits the screen; a long history comes a
/// page at a time.
#[test]
fn on_a_phone_promotion_stays_and_the_history_fits_a_page_at_a_time() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    let http = server.http();
    for index in 0..121 {
        let action = if index % 2 == 0 { "enable" } else { "disable" };
        assert_eq!(http.send("POST", &format!("/api/flags/ui.new_feature/environments/dev/{action}"), None, &[]).status, 200);
    }
    let (_driver, browser) = admin_panel(&server);
    browser.call("POST", "/window/rect", json!({"width": 390, "height": 844}));
    let fits = || {
        let widths = browser.call(
            "POST",
            "/execute/sync",
            json!({"script": "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];", "args": []}),
        );
        assert!(widths[0].as_u64() <= widths[1].as_u64(), "the page scrolls sideways on a phone: {widths}");
    };
    browser.click("//nav[@id='switcher']/button[text()='Staging']");
    let promote = "//tr[@data-flag='ui.new_feature']//button[text()='Promote to Staging']";
    assert_eq!(browser.call("GET", &format!("/element/{}/displayed", browser.find(promote)), Value::Null), json!(true));
    fits();
    browser.click(promote);
    browser.click("//button[@id='confirm-ok']");
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.new_feature", "staging")));
    // The message saying it was done sits at the foot of the screen, over the row, until dismissed (or it goes).
    browser.click("//div[contains(@class, 'toast') and contains(., 'promoted')]/button[text()='Dismiss']");

    // On a phone a flag's history is on its page (the matrix has no room for the column), and its full history has a URL.
    let history = browser.find("//button[@aria-label='History of ui.new_feature']");
    assert_eq!(browser.call("GET", &format!("/element/{history}/displayed"), Value::Null), json!(false));
    browser.click("//tr[@data-flag='ui.new_feature']//a");
    browser.find("//tbody[@id='flag-history-body']/tr[1]/td[@data-label='Source' and text()='panel']");
    fits();
    browser.goto(&format!("{}/?view=history&flag=ui.new_feature", server.url));
    browser.find("//tbody[@id='history-body']/tr[1]/td[@data-label='Source' and text()='panel']");
    fits();
    browser.screenshot("panel-history-phone.png");
    let rows = || {
        browser.call("POST", "/execute/sync", json!({"script": "return document.querySelectorAll('#history-body tr').length;", "args": []}))
    };
    let first = rows();
    browser.click("//button[@id='history-more']");
    browser.find(&format!("//tbody[@id='history-body']/tr[{}]", first.as_u64().unwrap() + 1));
    browser.find("//tbody[@id='history-body']/tr/td[@data-label='Action' and text()='create']");
}

/// axe-core finds no serious or critical accessibility violation on any main screen: the login form, the matrix,
/// the history, and the promotion, state and definition dialogs.
#[test]
fn every_main_screen_passes_axe() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature", "--description", "The new voice panel"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "staging"]).ok();
    let driver = Driver::start();
    let browser = Browser::open(&driver);
    let check = |screen: &str| {
        let violations = browser.accessibility_violations();
        assert!(violations.is_empty(), "{screen}: {violations:#?}");
    };
    browser.goto(&server.url);
    browser.find("//form[@id='login' and not(@hidden)]");
    check("login");
    browser.log_in(&server, "admin@localhost", "correct horse battery");
    check("matrix");
    browser.click("//tr[@data-flag='ui.new_feature']//button[text()='Promote to Prod']");
    browser.find("//dialog[@id='confirm' and @open]");
    check("promotion dialog");
    browser.click("//button[@id='confirm-cancel']");
    browser.click("//button[@aria-label='Set ui.new_feature in staging']");
    browser.find("//dialog[@id='editor' and @open]");
    check("state editor");
    browser.click("//button[@id='editor-cancel']");
    browser.click("//tr[@data-flag='ui.new_feature']//a");
    browser.find("//section[@id='flag-view' and not(@hidden)]//article[@data-environment='staging']");
    check("flag page");
    browser.click("//button[@aria-label='Edit ui.new_feature']");
    browser.find("//dialog[@id='editor' and @open]");
    check("definition editor");
    browser.click("//button[@id='editor-cancel']");
    browser.click("//button[@aria-label='Edit targeting of ui.new_feature in staging']");
    browser.find("//dialog[@id='targeting' and @open]");
    browser.click("//button[text()='Add a target']");
    browser.click("//button[text()='Add a rule']");
    browser.click("//button[text()='Split by percentage']");
    browser.find("//input[@aria-label='Attribute of rule 1 condition 1']");
    check("targeting editor");
    browser.click("//button[@id='targeting-cancel']");
    browser.click("//button[@id='flag-back']");
    browser.click("//button[@aria-label='History of ui.new_feature']");
    browser.find("//section[@id='history' and not(@hidden)]");
    check("history");
    browser.click("//button[@id='access']");
    browser.find("//tbody[@id='users-body']/tr");
    check("users and keys");
    browser.click("//button[@id='sdk-key-new']");
    browser.click("//button[@id='editor-ok']");
    browser.find("//dialog[@id='secret' and @open]");
    check("a secret shown once");
}

/// The matrix at 1 000 flags: every flag is there, and the time one render takes (layout included) is printed for docs/benchmarks.md
/// (measured with `performance.now()` in the page; a figure, not an assertion).
#[test]
fn a_thousand_flags_are_all_in_the_matrix_and_its_render_is_measured() {
    let server = Server::start();
    let directory = tempfile::tempdir().unwrap();
    let registry = directory.path().join("flags.toml");
    let text: String = (0..1000).map(|index| format!("[[flag]]\nname = \"backend.flag_{index:04}\"\ntype = \"boolean\"\n\n")).collect();
    std::fs::write(&registry, text).unwrap();
    server.cli(&["apply", registry.to_str().unwrap()]).ok();
    server.cli(&["enable", "backend.flag_0999", "--env", "dev"]).ok();
    let (_driver, browser) = admin_panel(&server);
    let rows = || {
        browser.call(
            "POST",
            "/execute/sync",
            json!({"script": "return document.querySelectorAll('#matrix-body tr[data-flag]').length;", "args": []}),
        )
    };
    browser.find("//span[@id='page-position' and text()='Flags 1–100 of 1000 · page 1 of 10']");
    assert_eq!(rows(), json!(100), "a page of flags");
    browser.click("//button[@id='page-next']");
    browser.find("//span[@id='page-position' and starts-with(., 'Flags 101–200')]");
    browser.find("//tr[@data-flag='backend.flag_0100']");
    // The last page, by its URL; and a filter finds a flag on any page.
    browser.goto(&format!("{}/?page=10", server.url));
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("backend.flag_0999", "dev")));
    browser.type_into("//input[@id='filter']", "flag_0999");
    browser.find("//span[@id='flag-count' and text()='· 1 of 1000 shown']");
    browser.find("//nav[@id='pager' and @hidden]");
    browser.call(
        "POST",
        "/execute/sync",
        json!({"script": "const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input'));", "args": []}),
    );
    assert_eq!(rows(), json!(100));
    let took = browser.call(
        "POST",
        "/execute/sync",
        json!({"script": "const times = []; for (let run = 0; run < 7; run++) { const start = performance.now(); render(); document.getElementById('matrix').getBoundingClientRect(); times.push(performance.now() - start); } times.sort((a, b) => a - b); return [times[3], times[0], times[6]];", "args": []}),
    );
    eprintln!(
        "the matrix at 1 000 flags (a page of 100 shown): one render takes {:.1} ms (median of 7; fastest {:.1}, slowest {:.1})",
        took[0].as_f64().unwrap(),
        took[1].as_f64().unwrap(),
        took[2].as_f64().unwrap()
    );
}

/// The matrix works from the keyboard: arrow keys move between its controls, "/" goes to the filter.
#[test]
fn the_matrix_is_operated_from_the_keyboard() {
    let server = Server::start();
    for flag in ["ui.alpha", "ui.beta", "ui.gamma"] {
        server.cli(&["define", flag]).ok();
    }
    let (_driver, browser) = admin_panel(&server);
    let focused = || {
        browser.call("POST", "/execute/sync", json!({"script": "return document.activeElement.getAttribute('aria-label') || document.activeElement.id || document.activeElement.textContent;", "args": []}))
    };
    let press = |key: &str| {
        let active = browser.call("GET", "/element/active", Value::Null);
        let element = active.as_object().and_then(|object| object.values().next()).and_then(Value::as_str).unwrap().to_owned();
        browser.call("POST", &format!("/element/{element}/value"), json!({"text": key}));
    };
    browser.call(
        "POST",
        "/execute/sync",
        json!({"script": "document.querySelector(\"button[aria-label='Enable ui.alpha in development']\").focus();", "args": []}),
    );
    assert_eq!(focused(), json!("Enable ui.alpha in development"));
    press("\u{E015}"); // down
    assert_eq!(focused(), json!("Enable ui.beta in development"));
    press("\u{E015}");
    assert_eq!(focused(), json!("Enable ui.gamma in development"));
    press("\u{E014}"); // right: the same row's next control
    assert_eq!(focused(), json!("Set ui.gamma in development"));
    press("\u{E013}"); // up
    assert_eq!(focused(), json!("Set ui.beta in development"));
    press("\u{E012}"); // left
    assert_eq!(focused(), json!("Enable ui.beta in development"));
    // Enter operates the control that has the focus.
    press("\u{E007}");
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.beta", "dev")));
    browser.call("POST", "/execute/sync", json!({"script": "document.activeElement.blur();", "args": []}));
    let body = browser.find("//body");
    browser.call("POST", &format!("/element/{body}/value"), json!({"text": "/"}));
    assert_eq!(focused(), json!("filter"));
}

/// The main screens at a desktop's and a phone's width, light and dark: none scrolls sideways, and with
/// `VEXIL_SCREENSHOTS=docs/screenshots` the test writes the pictures the README shows.
#[test]
fn the_main_screens_fit_at_1440_and_390_pixels_light_and_dark() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature", "--description", "The new voice panel"]).ok();
    server.cli(&["define", "ui.checkout_v2"]).ok();
    server.cli(&["define", "ui.theme", "--type", "string", "--default", "light"]).ok();
    server.cli(&["define", "backend.rag_max_results", "--type", "number", "--default", "5"]).ok();
    // Long names and a rollout badge in the first environment: the widest cells a phone shows.
    server.cli(&["define", "admin.bulk_user_import"]).ok();
    server.cli(&["define", "backend.graphql_gateway_persisted_queries"]).ok();
    server.cli(&["rollout", "admin.bulk_user_import", "--env", "dev", "--steps", "10,50,100", "--every", "1h"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "dev"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "staging"]).ok();
    server.cli(&["set", "ui.checkout_v2", "--env", "staging", "--enabled", "true", "--rollout", "25"]).ok();
    server.cli(&["set", "ui.theme", "--env", "dev", "--enabled", "true", "--value", "dark"]).ok();
    let targeted = json!({"enabled": true, "serve": {"value": "light"},
        "targets": [{"keys": ["user-1", "user-2"], "serve": {"value": "dark"}}],
        "rules": [{"description": "staff try it first", "conditions": [{"attribute": "email", "operator": "ends_with", "values": ["@asimo.io"]}], "serve": {"value": "dark"}},
                  {"conditions": [{"attribute": "app_version", "operator": "semver_gte", "values": ["2.1.0"]}, {"attribute": "country", "operator": "in", "values": ["DE", "FR"]}], "serve": {"value": "dark"}}],
        "split": {"buckets": [{"serve": {"value": "dark"}, "weight": 20000}, {"serve": {"value": "light"}, "weight": 80000}]}});
    let put = server.http().send("PUT", "/api/flags/ui.theme/environments/staging", Some(targeted.to_string()), &[]);
    assert_eq!(put.status, 200, "{:?}", put.body);
    let (_driver, browser) = admin_panel(&server);
    let fits = |screen: &str| {
        let widths = browser.call(
            "POST",
            "/execute/sync",
            json!({"script": "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];", "args": []}),
        );
        assert!(widths[0].as_u64() <= widths[1].as_u64(), "{screen} scrolls sideways: {widths}");
    };
    for theme in ["light", "dark"] {
        for width in [1440, 390] {
            browser.call("POST", "/window/rect", json!({"width": width, "height": 900}));
            browser.call(
                "POST",
                "/execute/sync",
                json!({"script": "document.documentElement.dataset.theme = arguments[0];", "args": [theme]}),
            );
            browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.new_feature", "dev")));
            fits("the matrix");
            browser.screenshot(&format!("matrix-{width}-{theme}.png"));
            browser.click("//tr[@data-flag='ui.theme']//button[text()='Promote to Staging']");
            browser.find("//dialog[@id='confirm' and @open]");
            browser.screenshot(&format!("promote-{width}-{theme}.png"));
            browser.click("//button[@id='confirm-cancel']");
            browser.click("//button[@id='history-all']");
            browser.find("//section[@id='history' and not(@hidden)]");
            fits("the history");
            browser.screenshot(&format!("history-{width}-{theme}.png"));
            browser.click("//button[@id='history-close']");
            browser.click("//tr[@data-flag='ui.theme']//a");
            browser.find("//article[@data-environment='staging']//dd/ol/li");
            fits("the flag page");
            browser.screenshot(&format!("flag-{width}-{theme}.png"));
            browser.click("//button[@aria-label='Edit targeting of ui.theme in staging']");
            browser.find("//dialog[@id='targeting' and @open]//fieldset[contains(@class, 'rule')]");
            fits("the targeting editor");
            browser.screenshot(&format!("targeting-{width}-{theme}.png"));
            browser.click("//button[@id='targeting-cancel']");
            browser.click("//button[@id='access']");
            browser.find("//tbody[@id='users-body']/tr");
            fits("users and keys");
            browser.screenshot(&format!("access-{width}-{theme}.png"));
            browser.click("//button[@id='access-back']");
        }
    }
}

#[test]
fn a_developer_sees_production_controls_disabled_with_the_reason() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    common::cli(
        &server.url,
        Some(common::ADMIN_TOKEN),
        &["user", "add", "dev@example.com", "--role", "developer", "--password-stdin"],
        Some("developer password\n"),
    )
    .expect_code(0);
    let driver = Driver::start();
    let browser = Browser::open(&driver);
    browser.log_in(&server, "dev@example.com", "developer password");
    browser.find("//span[@id='role' and text()='developer']");
    let production = cell("ui.new_feature", "prod");
    assert_eq!(browser.attribute(&production, "disabled"), json!("true"));
    let reason = browser.attribute(&production, "title");
    assert!(reason.as_str().unwrap().contains("production is protected: changing it needs the admin role"), "{reason}");
    // The reason is on the page before any click, not only in a tooltip, and the protected environment is marked.
    browser.find("//thead//th[contains(@class, 'protected') and span[text()='protected']]/small[contains(., 'production is protected: changing it needs the admin role')]");
    browser.screenshot("panel-developer.png");
    // Staging is theirs to change.
    browser.click(&cell("ui.new_feature", "staging"));
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.new_feature", "staging")));
    let state = server.http().get("/api/flags/ui.new_feature/environments/staging").body;
    assert_eq!(state["state"]["updated_by"], "dev@example.com");
}

#[test]
fn bulk_disable_copy_with_preview_export_and_import() {
    let server = Server::start();
    for flag in ["ui.a", "ui.b", "ui.c"] {
        server.cli(&["define", flag]).ok();
        server.cli(&["enable", flag, "--env", "dev"]).ok();
    }
    let (_driver, browser) = admin_panel(&server);

    // Bulk: select two flags, disable them in Dev (the focused environment).
    browser.click("//input[@aria-label='Select ui.a']");
    browser.click("//input[@aria-label='Select ui.b']");
    browser.find("//span[@id='selected-count' and text()='2']");
    browser.click("//button[@id='bulk-disable']");
    browser.find(&format!("{}[normalize-space(.)='✗ Disabled']", cell("ui.a", "dev")));
    browser.find(&format!("{}[normalize-space(.)='✗ Disabled']", cell("ui.b", "dev")));
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.c", "dev")));
    // The message offers to undo it: both come back exactly as they were.
    browser.click("//div[@id='toasts']/div[contains(., '2 flags disabled in Dev')]/button[text()='Undo']");
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.a", "dev")));
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.b", "dev")));
    assert_eq!(
        server.http().get("/api/flags/audit?flag=ui.a&env=dev").body["entries"][0]["action"],
        "import",
        "the undo is in the audit trail"
    );
    // An undo is refused, whole, when a flag changed since: nothing is overwritten.
    browser.click("//input[@aria-label='Select ui.a']");
    browser.click("//input[@aria-label='Select ui.b']");
    browser.click("//button[@id='bulk-disable']");
    browser.find(&format!("{}[normalize-space(.)='✗ Disabled']", cell("ui.b", "dev")));
    server.cli(&["set", "ui.b", "--env", "dev", "--enabled", "false", "--value", "false"]).ok();
    browser.click("//div[@id='toasts']/div[contains(., '2 flags disabled in Dev')]/button[text()='Undo']");
    browser.find("//div[@id='toasts']/div[contains(@class, 'error') and contains(., 'Not undone')]");
    assert_eq!(server.http().get("/api/flags/ui.a/environments/dev").body["state"]["enabled"], false, "all or nothing");
    server.cli(&["set", "ui.b", "--env", "dev", "--enabled", "false", "--value", "true"]).ok();

    // Copy Dev into Staging: the preview lists what changes, nothing happens until it is applied.
    browser.click("//nav[@id='switcher']/button[text()='Staging']");
    browser.find("//select[@id='copy-from']/option[@value='dev']");
    browser.click("//button[@id='copy']");
    browser.find(
        "//dialog[@id='confirm' and @open]//pre[contains(., 'ui.c') and contains(., 'turned on') and contains(., '2 already identical')]",
    );
    browser.screenshot("panel-copy.png");
    assert_eq!(server.http().get("/api/flags/ui.c/environments/staging").body["state"]["enabled"], false, "the preview changed nothing");
    // Someone changes the source while the dialog is open: the confirmed copy is refused rather than applied as changed.
    let changed = server.http().put("/api/flags/ui.c/environments/dev", &json!({"enabled": true, "serve": {"value": false}}), None);
    assert_eq!(changed.status, 200);
    browser.click("//button[@id='confirm-ok']");
    // Refused, and said so on the page (no browser alert).
    browser.find("//div[@id='toasts']/div[contains(@class, 'error') and contains(., 'since the diff was computed')]");
    assert_eq!(server.http().get("/api/flags/ui.c/environments/staging").body["state"]["enabled"], false, "nothing was copied");
    server.http().put("/api/flags/ui.c/environments/dev", &json!({"enabled": true, "serve": {"value": true}}), None);
    browser.click("//button[@id='copy']");
    browser.find("//dialog[@id='confirm' and @open]//pre[contains(., 'ui.c') and contains(., 'turned on')]");
    browser.click("//button[@id='confirm-ok']");
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.c", "staging")));
    let audit = server.http().get("/api/flags/audit?action=copy").body;
    assert_eq!(audit["entries"][0]["from_environment"], "development");
    browser.click("//div[@id='toasts']/div[contains(., 'copied from Dev into Staging')]/button[text()='Undo']");
    browser.find(&format!("{}[normalize-space(.)='✗ Disabled']", cell("ui.c", "staging")));
    server.cli(&["enable", "ui.c", "--env", "staging"]).ok();
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.c", "staging")));

    // Export Staging: a JSON download in the export format.
    browser.click("//button[@id='export']");
    let link = browser.attribute("//a[@id='export-link']", "download");
    assert_eq!(link, json!("vexil-staging.json"));
    let exported = browser
        .execute_async("const done = arguments[arguments.length - 1]; document.getElementById('export-link').blob.text().then(done);");
    let exported: Value = serde_json::from_str(exported.as_str().unwrap()).unwrap();
    assert_eq!(exported["format"], "vexil.states");
    assert_eq!(exported["flags"]["ui.c"]["enabled"], true);

    // Import it into Prod: a dry-run diff first, then applied with a reason and the confirmation.
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("staging.json");
    std::fs::write(&file, exported.to_string()).unwrap();
    browser.click("//nav[@id='switcher']/button[text()='Prod']");
    browser.type_into("//input[@id='import-file']", file.to_str().unwrap());
    browser.find("//dialog[@id='confirm' and @open]//pre[contains(., 'ui.c')]");
    browser.type_into("//input[@id='confirm-reason']", "Same as staging for the launch");
    browser.click("//input[@id='confirm-check']");
    browser.click("//button[@id='confirm-ok']");
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.c", "prod")));
    let audit = server.http().get("/api/flags/audit?action=import&env=prod").body;
    assert_eq!(audit["entries"][0]["reason"], "Same as staging for the launch");
}

#[test]
fn the_emergency_disable_is_one_click_and_a_reason_and_a_viewer_sees_no_controls() {
    let server = Server::start();
    server.cli(&["define", "ui.problem_feature"]).ok();
    server.cli(&["enable", "ui.problem_feature", "--env", "prod", "--yes", "--reason", "launch"]).ok();
    let (_driver, browser) = admin_panel(&server);
    browser.click(&cell("ui.problem_feature", "prod"));
    browser.find("//dialog[@id='confirm' and @open]");
    assert_eq!(
        browser.attribute("//label[@id='confirm-check-label']", "hidden"),
        json!("true"),
        "no confirmation box to tick when disabling"
    );
    browser.type_into("//input[@id='confirm-reason']", "Incident #123");
    browser.click("//button[@id='confirm-ok']");
    browser.find(&format!("{}[normalize-space(.)='✗ Disabled']", cell("ui.problem_feature", "prod")));
    let audit = server.http().get("/api/flags/audit?flag=ui.problem_feature&action=disable").body;
    assert_eq!(audit["entries"][0]["reason"], "Incident #123");

    common::cli(
        &server.url,
        Some(common::ADMIN_TOKEN),
        &["user", "add", "pm@example.com", "--role", "viewer", "--password-stdin"],
        Some("viewer password\n"),
    )
    .expect_code(0);
    browser.click("//button[@id='logout']");
    // Logging out ends the session on the server first; the form shows once it has.
    browser.find("//form[@id='login' and not(@hidden)]");
    browser.log_in(&server, "pm@example.com", "viewer password");
    browser.find("//tr[@data-flag='ui.problem_feature']/td[@data-environment='prod']/span[normalize-space(.)='✗ Disabled']");
    let controls = browser.call("POST", "/elements", json!({"using": "xpath", "value": "//tr[@data-flag='ui.problem_feature']//td[@data-environment]//button | //div[@id='actions' and not(@hidden)]"}));
    assert_eq!(controls.as_array().unwrap().len(), 0, "a viewer gets states, not controls");
    browser.find("//p[@id='role-note' and not(@hidden) and contains(., 'Your role is viewer')]");
    // The overall history, filtered by action.
    browser.click("//button[@aria-label='History of ui.problem_feature']");
    browser.find("//tbody[@id='history-body']/tr[1]/td[text()='Incident #123']");
}

#[test]
fn define_edit_and_set_a_flag_from_the_panel() {
    let server = Server::start();
    let (_driver, browser) = admin_panel(&server);
    browser.find("//p[@id='empty' and not(@hidden)]");

    browser.click("//button[@id='new-flag']");
    browser.type_into("//input[@id='editor-name']", "UI.Bad Name");
    browser.click("//button[@id='editor-ok']");
    browser.find("//input[@id='editor-name' and @aria-invalid='true']/../following-sibling::p[contains(@class, 'field-error') and contains(., '<category>.<snake_case>')]");
    browser.replace("//input[@id='editor-name']", "ui.checkout_v2");
    browser.type_into("//input[@id='editor-description']", "The new checkout");
    browser.type_into("//input[@id='editor-tags']", "checkout, launch");
    browser.click("//button[@id='editor-ok']");
    // A new flag opens on its own page, disabled in every environment.
    browser.find("//h2[@id='flag-title' and text()='ui.checkout_v2']");
    browser.find("//article[@data-environment='prod']//span[@data-summary and normalize-space(.)='Disabled']");
    let flag = server.http().get("/api/flags/ui.checkout_v2").body;
    assert_eq!((flag["description"].as_str(), flag["tags"].clone()), (Some("The new checkout"), json!(["checkout", "launch"])));

    browser.click("//button[@aria-label='Edit ui.checkout_v2']");
    browser.replace("//input[@id='editor-description']", "The new checkout flow");
    browser.click("//button[@id='editor-ok']");
    browser.find("//p[@id='flag-description' and text()='The new checkout flow']");
    browser.click("//button[@id='flag-back']");
    browser.find("//tr[@data-flag='ui.checkout_v2']//a[@title='The new checkout flow']");

    // A disabled string flag serves its default everywhere, production included: editing it needs a reason.
    server.http().post("/api/flags", &json!({"name": "ui.theme", "type": "string", "default": "light"}));
    browser.click("//tr[@data-flag='ui.theme']//a");
    browser.click("//button[@aria-label='Edit ui.theme']");
    browser.replace("//input[@id='editor-default']", "dark");
    browser.click("//button[@id='editor-ok']");
    // The refusal appears beside the field it is about.
    browser.find("//input[@id='editor-reason' and @aria-invalid='true']/../following-sibling::p[contains(@class, 'field-error') and contains(., 'this changes what production serves: give a reason')]");
    browser.screenshot("panel-definition-reason.png");
    assert_eq!(server.http().get("/api/flags/ui.theme").body["default"], "light", "nothing changed");
    // Someone else edits the flag while the form is open: saving the form's (older) fields is refused, not applied over it.
    let owner = server.http().send("PATCH", "/api/flags/ui.theme", Some(json!({"owner": "team-ui"}).to_string()), &[]);
    assert_eq!(owner.status, 200);
    browser.type_into("//input[@id='editor-reason']", "dark by default");
    browser.click("//button[@id='editor-ok']");
    browser.find("//p[@id='editor-error' and contains(., 'changed since you read it')]");
    assert_eq!(server.http().get("/api/flags/ui.theme").body["owner"], "team-ui", "the newer edit stands");
    browser.click("//button[@id='editor-cancel']");
    // A fresh page (the same URL: the flag's page) reads the flag as it is now; the edit goes through from there.
    browser.goto(&format!("{}/?view=flag&flag=ui.theme", server.url));
    browser.click("//button[@aria-label='Edit ui.theme']");
    browser.replace("//input[@id='editor-default']", "dark");
    browser.type_into("//input[@id='editor-reason']", "dark by default");
    browser.click("//button[@id='editor-ok']");
    // The dialog stays open while it saves (a dry run, then the edit) and closes once the server took it.
    browser.find("//dialog[@id='editor' and not(@open)]");
    let audit = server.http().get("/api/flags/audit?flag=ui.theme&env=prod").body;
    assert_eq!(audit["entries"][0]["reason"], "dark by default", "{audit}");

    browser.goto(&server.url);
    browser.click("//button[@aria-label='Set ui.checkout_v2 in staging']");
    browser.click("//input[@id='editor-enabled']");
    browser.type_into("//input[@id='editor-rollout']", "25");
    browser.click("//button[@id='editor-ok']");
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled · rolled out to 25 %']", cell("ui.checkout_v2", "staging")));
    let state = server.http().get("/api/flags/ui.checkout_v2/environments/staging").body;
    assert_eq!(state["state"]["split"]["buckets"][0]["weight"], 25000);
    assert_eq!(state["state"]["updated_by"], "admin@localhost");
    assert_eq!(state["summary"], "Enabled · rolled out to 25 %", "the API says it in the same words");

    // A flag with targets, a rule and a split: the cell says all of it (it used to show only "variant treatment"),
    // in the words of the server's one summary, and follows a change made elsewhere live.
    let http = server.http();
    let define = json!({"name": "experiment.checkout", "type": "string", "default": "control",
        "variants": [{"name": "control", "value": "control"}, {"name": "treatment", "value": "treatment"}]});
    assert_eq!(http.send("POST", "/api/flags", Some(define.to_string()), &[]).status, 201);
    let split = json!({"enabled": true, "serve": {"variant": "treatment"},
        "targets": [{"keys": ["user-1", "user-2"], "serve": {"variant": "treatment"}}],
        "rules": [{"conditions": [{"attribute": "email", "operator": "ends_with", "values": ["@asimo.io"]}], "serve": {"variant": "treatment"}}],
        "split": {"buckets": [{"serve": {"variant": "treatment"}, "weight": 50000}, {"serve": {"variant": "control"}, "weight": 50000}]}});
    let put = http.send("PUT", "/api/flags/experiment.checkout/environments/staging", Some(split.to_string()), &[]);
    assert_eq!(put.status, 200, "{:?}", put.body);
    let words = "Enabled · 50 % treatment / 50 % control · 1 rule · 2 targets";
    browser.find(&format!("{}[normalize-space(.)='✓ {words}']", cell("experiment.checkout", "staging")));
    browser.find(&format!("{}[normalize-space(.)='✗ Disabled (serves control)']", cell("experiment.checkout", "prod")));
    assert_eq!(http.get("/api/flags/experiment.checkout").body["summaries"]["staging"], words);
    browser.screenshot("panel-summaries.png");
}

#[test]
fn a_rollout_shows_its_progress_and_both_variants_error_rates() {
    let server = Server::start();
    server.cli(&["define", "ui.checkout_v2"]).ok();
    server.cli(&["rollout", "ui.checkout_v2", "--env", "staging", "--steps", "10,50,100", "--every", "1h"]).ok();
    let key = common::sdk_key_for(&server, "staging");
    let batch = json!({"flags": {"ui.checkout_v2": {"variants": {"true": {"evaluations": 100, "errors": 5}, "false": {"evaluations": 900, "errors": 9}}}}});
    assert_eq!(server.http().with_token(Some(&key)).post("/api/feature-flags/metrics", &batch).status, 202);
    let (_driver, browser) = admin_panel(&server);
    browser.click("//button[@aria-label='Rollout of ui.checkout_v2 in staging']");
    browser.find("//p[@id='plan-progress' and contains(., 'At 10 %: step 1 of 3') and contains(., '[10 %] → 50 % → 100 %')]");
    // Guarded steps: the dialog says what the plan holds for (the guard has not looked at this step yet, or wants more data).
    browser.find("//p[@id='plan-progress' and contains(., 'Holding: waiting for')]");
    browser.find("//*[@id='plan-guard' and contains(., 'has not looked at this rollout yet')]");
    browser.find("//p[@id='plan-totals' and contains(., 'true: 5.00 % errors (5/100)') and contains(., 'false: 1.00 % errors (9/900)')]");
    browser.find("//*[local-name()='svg' and @id='plan-chart']/*[local-name()='polyline' and @data-variant='true']");
    browser.find("//*[local-name()='svg' and @id='plan-chart']/*[local-name()='polyline' and @data-variant='false']");
    browser.screenshot("panel-rollout.png");
    browser.click("//button[@id='plan-pause']");
    browser.find("//p[@id='plan-progress' and contains(., 'paused')]");
    browser.click("//button[@id='plan-close']");
    browser.find("//button[@aria-label='Rollout of ui.checkout_v2 in staging' and contains(., 'step 1/3, paused')]");
}

#[test]
fn a_guarded_production_change_shows_what_the_guard_sees() {
    let server = Server::start_configured("guard_check_seconds = 1\nguard_min_evaluations = 200\n");
    server.cli(&["define", "ui.search_v2"]).ok();
    server.cli(&["enable", "ui.search_v2", "--env", "prod", "--yes", "--reason", "launch"]).ok();
    let key = common::sdk_key_for(&server, "prod");
    let batch = json!({"flags": {"ui.search_v2": {"variants": {"true": {"evaluations": 300, "errors": 3}}}}});
    assert_eq!(server.http().with_token(Some(&key)).post("/api/feature-flags/metrics", &batch).status, 202);
    // The guard looks every second; the panel shows its last look, so wait for one that saw the counts.
    let deadline = std::time::Instant::now() + common::MOMENT;
    while server.http().get("/api/flags/ui.search_v2/environments/prod/guard").body["report"]["comparisons"][0]["candidate"]["evaluations"]
        != 300
    {
        assert!(std::time::Instant::now() < deadline, "the guard did not look within a moment");
        std::thread::park_timeout(std::time::Duration::from_millis(100));
    }
    let (_driver, browser) = admin_panel(&server);
    browser.click("//button[@aria-label='Guard of ui.search_v2 in production' and contains(., 'guarded')]");
    browser.find("//h2[@id='plan-title' and normalize-space(.)='Guard of ui.search_v2 in Prod']");
    browser.find("//p[@id='plan-guard' and contains(., 'Guard (change until') and contains(., 'waiting for data') and contains(., 'New variant: true') and contains(., '1.00 % (3/300)')]");
    browser.find("//p[@id='plan-totals' and contains(., 'true: 1.00 % errors (3/300)')]");
    // The flag's page says it too, in production's column.
    browser.click("//button[@id='plan-close']");
    browser.click("//tr[@data-flag='ui.search_v2']//a");
    browser
        .find("//article[@data-environment='prod']//p[@data-guard and contains(., 'Guard: waiting for data (watching the change until')]");
    browser.gone("//article[@data-environment='staging']//p[@data-guard]");
    browser.click("//button[@id='flag-back']");
    browser.click("//button[@aria-label='Guard of ui.search_v2 in production' and contains(., 'guarded')]");
    // Staging changes are not watched: no badge there.
    server.cli(&["enable", "ui.search_v2", "--env", "staging"]).ok();
    browser.click("//button[@id='plan-close']");
    browser.find("//tr[@data-flag='ui.search_v2']/td[@data-environment='staging' and contains(., '✓') and not(contains(., 'guarded'))]");
    browser.find("//tr[@data-flag='ui.search_v2']/td[@data-environment='prod' and contains(., 'guarded')]");
}

/// The flag page: every environment side by side in evaluation order (targets, rules, everyone else), what separates
/// two environments, and a history that says what each change did; its URL survives a reload and Back.
#[test]
fn a_flag_page_shows_every_environment_its_differences_and_a_readable_history() {
    let server = Server::start();
    let http = server.http();
    let define = json!({"name": "experiment.checkout", "type": "string", "default": "control", "owner": "team-checkout",
        "variants": [{"name": "control", "value": "control"}, {"name": "treatment", "value": "treatment"}]});
    assert_eq!(http.send("POST", "/api/flags", Some(define.to_string()), &[]).status, 201);
    let split = json!({"enabled": true, "serve": {"variant": "control"},
        "targets": [{"keys": ["user-1", "user-2"], "serve": {"variant": "treatment"}}],
        "rules": [{"conditions": [{"attribute": "email", "operator": "ends_with", "values": ["@asimo.io"]}], "serve": {"variant": "treatment"}}],
        "split": {"buckets": [{"serve": {"variant": "treatment"}, "weight": 50000}, {"serve": {"variant": "control"}, "weight": 50000}]}});
    assert_eq!(http.send("PUT", "/api/flags/experiment.checkout/environments/staging", Some(split.to_string()), &[]).status, 200);
    let (_driver, browser) = admin_panel(&server);
    browser.click("//tr[@data-flag='experiment.checkout']//a");

    let staging = "//article[@data-environment='staging']";
    browser.find(&format!(
        "{staging}//span[@data-summary and normalize-space(.)='Enabled · 50 % treatment / 50 % control · 1 rule · 2 targets']"
    ));
    browser.find(&format!("{staging}//dd//li[normalize-space(.)='user-1, user-2 → treatment']"));
    browser.find(&format!("{staging}//dd/ol/li[normalize-space(.)='email ends with \"@asimo.io\" → treatment']"));
    browser.find(&format!("{staging}//dd[@data-otherwise and normalize-space(.)='50 % treatment / 50 % control']"));
    browser.find("//article[@data-environment='prod']//span[@data-summary and normalize-space(.)='Disabled (serves control)']");
    browser.find("//article[@data-environment='prod']//button[@role='switch' and @aria-checked='false']");
    browser.find("//article[@data-environment='prod' and contains(@class, 'protected')]//span[contains(@class, 'protected-mark')]");
    browser.find(&format!(
        "{staging}//p[@class='meta' and starts-with(normalize-space(.), 'Version 2 · changed by admin@localhost just now (')]"
    ));
    browser.find("//dl[@id='flag-facts']/dd[text()='team-checkout']");
    browser.find("//div[@id='flag-variants']//tr[th[text()='treatment'] and td/code[text()='\"treatment\"']]");
    browser.find("//pre[@id='flag-snippet' and contains(., 'string_value(\"experiment.checkout\"') and contains(., 'FF_EXPERIMENT_CHECKOUT=control')]");

    // The difference between two environments, in words: what prod would change to serve what staging serves.
    browser.click("//select[@id='compare-from']/option[@value='staging']");
    browser.click("//select[@id='compare-to']/option[@value='prod']");
    browser.find("//ul[@id='compare-lines']/li[normalize-space(.)='turned on']");
    browser.find("//ul[@id='compare-lines']/li[normalize-space(.)='targets added: user-1, user-2 → treatment']");
    browser.find("//ul[@id='compare-lines']/li[normalize-space(.)='rule 1: email ends with \"@asimo.io\" → treatment (added)']");
    browser.find("//ul[@id='compare-lines']/li[normalize-space(.)='everyone else: 50 % treatment / 50 % control (was control)']");

    // Its history says what each change did, line by line.
    browser.find("//tbody[@id='flag-history-body']/tr[1]/td[@data-label='What changed']/div[text()='rule 1: email ends with \"@asimo.io\" → treatment (added)']");
    browser.screenshot("panel-flag-page.png");

    // A change made elsewhere reaches the page live.
    server.cli(&["disable", "experiment.checkout", "--env", "staging"]).ok();
    browser.find(&format!("{staging}//span[@data-summary and starts-with(normalize-space(.), 'Disabled')]"));
    browser.find("//tbody[@id='flag-history-body']/tr[1]/td[@data-label='What changed']/div[text()='turned off']");

    // The page has a URL: a reload comes back to it, Back returns to the matrix.
    browser.call("POST", "/refresh", json!({}));
    browser.find("//h2[@id='flag-title' and text()='experiment.checkout']");
    browser.call("POST", "/back", json!({}));
    browser.find("//section[@id='flags-view' and not(@hidden)]");
    browser.call("POST", "/forward", json!({}));
    browser.find("//section[@id='flag-view' and not(@hidden)]//h2[text()='experiment.checkout']");

    // The switch is the kill switch; in production it still asks for a reason, and a developer cannot use it there.
    browser.click("//article[@data-environment='dev']//button[@role='switch']");
    browser.find("//article[@data-environment='dev']//button[@role='switch' and @aria-checked='true']");
    assert_eq!(http.get("/api/flags/experiment.checkout/environments/dev").body["state"]["enabled"], true);
}

/// A string flag with variants and a rule, made entirely in the panel: the server's refusals appear beside the field
/// they are about, and an SDK key's OFREP answer follows what the panel set.
#[test]
fn a_string_flag_with_variants_and_a_rule_made_in_the_panel_is_what_ofrep_answers() {
    let server = Server::start();
    let key = common::sdk_key_for(&server, "dev");
    let (_driver, browser) = admin_panel(&server);
    browser.click("//button[@id='new-flag']");
    browser.type_into("//input[@id='editor-name']", "ui.checkout_flow");
    browser.click("//select[@id='editor-type']/option[@value='string']");
    browser.type_into("//input[@id='editor-default']", "control");
    browser.click("//button[text()='Add a variant']");
    browser.click("//button[text()='Add a variant']");
    browser.type_into("//input[@aria-label='Variant 1 name']", "control");
    browser.type_into("//input[@aria-label='Variant 1 value']", "control");
    browser.type_into("//input[@aria-label='Variant 2 name']", "Treatment!");
    browser.type_into("//input[@aria-label='Variant 2 value']", "treatment");
    browser.click("//button[@id='editor-ok']");
    // The server refuses the variant's name, and says so beside it.
    browser.find("//input[@aria-label='Variant 2 name' and @aria-invalid='true']/../following-sibling::p[contains(@class, 'field-error')]");
    browser.replace("//input[@aria-label='Variant 2 name']", "treatment");
    browser.click("//button[@id='editor-ok']");
    browser.find("//h2[@id='flag-title' and text()='ui.checkout_flow']");

    browser.click("//button[@aria-label='Edit targeting of ui.checkout_flow in development']");
    browser.click("//input[@id='targeting-enabled']");
    browser.click("//button[text()='Add a rule']");
    browser.type_into("//input[@aria-label='Attribute of rule 1 condition 1']", "email");
    browser.click("//select[@aria-label='Operator of rule 1 condition 1']/option[@value='regex']");
    browser.type_into("//input[@aria-label='Values of rule 1 condition 1']", "(unclosed");
    browser.click("//select[@aria-label='What rule 1 serves']/option[@value='variant:treatment']");
    browser.click("//button[@id='targeting-ok']");
    browser.find("//input[@aria-label='Values of rule 1 condition 1' and @aria-invalid='true']");
    browser.find(
        "//div[contains(@class, 'condition')]/following-sibling::p[contains(@class, 'field-error') and contains(., 'does not compile')]",
    );
    // A split whose shares do not reach 100 % is refused beside the split, before it is sent.
    browser.click("//fieldset[legend[text()='Everyone else']]/button[text()='Split by percentage']");
    browser.replace("//input[@aria-label='Share 1 in %']", "40");
    browser.find("//p[contains(@class, 'split-total') and contains(., 'Total: 90 %')]");
    browser.click("//select[@aria-label='Operator of rule 1 condition 1']/option[@value='ends_with']");
    browser.replace("//input[@aria-label='Values of rule 1 condition 1']", "@asimo.io");
    browser.click("//button[@id='targeting-ok']");
    browser.find("//p[contains(@class, 'field-error') and contains(., 'the shares add up to 90 %')]");
    browser.screenshot("panel-targeting.png");
    browser.click("//fieldset[legend[text()='Everyone else']]/button[text()='Serve one value instead']");
    browser.click("//button[@id='targeting-ok']");
    browser.find("//dialog[@id='targeting' and not(@open)]");
    browser.find("//article[@data-environment='dev']//dd/ol/li[normalize-space(.)='email ends with \"@asimo.io\" → treatment']");

    let ofrep = |email: &str| {
        let body = json!({"context": {"targetingKey": "user-7", "email": email}});
        server.http().with_token(Some(&key)).post("/ofrep/v1/evaluate/flags/ui.checkout_flow", &body).body
    };
    assert_eq!(ofrep("ada@asimo.io")["value"], "treatment");
    assert_eq!(ofrep("ada@asimo.io")["variant"], "treatment");
    assert_eq!(ofrep("bob@example.com")["value"], "control");

    // Rules reorder by dragging (or the arrows beside them), and the order is what the server keeps.
    browser.click("//button[@aria-label='Edit targeting of ui.checkout_flow in development']");
    browser.click("//button[text()='Add a rule']");
    browser.type_into("//input[@aria-label='Attribute of rule 2 condition 1']", "plan");
    browser.type_into("//input[@aria-label='Values of rule 2 condition 1']", "pro");
    browser.execute_async(
        "const done = arguments[arguments.length - 1];
         const [first, second] = document.querySelectorAll('#targeting fieldset.rule');
         const data = new DataTransfer();
         second.dispatchEvent(new DragEvent('dragstart', {dataTransfer: data, bubbles: true}));
         first.dispatchEvent(new DragEvent('dragover', {dataTransfer: data, bubbles: true, cancelable: true}));
         first.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
         done(true);",
    );
    browser.find("//input[@aria-label='Attribute of rule 1 condition 1' and @value='plan']");
    browser.click("//button[@id='targeting-ok']");
    browser.find("//article[@data-environment='dev']//dd/ol/li[1][normalize-space(.)='plan is \"pro\" → control']");
    let rules = server.http().get("/api/flags/ui.checkout_flow/environments/dev").body["state"]["rules"].clone();
    assert_eq!(rules[0]["conditions"][0]["attribute"], "plan", "{rules}");
    // Opening the editor and saving it untouched writes nothing (a new flag's state serves its default as a value,
    // which the editor keeps as such).
    let version = server.http().get("/api/flags/ui.checkout_flow/environments/prod").body["state"]["version"].clone();
    browser.goto(&format!("{}/?view=flag&flag=ui.checkout_flow", server.url));
    browser.click("//button[@aria-label='Edit targeting of ui.checkout_flow in production']");
    browser.find("//select[@aria-label='What everyone else gets']/option[@value='value' and text()='control (as a value)']");
    browser.type_into("//input[@id='targeting-reason']", "look only");
    browser.click("//input[@id='targeting-check']");
    browser.click("//button[@id='targeting-ok']");
    browser.find("//div[contains(@class, 'toast') and contains(., 'Nothing changed')]");
    assert_eq!(server.http().get("/api/flags/ui.checkout_flow/environments/prod").body["state"]["version"], version);
    browser.click("//button[@aria-label='Edit targeting of ui.checkout_flow in development']");
    browser.click("//button[@aria-label='Move rule 1 down']");
    browser.click("//button[@id='targeting-ok']");
    browser.find("//article[@data-environment='dev']//dd/ol/li[1][normalize-space(.)='email ends with \"@asimo.io\" → treatment']");
    browser.find("//tbody[@id='flag-history-body']/tr[1]/td[@data-label='What changed']/div[normalize-space(.)='rule 2: plan is \"pro\" → control (moved from 1)']");

    // Someone changes the flag while the editor is open: saving is refused, and the editor says what it serves now.
    browser.click("//button[@aria-label='Edit targeting of ui.checkout_flow in development']");
    browser.find("//dialog[@id='targeting' and @open]");
    browser.click("//button[text()='Add a target']");
    browser.type_into("//textarea[@aria-label='Targeting keys of target 1']", "user-9");
    server.cli(&["disable", "ui.checkout_flow", "--env", "dev"]).ok();
    browser.click("//button[@id='targeting-ok']");
    browser.find("//p[@id='targeting-error' and contains(., 'It now serves: Disabled (serves control)') and contains(., 'changed by admin@localhost')]");
    browser.click("//button[@id='targeting-cancel']");
    assert_eq!(
        server.http().get("/api/flags/ui.checkout_flow/environments/dev").body["state"]["enabled"],
        false,
        "the newer change stands"
    );
}

/// The seed's best practice, "promote to production as a gradual rollout", from the promote modal: production starts at
/// the first step with the guard watching, and a developer sees production's controls disabled with the reason.
#[test]
fn promoting_to_production_as_a_guarded_rollout_from_the_modal() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "dev"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "staging"]).ok();
    let (_driver, browser) = admin_panel(&server);
    browser.click("//tr[@data-flag='ui.new_feature']//a");
    browser.click("//article[@data-environment='staging']//button[contains(., 'Promote to Prod')]");
    browser.find("//dialog[@id='confirm' and @open]//pre[normalize-space(.)='turned on']");
    browser.click("//input[@id='confirm-rollout-on']");
    browser.replace("//input[@id='confirm-rollout-steps']", "5, 50, 100");
    browser.type_into("//input[@id='confirm-reason']", "gradual launch");
    browser.click("//input[@id='confirm-check']");
    browser.screenshot("panel-promote-rollout.png");
    browser.click("//button[@id='confirm-ok']");
    browser
        .find("//article[@data-environment='prod']//span[@data-summary and normalize-space(.)='Enabled · rolling out: step 1 of 3, 5 %']");
    browser.find("//article[@data-environment='prod']//button[contains(., 'Rollout: step 1 of 3')]");
    let state = server.http().get("/api/flags/ui.new_feature/environments/prod").body;
    assert_eq!(state["state"]["rollout"]["steps"], json!([5000, 50000, 100000]), "{state}");
    assert_eq!(state["state"]["split"]["buckets"][0]["weight"], 5000);
    let audit = server.http().get("/api/flags/audit?flag=ui.new_feature&env=prod").body;
    assert_eq!((audit["entries"][0]["action"].as_str(), audit["entries"][0]["reason"].as_str()), (Some("promote"), Some("gradual launch")));
    browser.click("//article[@data-environment='prod']//button[contains(., 'Rollout: step 1 of 3')]");
    browser.find("//p[@id='plan-progress' and contains(., 'At 5 %: step 1 of 3')]");
    browser.click("//button[@id='plan-close']");

    // A developer: production's switch, targeting and rollout controls are disabled, and the card says why.
    common::cli(
        &server.url,
        Some(common::ADMIN_TOKEN),
        &["user", "add", "dev@example.com", "--role", "developer", "--password-stdin"],
        Some("developer password\n"),
    )
    .expect_code(0);
    browser.click("//button[@id='logout']");
    browser.log_in(&server, "dev@example.com", "developer password");
    browser.goto(&format!("{}/?view=flag&flag=ui.new_feature", server.url));
    browser.find("//article[@data-environment='prod']//p[@class='refusal' and contains(., 'needs the admin role')]");
    browser.find("//article[@data-environment='prod']//button[@role='switch' and @disabled]");
    browser.find("//article[@data-environment='prod']//button[@aria-label='Edit targeting of ui.new_feature in production' and @disabled]");
    browser.find("//article[@data-environment='staging']//button[contains(., 'Promote to Prod') and @disabled]");
    browser.find("//article[@data-environment='dev']//button[@role='switch' and not(@disabled)]");
}

/// Several tabs of the panel share one set of streams: a browser gives a server six connections, and each tab holding
/// its own stream per environment (three) left a second tab, and then the first, with no connection for anything else.
#[test]
fn several_tabs_share_the_streams_and_each_stays_live_and_usable() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["define", "ui.other"]).ok();
    let (_driver, browser) = admin_panel(&server);
    browser.find("//span[@id='connection' and text()='Live']");
    let first = browser.call("GET", "/window", Value::Null);
    let mut tabs = vec![first.clone()];
    for _ in 0..2 {
        let tab = browser.call("POST", "/window/new", json!({"type": "tab"}));
        browser.call("POST", "/window", json!({"handle": tab["handle"]}));
        browser.goto(&server.url);
        browser.find("//span[@id='connection' and text()='Live']");
        tabs.push(tab["handle"].clone());
    }
    // The last tab can still change things, and every tab hears of it.
    browser.click(&cell("ui.new_feature", "dev"));
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.new_feature", "dev")));
    for tab in &tabs {
        browser.call("POST", "/window", json!({"handle": tab}));
        browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.new_feature", "dev")));
    }
    // The first tab too: a change it makes is made, and reaches the others live.
    browser.call("POST", "/window", json!({"handle": first}));
    browser.click(&cell("ui.other", "staging"));
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.other", "staging")));
    browser.call("POST", "/window", json!({"handle": tabs[2]}));
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.other", "staging")));
    // A change made elsewhere while a tab joins reaches it too: it starts from the shared streams' current picture.
    server.cli(&["enable", "ui.other", "--env", "dev"]).ok();
    let tab = browser.call("POST", "/window/new", json!({"type": "tab"}));
    browser.call("POST", "/window", json!({"handle": tab["handle"]}));
    browser.goto(&server.url);
    browser.find(&format!("{}[normalize-space(.)='✓ Enabled']", cell("ui.other", "dev")));
    server.cli(&["disable", "ui.other", "--env", "dev"]).ok();
    browser.find(&format!("{}[normalize-space(.)='✗ Disabled']", cell("ui.other", "dev")));
}

/// Users and roles, personal tokens, SDK keys (shown once, with a copy button) and a flag's triggers, from the panel;
/// what each makes is what the server then does.
#[test]
fn users_keys_and_triggers_are_managed_from_the_panel() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "prod", "--yes", "--reason", "launch"]).ok();
    let (_driver, browser) = admin_panel(&server);
    browser.click("//button[@id='access']");
    browser.find("//tr[@data-user='admin@localhost']//select[@disabled]");

    // A user added without a password gets a generated one, shown once.
    browser.click("//button[@id='user-add']");
    browser.type_into("//input[@id='editor-email']", "dev@example.com");
    browser.click("//button[@id='editor-ok']");
    browser.find("//dialog[@id='secret' and @open]//h2[text()='dev@example.com added']");
    let password = browser.text_of("secret-value");
    assert!(password.len() >= 8, "{password}");
    browser.click("//button[@id='secret-close']");
    browser.find("//tr[@data-user='dev@example.com']//select[@aria-label='Role of dev@example.com']");
    let login = server.http().post("/api/auth/login", &json!({"email": "dev@example.com", "password": password}));
    assert_eq!(login.status, 200, "the shown password logs in: {:?}", login.body);
    browser.click("//select[@aria-label='Role of dev@example.com']/option[@value='viewer']");
    browser.find("//div[contains(@class, 'toast') and contains(., 'dev@example.com is now viewer')]");
    let users = server.http().get("/api/users").body;
    let dev = users.as_array().unwrap().iter().find(|user| user["email"] == "dev@example.com").unwrap().clone();
    assert_eq!(dev["role"], "viewer");
    browser.click("//button[@aria-label='Disable dev@example.com']");
    browser.find("//tr[@data-user='dev@example.com']//span[text()='Disabled']");
    let refused = server.http().post("/api/auth/login", &json!({"email": "dev@example.com", "password": password}));
    assert_ne!(refused.status, 200, "a disabled user cannot log in");

    // An SDK key: shown once with a copy button; it reads its environment over OFREP until revoked.
    browser.click("//button[@id='sdk-key-new']");
    browser.type_into("//input[@id='editor-name']", "checkout service");
    browser.click("//select[@id='editor-environment']/option[@value='prod']");
    browser.click("//button[@id='editor-ok']");
    browser.find("//dialog[@id='secret' and @open]//h2[text()='SDK key for prod']");
    let key = browser.text_of("secret-value");
    assert!(key.starts_with("vxs_"), "{key}");
    browser.click("//button[@id='secret-copy']");
    browser.find("//button[@id='secret-copy' and (text()='Copied' or text()='Selected: press Ctrl+C')]");
    browser.screenshot("panel-secret.png");
    browser.click("//button[@id='secret-close']");
    let ofrep = |key: &str| {
        server.http().with_token(Some(key)).post("/ofrep/v1/evaluate/flags/ui.new_feature", &json!({"context": {"targetingKey": "u"}}))
    };
    assert_eq!(ofrep(&key).body["value"], true);
    browser.find("//tbody[@id='tokens-body']/tr[th[text()='checkout service'] and td[text()='SDK key'] and td[text()='prod']]");
    // A client-side key, for browser code: its dialog says what it cannot do.
    browser.click("//button[@id='client-key-new']");
    browser.type_into("//input[@id='editor-name']", "web bundle");
    browser.type_into("//input[@id='editor-origins']", "https://shop.example.com, http://localhost:5173");
    browser.click("//button[@id='editor-ok']");
    browser.find("//dialog[@id='secret' and @open]//p[@id='secret-note' and contains(., 'never reads rules or targeting keys')]");
    let client = browser.text_of("secret-value");
    assert!(client.starts_with("vxc_"), "{client}");
    browser.click("//button[@id='secret-close']");
    browser.find("//tbody[@id='tokens-body']/tr[th[text()='web bundle'] and td[text()='Client-side key'] and td/div[text()='pages of https://shop.example.com, http://localhost:5173']]");
    let context = json!({"context": {"targetingKey": "u"}});
    let from = |origin: &str| {
        server
            .http()
            .with_token(Some(&client))
            .send("POST", "/ofrep/v1/evaluate/flags", Some(context.to_string()), &[("origin", origin)])
            .status
    };
    assert_eq!((from("https://shop.example.com"), from("https://copycat.example")), (200, 403), "the key answers its origins' pages only");
    browser.screenshot("panel-access.png");
    browser.click("//button[@aria-label='Revoke checkout service']");
    browser.click("//button[@id='confirm-ok']");
    browser.gone("//tbody[@id='tokens-body']/tr[th[text()='checkout service']]");
    assert_eq!(ofrep(&key).status, 401, "a revoked key is refused");

    // A trigger, from the flag's page: its URL is shown once, and calling it turns the flag off in production.
    browser.goto(&format!("{}/?view=flag&flag=ui.new_feature", server.url));
    browser.click("//button[@id='trigger-new']");
    browser.click("//select[@id='editor-environment']/option[@value='prod']");
    browser.type_into("//input[@id='editor-name']", "checkout errors");
    browser.click("//button[@id='editor-ok']");
    browser.find("//dialog[@id='secret' and @open]//h2[text()='Trigger: checkout errors']");
    let url = browser.text_of("secret-value");
    browser.click("//button[@id='secret-close']");
    browser.find("//ul[@id='flag-triggers']/li[contains(., 'checkout errors: turns off ui.new_feature in prod')]");
    let path = url.split_once("/api/").map(|(_, path)| format!("/api/{path}")).unwrap_or_else(|| panic!("a trigger URL: {url}"));
    assert_eq!(server.http().with_token(None).send("POST", &path, None, &[]).status, 200);
    browser.find("//article[@data-environment='prod']//button[@role='switch' and @aria-checked='false']");
    browser.find(
        "//article[@data-environment='prod']//span[@data-summary and normalize-space(.)='Disabled · turned off by a monitoring trigger']",
    );
}

/// Every dialog is operated from the keyboard, and Escape cancels it completely: a form left with Escape is not
/// submitted later with the next dialog's Save (it used to be: its handler stayed behind).
#[test]
fn dialogs_work_from_the_keyboard_and_escape_cancels_them() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "dev"]).ok();
    let (_driver, browser) = admin_panel(&server);
    let keys = |text: &str| {
        let active = browser.call("GET", "/element/active", Value::Null);
        let element = active.as_object().and_then(|object| object.values().next()).and_then(Value::as_str).unwrap().to_owned();
        browser.call("POST", &format!("/element/{element}/value"), json!({"text": text}));
    };
    const ESCAPE: &str = "\u{E00C}";
    const ENTER: &str = "\u{E007}";
    // A new flag typed, then abandoned with Escape.
    browser.click("//button[@id='new-flag']");
    browser.type_into("//input[@id='editor-name']", "ui.abandoned");
    keys(ESCAPE);
    browser.find("//dialog[@id='editor' and not(@open)]");
    // The next dialog, filled and saved with Enter, saves only itself.
    browser.click("//tr[@data-flag='ui.new_feature']//a");
    browser.click("//button[@aria-label='Edit ui.new_feature']");
    let description = browser.find("//input[@id='editor-description']");
    browser.call("POST", &format!("/element/{description}/click"), json!({}));
    keys("Typed from the keyboard");
    keys(ENTER);
    browser.find("//p[@id='flag-description' and text()='Typed from the keyboard']");
    assert_eq!(server.http().get("/api/flags/ui.abandoned").status, 404, "the abandoned form was not submitted");
    // The confirmation and the targeting editor likewise.
    browser.click("//article[@data-environment='dev']//button[contains(., 'Promote to Staging')]");
    browser.find("//dialog[@id='confirm' and @open]");
    keys(ESCAPE);
    browser.find("//dialog[@id='confirm' and not(@open)]");
    browser.click("//button[@aria-label='Edit targeting of ui.new_feature in development']");
    browser.click("//input[@id='targeting-enabled']");
    keys(ESCAPE);
    browser.find("//dialog[@id='targeting' and not(@open)]");
    browser.click("//button[@aria-label='Edit targeting of ui.new_feature in staging']");
    browser.click("//button[@id='targeting-ok']");
    browser.find("//dialog[@id='targeting' and not(@open)]");
    let dev = server.http().get("/api/flags/ui.new_feature/environments/dev").body;
    assert_eq!(dev["state"]["enabled"], true, "the targeting left with Escape was not saved: {dev}");
    let audit = server.http().get("/api/flags/audit?flag=ui.new_feature&env=dev").body;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 2, "dev has only its create and enable records: {audit}");
    let staging = server.http().get("/api/flags/ui.new_feature/environments/staging").body;
    assert_eq!(staging["state"]["enabled"], false, "the promotion left with Escape was not made: {staging}");

    // Archiving from the flag's page freezes its states; unarchiving brings it back.
    browser.click("//button[@id='flag-archive' and text()='Archive…']");
    browser.find("//dialog[@id='confirm' and @open]//pre[contains(., 'states freeze')]");
    browser.click("//button[@id='confirm-ok']");
    browser.find("//span[@id='flag-badges']/span[text()='archived']");
    browser.find("//article[@data-environment='dev']//button[@role='switch' and @disabled]");
    assert_eq!(server.http().get("/api/flags/ui.new_feature").body["archived"], true);
    browser.click("//button[@id='flag-archive' and text()='Unarchive']");
    browser.click("//button[@id='confirm-ok']");
    browser.find("//article[@data-environment='dev']//button[@role='switch' and not(@disabled)]");
    browser.gone("//span[@id='flag-badges']/span[text()='archived']");
    assert_eq!(server.http().get("/api/flags/ui.new_feature").body["archived"], false);
}

/// A static file server for `tests/web` on its own port: the page of an application on another origin.
fn serve_web_directory() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/web");
    assert!(
        root.join("node_modules/@openfeature/web-sdk").exists(),
        "tests/web/node_modules is missing: scripts/test.sh runs npm ci there"
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(&stream);
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    return;
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/").split('?').next().unwrap_or("/").to_owned();
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
                    line.clear();
                }
                let file = root.join(path.trim_start_matches('/'));
                let (status, kind, body) = match std::fs::read(&file) {
                    Ok(body) if !path.contains("..") => {
                        let kind = if path.ends_with(".js") { "text/javascript" } else { "text/html; charset=utf-8" };
                        ("200 OK", kind, body)
                    }
                    _ => ("404 Not Found", "text/plain", b"not found".to_vec()),
                };
                let head =
                    format!("HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                let mut stream = &stream;
                let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
            });
        }
    });
    origin
}

#[test]
fn an_application_on_another_origin_evaluates_flags_with_the_official_openfeature_web_provider() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "dev"]).ok();
    server.cli(&["define", "backend.rag_max_results", "--type", "number", "--default", "5"]).ok();
    server.cli(&["set", "backend.rag_max_results", "--env", "dev", "--value", "20", "--enabled", "true"]).ok();
    let key = common::sdk_key_for(&server, "dev");
    let origin = serve_web_directory();
    let driver = Driver::start();
    let browser = Browser::open(&driver);
    browser.goto(&format!("{origin}/page.html?server={}&key={key}", server.url));
    let deadline = std::time::Instant::now() + common::MOMENT;
    let answer = loop {
        let text = browser.execute_async("arguments[0](document.getElementById('result').textContent)");
        let text = text.as_str().unwrap_or_default().to_owned();
        if text != "loading" {
            break serde_json::from_str::<Value>(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        }
        assert!(std::time::Instant::now() < deadline, "the page evaluated its flags");
        std::thread::park_timeout(std::time::Duration::from_millis(50));
    };
    assert_eq!(answer["boolean"]["value"], true, "{answer}");
    assert_eq!(answer["boolean"]["error"], Value::Null, "{answer}");
    assert_eq!(answer["number"]["value"], 20, "{answer}");
    assert_eq!(answer["number"]["variant"], "(value)", "{answer}");
}

#[test]
fn the_official_openfeature_web_provider_follows_a_cli_change_live_without_polling() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    let key = server.cli(&["token", "create", "--client", "--env", "dev"]).ok().stdout.trim().to_owned();
    let origin = serve_web_directory();
    let driver = Driver::start();
    let browser = Browser::open(&driver);
    browser.goto(&format!("{origin}/live.html?server={}&key={key}", server.url));
    let shown = |id: &str| {
        browser.execute_async(&format!("arguments[0](document.getElementById('{id}').textContent)")).as_str().unwrap_or_default().to_owned()
    };
    let wait_for = |id: &str, wanted: &str| {
        let deadline = std::time::Instant::now() + common::MOMENT;
        while shown(id) != wanted {
            assert!(std::time::Instant::now() < deadline, "#{id} shows {wanted} (it shows {})", shown(id));
            std::thread::park_timeout(std::time::Duration::from_millis(20));
        }
    };
    wait_for("result", "false");
    server.cli(&["enable", "ui.new_feature", "--env", "dev"]).ok();
    wait_for("result", "true");
    server.cli(&["disable", "ui.new_feature", "--env", "dev"]).ok();
    wait_for("result", "false");
    assert_eq!(shown("changes"), "2", "one ConfigurationChanged event per change");
}
