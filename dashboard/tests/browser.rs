//! The page in a real browser (headless Chromium through chromedriver): the
//! numbers shown equal the fixture's truth; one more pane and a dead letter
//! appended to the results file change them without a reload; data-driven
//! text is shown as text, never as markup. A screenshot is saved under
//! `target/`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{fixture, Service};
use fantoccini::{ClientBuilder, Locator};
use generator::{Totals, TruthFile};
use hyper_util::client::legacy::connect::HttpConnector;
use test_kit::free_port;

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.is_file())
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn int(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn money(micros: i64) -> String {
    let cents = (micros + 5_000) / 10_000;
    format!("${}.{:02}", int(cents / 100), cents % 100)
}

fn total(truth: &TruthFile) -> Totals {
    truth.windows.iter().map(|w| &w.totals).sum()
}

/// The text of element `id`; the page re-renders its cards as updates
/// come, so an element found may be gone before it is read: then again.
async fn text_of(client: &fantoccini::Client, id: &str) -> String {
    for _ in 0..20 {
        if let Ok(e) = client.find(Locator::Id(id)).await {
            if let Ok(text) = e.text().await {
                return text;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    String::new()
}

/// Waits until element `id` shows `want`.
async fn wait_text(client: &fantoccini::Client, id: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = text_of(client, id).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "#{id} shows {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A headless Chromium session, and what it needs kept alive.
struct Browser {
    client: fantoccini::Client,
    profile: PathBuf,
    _driver: Driver,
}

impl Browser {
    /// `None` (the test skipped, saying so) when there is no browser here,
    /// unless REQUIRE_BROWSER says there must be.
    async fn start(name: &str) -> Option<Browser> {
        let (Some(chromium), Some(chromedriver)) = (
            on_path(&["chromium", "chromium-browser", "google-chrome"]),
            on_path(&["chromedriver"]),
        ) else {
            let message = "SKIPPED the browser test: no chromium and chromedriver on the PATH \
                           (apt-get install chromium chromium-driver)";
            if std::env::var_os("REQUIRE_BROWSER").is_some() {
                panic!("{message} (REQUIRE_BROWSER is set)");
            }
            eprintln!("\n!!!!! {message}\n");
            return None;
        };
        let port = free_port();
        let driver = Driver(
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let profile = tmp().join(format!("chromium-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--window-size=1400,2000",
                         format!("--user-data-dir={}", profile.display())],
            }),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => break c,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot start a browser session: {e}"),
            }
        };
        Some(Browser {
            client,
            profile,
            _driver: driver,
        })
    }

    async fn close(self) {
        self.client.close().await.unwrap();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn tmp() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

/// The fixture's results, copied where the test may append to them.
fn results(name: &str) -> PathBuf {
    let results = tmp().join(name);
    std::fs::copy(fixture("results.jsonl"), &results).unwrap();
    results
}

fn truth() -> TruthFile {
    serde_json::from_str(&std::fs::read_to_string(fixture("truth.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_shows_the_truth_and_updates_itself() {
    let Some(browser) = Browser::start("live").await else {
        return;
    };
    let results = results("browser-results.jsonl");
    let service = Service::start(&results, 109);
    let truth = truth();
    let before = total(&truth);
    let client = &browser.client;

    client
        .goto(&format!("http://{}/", service.addr))
        .await
        .unwrap();
    wait_text(client, "kpi-range-impressions", &int(before.impressions)).await;
    assert_eq!(
        text_of(client, "kpi-range-clicks").await,
        int(before.clicks)
    );
    assert_eq!(
        text_of(client, "kpi-range-conversions").await,
        int(before.conversions)
    );
    assert_eq!(
        text_of(client, "kpi-range-spend").await,
        money(before.spend_micros)
    );
    assert!(text_of(client, "connection").await.starts_with("live"));
    // No login, nothing to log out of.
    let logout = client.find(Locator::Css("#logout button")).await.unwrap();
    assert!(!logout.is_displayed().await.unwrap());
    client
        .execute("window.__loaded_once = true; return true;", vec![])
        .await
        .unwrap();

    // One more pane, for a campaign whose name is markup.
    let name = "<b id=\"injected\">bold</b>";
    let last_start = truth.windows.iter().map(|w| w.window_start).max().unwrap();
    let pane = serde_json::json!({
        "campaign": name, "channel": "email", "window": "", "window_start": last_start + 60_000,
        "window_end": last_start + 120_000, "impressions": 1000, "clicks": 10, "conversions": 2,
        "spend": 7.5, "spend_micros": 7_500_000, "CPC": 0.75, "CPA": 3.75, "CTR": 0.01, "CVR": 0.2,
        "first_offset": 1_000_000, "last_offset": 1_001_011, "records": 1012,
        "max_event_ts_ms": last_start + 61_000, "late_records": 0,
    });
    let line = serde_json::json!({
        "topic": "results", "partition": 0, "key": format!("{name}|email"),
        "value": pane.to_string(), "headers": {},
    });
    // And a dead letter whose value is markup.
    let dead = serde_json::json!({
        "topic": "logs.dlq", "partition": 1, "key": "k",
        "value": "<img id=\"dlq-injected\" src=\"x\">{not json",
        "headers": {"error": "invalid JSON: key must be a string", "error.kind": "invalid_json",
                    "error.stage": "enrich"},
    });
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&results)
        .unwrap();
    writeln!(file, "{line}\n{dead}").unwrap();
    drop(file);

    wait_text(
        client,
        "kpi-range-impressions",
        &int(before.impressions + 1000),
    )
    .await;
    assert_eq!(
        text_of(client, "kpi-range-spend").await,
        money(before.spend_micros + 7_500_000)
    );
    assert_eq!(text_of(client, "kpi-latest-impressions").await, int(1000));
    let reloaded = client
        .execute("return window.__loaded_once === true;", vec![])
        .await
        .unwrap();
    assert_eq!(reloaded, serde_json::json!(true), "the page reloaded");
    let recent = client
        .find(Locator::Id("recent"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        recent.contains(name),
        "the campaign's name is not shown as text: {recent}"
    );
    assert!(
        client.find(Locator::Id("injected")).await.is_err(),
        "markup from the data was rendered"
    );

    wait_text(client, "dlq-total", "1 record").await;
    let dead_letters = client
        .find(Locator::Id("dead-letters"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        dead_letters.contains("invalid_json")
            && dead_letters.contains("invalid JSON: key must be a string")
            && dead_letters.contains("<img id=\"dlq-injected\" src=\"x\">{not json"),
        "the dead letter is not shown as text: {dead_letters}"
    );
    assert!(
        client.find(Locator::Id("dlq-injected")).await.is_err(),
        "markup from a dead letter was rendered"
    );

    let png = client.screenshot().await.unwrap();
    let shot = tmp().join("dashboard.png");
    std::fs::write(&shot, png).unwrap();
    eprintln!("screenshot: {}", shot.display());
    browser.close().await;
}

/// Types `token` into the login form and sends it.
async fn log_in(client: &fantoccini::Client, token: &str) {
    let field = client.find(Locator::Id("token")).await.unwrap();
    field.send_keys(token).await.unwrap();
    client
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_token_the_page_asks_for_it_once_then_shows_the_truth() {
    let Some(browser) = Browser::start("login").await else {
        return;
    };
    let token = tmp().join("browser-token");
    std::fs::write(&token, "browser-test-token-5b1c\n").unwrap();
    let mut service = Service::spawn(
        &results("browser-login-results.jsonl"),
        &["--auth-token-file", token.to_str().unwrap()],
    );
    service.token = Some("browser-test-token-5b1c".into());
    service.wait_for_panes(109);
    let before = total(&truth());
    let client = &browser.client;

    client.goto(&service.url("/")).await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/login");
    log_in(client, "not-the-token").await;
    // A wrong token is answered after a second.
    let error = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".error"))
        .await
        .unwrap();
    assert!(error.text().await.unwrap().contains("not the token"));
    log_in(client, "browser-test-token-5b1c").await;
    // The page, its API calls and its live stream all pass on the cookie.
    wait_text(client, "kpi-range-impressions", &int(before.impressions)).await;
    assert_eq!(client.current_url().await.unwrap().path(), "/");
    assert_eq!(
        text_of(client, "kpi-range-spend").await,
        money(before.spend_micros)
    );
    assert!(text_of(client, "connection").await.starts_with("live"));

    // Logged in, the page offers to log out; then it asks again.
    let logout = client.find(Locator::Css("#logout button")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logout.is_displayed().await.unwrap() {
        assert!(Instant::now() < deadline, "no log-out button");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    logout.click().await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("token"))
        .await
        .unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/login");
    client.goto(&service.url("/")).await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/login");
    browser.close().await;
}

/// Reach, frequency, revenue, ROAS, the breakdowns' reach, the pacing view
/// and the alerts, over the fixture made by the current pipeline.
#[tokio::test(flavor = "multi_thread")]
async fn the_page_shows_reach_revenue_and_pacing() {
    let Some(browser) = Browser::start("reach").await else {
        return;
    };
    let service = Service::start(&fixture("reach-results.jsonl"), 225);
    let truth: TruthFile =
        serde_json::from_str(&std::fs::read_to_string(fixture("reach-truth.json")).unwrap())
            .unwrap();
    let all = total(&truth);
    let client = &browser.client;
    client.goto(&service.url("/")).await.unwrap();
    wait_text(client, "kpi-range-impressions", &int(all.impressions)).await;
    assert_eq!(
        text_of(client, "kpi-range-revenue").await,
        money(all.revenue_micros)
    );
    let roas = all.revenue_micros as f64 / all.spend_micros as f64;
    assert_eq!(
        text_of(client, "kpi-range-roas").await,
        format!("{roas:.2}")
    );
    // Reach comes from the server's union, a moment after the counters.
    let deadline = Instant::now() + Duration::from_secs(20);
    let reach = loop {
        let shown = text_of(client, "kpi-range-reach").await.replace(',', "");
        if let Ok(n) = shown.parse::<u64>() {
            break n;
        }
        assert!(Instant::now() < deadline, "reach shows {shown:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        reach.abs_diff(truth.reach) as f64 <= truth.reach as f64 * 0.02,
        "reach {reach}, exactly {}",
        truth.reach
    );
    let frequency = all.impressions as f64 / reach as f64;
    assert_eq!(
        text_of(client, "kpi-range-frequency").await,
        format!("{frequency:.2}")
    );
    let campaigns = client.find(Locator::Id("by-campaign")).await.unwrap();
    let table = campaigns.text().await.unwrap();
    assert!(
        !table.contains('…'),
        "a breakdown without its reach: {table}"
    );
    // Every campaign has a budget in transform.yaml: three rows of pacing.
    let pacing = client
        .find_all(Locator::Css("#pacing tbody tr"))
        .await
        .unwrap();
    assert_eq!(pacing.len(), 3);
    let first = pacing[0].text().await.unwrap();
    assert!(
        first.contains("Brand Awareness") && first.contains("$150,000.00"),
        "{first}"
    );
    let alerts: Vec<serde_json::Value> =
        serde_json::from_str(&service.get("/api/alerts").1).unwrap();
    assert_eq!(
        text_of(client, "alerts-count").await,
        format!("{} active", alerts.len())
    );
    // The reach chart is drawn.
    client
        .find(Locator::Css("#reach-chart canvas"))
        .await
        .unwrap();
    let png = client.screenshot().await.unwrap();
    let shot = tmp().join("dashboard-reach.png");
    std::fs::write(&shot, png).unwrap();
    eprintln!("screenshot: {}", shot.display());
    browser.close().await;
}

/// Four days of panes of one campaign at noon, 100 to 400 impressions, and
/// 1 more an hour later on each of two hours of the last day (the
/// watermark, the merge's "now", is then that day's 13:00).
fn four_days() -> PathBuf {
    const FIRST_DAY: i64 = 1_755_129_600_000; // 2025-08-14
    let pane = |start: i64, impressions: u64, offset: i64| {
        let pane = serde_json::json!({
            "campaign": "c", "channel": "email", "window": "", "window_start": start,
            "window_end": start + 60_000, "impressions": impressions, "clicks": 1,
            "conversions": 0, "spend": 0.5, "spend_micros": 500_000, "CPC": 0.5, "CPA": 0.0,
            "CTR": 0.0, "CVR": 0.0, "first_offset": offset, "last_offset": offset,
            "records": impressions + 1, "max_event_ts_ms": start + 1_000, "late_records": 0
        });
        serde_json::json!({"topic": "results", "partition": 0, "value": pane.to_string()})
    };
    let (day, hour) = (86_400_000, 3_600_000);
    let mut lines: Vec<serde_json::Value> = (0..4)
        .map(|d| pane(FIRST_DAY + d * day + 12 * hour, (d as u64 + 1) * 100, d))
        .collect();
    lines.push(pane(FIRST_DAY + 3 * day + 13 * hour, 1, 4));
    lines.push(pane(FIRST_DAY + 3 * day + 14 * hour, 1, 5));
    let path = tmp().join("browser-days.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn the_range_picker_compares_with_the_period_before() {
    let Some(browser) = Browser::start("ranges").await else {
        return;
    };
    let service = Service::start(&four_days(), 6);
    let client = &browser.client;
    client.goto(&service.url("/")).await.unwrap();
    // All history by default.
    wait_text(client, "kpi-range-impressions", &int(1002)).await;
    let preset = client.find(Locator::Id("range-preset")).await.unwrap();
    preset.select_by_value("yesterday").await.unwrap();
    wait_text(client, "kpi-range-impressions", &int(300)).await;
    // Against the day before's 200, as Ads Manager shows a change.
    wait_text(client, "kpi-range-impressions-change", "+50%").await;
    assert_eq!(text_of(client, "kpi-range-spend-change").await, "0%");
    let compared = text_of(client, "range-compared").await;
    assert!(compared.contains("2025-08-15"), "{compared}");
    let csv = client
        .find(Locator::Id("export-csv"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(
        csv.contains("date_preset=yesterday") && csv.contains("format=csv"),
        "{csv}"
    );

    // A custom range of two whole days.
    preset.select_by_value("custom").await.unwrap();
    for (id, date) in [("filter-from", "08/15/2025"), ("filter-to", "08/16/2025")] {
        client
            .find(Locator::Id(id))
            .await
            .unwrap()
            .send_keys(date)
            .await
            .unwrap();
    }
    wait_text(client, "kpi-range-impressions", &int(500)).await;
    browser.close().await;
}
