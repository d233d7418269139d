//! Notifications of a job: a webhook (the job report as a JSON POST), a healthchecks-style
//! ping URL (`<url>/start`, then `<url>` or `<url>/fail`), and a command that reads the
//! report on standard input.
//!
//! Input: the application's [`NotifyConfig`] and the job report. Output: one
//! [`NotificationReport`] per notification sent. A notification that fails is reported (and
//! makes `vault run` exit 1), never retried forever and never allowed to change the job's
//! result: the snapshot it reports on is kept either way.
//!
//! HTTP goes through the reqwest client OpenDAL already brings (rustls on ring), on a
//! one-thread runtime per call; without the `remote` feature an URL notification fails with a
//! message saying so.

use std::time::Duration;

use super::config::{parse_duration, NotifyConfig};
use super::hooks::{run_hook, HookContext};
use super::report::{AppRunReport, NotificationReport, RunResult};

/// Time limit of one request or of the notify command, unless `notify.timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Which ping of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    Start,
    Success,
    Fail,
}

fn timeout(config: &NotifyConfig) -> Duration {
    config
        .timeout
        .as_ref()
        .and_then(|t| parse_duration(t.get_ref()).ok())
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// The URL without its path and query: a ping URL's path is its secret.
pub fn redact(url: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    match url[scheme_end..].find(['/', '?', '#']) {
        Some(i) => format!("{}/…", &url[..scheme_end + i]),
        None => url.to_string(),
    }
}

/// Sends ping `which` of the job to `config.ping`, when there is one.
pub fn ping(config: &NotifyConfig, which: Ping, body: &[u8]) -> Option<NotificationReport> {
    let base = config.ping.as_ref()?.get_ref().trim_end_matches('/');
    let (url, method) = match which {
        Ping::Start => (format!("{base}/start"), "GET"),
        Ping::Success => (base.to_string(), "POST"),
        Ping::Fail => (format!("{base}/fail"), "POST"),
    };
    let body = (method == "POST").then_some(body);
    let outcome = http(method, &url, body, timeout(config));
    let what = match which {
        Ping::Start => "start",
        Ping::Success => "success",
        Ping::Fail => "fail",
    };
    Some(NotificationReport {
        kind: "ping".into(),
        target: redact(&url),
        ok: outcome.is_ok(),
        message: match outcome {
            Ok(status) => format!("{what} ping sent ({method}, HTTP {status})"),
            Err(e) => format!("{what} ping not sent: {e}"),
        },
    })
}

/// Sends the finished job's notifications: the ping (success or fail), the webhook, the
/// command. `report` is the job report without its notifications.
pub fn finished(
    config: &NotifyConfig,
    report: &AppRunReport,
    context: &HookContext,
) -> Vec<NotificationReport> {
    let json = serde_json::to_vec(report).expect("reports serialize");
    let mut sent = Vec::new();
    let which = if report.result == RunResult::Ok {
        Ping::Success
    } else {
        Ping::Fail
    };
    sent.extend(ping(config, which, &json));
    if let Some(url) = &config.webhook {
        let outcome = http("POST", url.get_ref(), Some(&json), timeout(config));
        sent.push(NotificationReport {
            kind: "webhook".into(),
            target: redact(url.get_ref()),
            ok: outcome.is_ok(),
            message: match outcome {
                Ok(status) => format!("job report posted (HTTP {status})"),
                Err(e) => format!("job report not posted: {e}"),
            },
        });
    }
    if let Some(command) = &config.command {
        let outcome = run_hook("notify", command, context, Some(&json), timeout(config));
        sent.push(NotificationReport {
            kind: "command".into(),
            target: command.clone(),
            ok: outcome.is_ok(),
            message: outcome.unwrap_or_else(|e| e),
        });
    }
    sent
}

/// One request; `Ok` with the status code when it is 2xx.
#[cfg(feature = "remote")]
fn http(method: &str, url: &str, body: Option<&[u8]>, timeout: Duration) -> Result<u16, String> {
    static CRYPTO: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    CRYPTO.get_or_init(|| {
        // rustls on ring, as for remote repositories (no second crypto library).
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let shown = redact(url);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the HTTP runtime: {e}"))?;
    // The client and request need the runtime's context (its timers).
    let _context = runtime.enter();
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("vault/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let request = match method {
        "GET" => client.get(url),
        _ => client
            .post(url)
            .header("content-type", "application/json")
            .body(body.unwrap_or_default().to_vec()),
    };
    let response = runtime
        .block_on(async move { request.send().await })
        .map_err(|e| format!("{method} {shown}: {}", one_line(&e)))?;
    let status = response.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err(format!("{method} {shown}: HTTP {status}"))
    }
}

#[cfg(feature = "remote")]
fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text.replace('\n', " ")
}

#[cfg(not(feature = "remote"))]
fn http(method: &str, url: &str, _: Option<&[u8]>, _: Duration) -> Result<u16, String> {
    Err(format!(
        "{method} {}: this vault was built without HTTP support (the `remote` feature)",
        redact(url)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_secret_path() {
        assert_eq!(
            redact("https://hc-ping.com/0f4e-secret/fail"),
            "https://hc-ping.com/…"
        );
        assert_eq!(redact("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }
}
