//! The dashboard binary on a free port, and a plain HTTP GET.
#![allow(dead_code)] // each test binary uses a different part

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Service {
    child: Child,
    pub addr: String,
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
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_dashboard"))
            .arg("--results-file")
            .arg(results)
            .args(["--listen", &addr])
            .args(args)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let service = Service { child, addr };
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
        let mut stream = TcpStream::connect(&self.addr).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).ok()?;
        let text = String::from_utf8(response).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            unchunk(body)
        } else {
            body.to_string()
        };
        Some((status, body))
    }
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
