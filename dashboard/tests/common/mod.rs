//! The dashboard binary on a free port.
#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub struct Service {
    child: Child,
    pub addr: String,
    /// Sent as a bearer token, if the dashboard requires one.
    pub token: Option<String>,
}

impl Service {
    /// `dashboard --results-file FILE` on a free port, once it has read
    /// `panes` panes.
    pub fn start(results: &Path, panes: u64) -> Service {
        Service::start_with(results, panes, &[])
    }

    pub fn start_with(results: &Path, panes: u64, args: &[&str]) -> Service {
        let service = Service::spawn(results, args);
        service.wait_for_panes(panes);
        service
    }

    /// `dashboard --results-file FILE ARGS…` on a free port, once it answers.
    pub fn spawn(results: &Path, args: &[&str]) -> Service {
        let addr = format!("127.0.0.1:{}", test_kit::free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_dashboard"))
            .arg("--results-file")
            .arg(results)
            .args(["--listen", &addr])
            .args(args)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let service = Service {
            child,
            addr,
            token: None,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while service.try_get("/healthz").is_none() {
            assert!(Instant::now() < deadline, "the dashboard never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
        service
    }

    pub fn wait_for_panes(&self, panes: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let want = format!("dashboard_panes_read_total {panes}\n");
        loop {
            if let Some((200, body)) = self.try_get("/metrics") {
                if body.contains(&want) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the dashboard did not read {panes} panes"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.try_get(path)
            .unwrap_or_else(|| panic!("GET {path} failed"))
    }

    fn try_get(&self, path: &str) -> Option<(u16, String)> {
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let headers: Vec<_> = bearer
            .iter()
            .map(|b| ("authorization", b.as_str()))
            .collect();
        test_kit::try_get_with(&self.url(path), &headers).map(|r| (r.status, r.body))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
