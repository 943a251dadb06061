//! The routes: the page and its files, the JSON API, server-sent updates,
//! health and metrics.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::{Shared, State};
use crate::export::{self, Format};
use crate::pacing;
use crate::range::{self, Read};
use crate::view::{self, Filter as Query, Selection};
use analytics::merge::{Merger, Window};

/// Counts a live stream while it lasts.
struct StreamGuard(Arc<Shared>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

const INDEX: &str = include_str!("../../static/index.html");
const STATIC: [(&str, &str, &str); 4] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../static/style.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("../../static/vendor/uPlot.min.css"),
    ),
];

fn with_shared(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (Arc<Shared>,), Error = Infallible> + Clone {
    warp::any().map(move || shared.clone())
}

fn bad_request(message: String) -> warp::reply::Response {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "error": message })),
        StatusCode::BAD_REQUEST,
    )
    .into_response()
}

/// What answers a filter: from the state, the filter (its named range
/// resolved), and the transform's window size.
type Answer = fn(&State, &Selection, i64) -> Result<serde_json::Value, String>;

/// The merge's "now", which named ranges end at: its newest event time,
/// or the clock before anything is merged.
fn now(merger: &Merger) -> i64 {
    merger.watermark().unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })
}

/// A query's filter, its named range resolved, and the window size.
fn resolve(q: &Query, state: &State) -> Result<(Selection, i64), String> {
    let selection = range::resolve(&q.parse()?, now(&state.merger));
    Ok((selection, state.merger.window_size().unwrap_or(60_000)))
}

/// The windows, or with a bucket each key's rows: what `/api/windows` and
/// exports read.
fn table_rows(state: &State, selection: &Selection, window_ms: i64) -> Result<Vec<Window>, String> {
    let read = match selection.bucket {
        Some(_) => Read::Keys,
        None => Read::Windows,
    };
    range::rows(&state.history, selection, window_ms, read)
}

fn json<T: Serialize>(value: T) -> serde_json::Value {
    serde_json::to_value(value).expect("views serialize")
}

fn windows(
    state: &State,
    selection: &Selection,
    window_ms: i64,
) -> Result<serde_json::Value, String> {
    let rows = table_rows(state, selection, window_ms)?;
    Ok(json(view::windows(&rows, &state.merger, selection)))
}

fn summary(
    state: &State,
    selection: &Selection,
    window_ms: i64,
) -> Result<serde_json::Value, String> {
    let rows = range::rows(&state.history, selection, window_ms, Read::Totals)?;
    let mut summary = json(view::summary(&rows, &state.merger, selection));
    summary["period"] = serde_json::json!({ "from": selection.from_ms, "to": selection.to_ms });
    Ok(summary)
}

fn top(state: &State, selection: &Selection, window_ms: i64) -> Result<serde_json::Value, String> {
    range::top(&state.history, selection, window_ms).map(json)
}

/// `GET /api/<name>?campaign=&channel=&from=&to=&date_preset=&…`, answered
/// by `answer` from the history; a bad filter is a 400 that says why.
/// `/api/summary` with `compare=previous` adds the period before and each
/// figure's change.
fn filtered(
    name: &'static str,
    shared: Arc<Shared>,
    answer: Answer,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    warp::path("api")
        .and(warp::path(name))
        .and(warp::path::end())
        .and(warp::get())
        .and(warp::query::<Query>())
        .and(with_shared(shared))
        .map(move |q: Query, shared: Arc<Shared>| {
            let state = shared.state.read();
            let answered = resolve(&q, &state).and_then(|(selection, window_ms)| {
                let mut json = answer(&state, &selection, window_ms)?;
                if selection.compare {
                    if name != "summary" {
                        return Err("`compare` goes with /api/summary".into());
                    }
                    let before = match range::previous(&selection, window_ms) {
                        Some(previous) => answer(&state, &previous, window_ms)?,
                        None => serde_json::Value::Null,
                    };
                    json["change"] = range::change(&json, &before);
                    json["previous"] = before;
                }
                Ok(json)
            });
            match answered {
                Ok(json) => warp::reply::json(&json).into_response(),
                Err(e) => bad_request(e),
            }
        })
}

/// Every route of the service.
pub fn routes(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let index = warp::path::end()
        .and(warp::get())
        .map(|| warp::reply::html(INDEX));
    let assets =
        warp::path!("static" / String)
            .and(warp::get())
            .and_then(|name: String| async move {
                match STATIC.iter().find(|(n, ..)| *n == name) {
                    Some(&(_, kind, body)) => {
                        Ok(warp::reply::with_header(body, "content-type", kind))
                    }
                    None => Err(warp::reject::not_found()),
                }
            });
    let windows = filtered("windows", shared.clone(), windows);
    let summary = filtered("summary", shared.clone(), summary);
    let top = filtered("top", shared.clone(), top);
    let export = warp::path!("api" / "export")
        .and(warp::get())
        .and(warp::query::<Query>())
        .and(with_shared(shared.clone()))
        .map(|q: Query, shared: Arc<Shared>| {
            let state = shared.state.read();
            let read =
                Format::parse(q.format.as_deref().filter(|f| !f.is_empty())).and_then(|format| {
                    let (selection, window_ms) = resolve(&q, &state)?;
                    let rows = table_rows(&state, &selection, window_ms)?;
                    Ok((format, selection, rows))
                });
            let (format, selection, rows) = match read {
                Ok(read) => read,
                Err(e) => return bad_request(e),
            };
            let table = view::table(&rows, &state.merger, &selection, true);
            drop(state);
            match export::write(format, &table) {
                Ok(bytes) => warp::http::Response::builder()
                    .header("content-type", format.content_type())
                    .header(
                        "content-disposition",
                        format!("attachment; filename=\"windows.{}\"", format.extension()),
                    )
                    .body(bytes.into())
                    .expect("a valid response"),
                Err(e) => warp::reply::with_status(
                    format!("writing the export: {e:#}"),
                    StatusCode::INTERNAL_SERVER_ERROR,
                )
                .into_response(),
            }
        });
    let pacing = warp::path!("api" / "pacing")
        .and(warp::get())
        .and(with_shared(shared.clone()))
        .map(|shared: Arc<Shared>| {
            let state = shared.state.read();
            let tz = &shared.settings.thresholds.pacing_tz;
            warp::reply::json(&pacing::pacing(&state.merger, &state.history, tz))
        });
    let alerts = warp::path!("api" / "alerts")
        .and(warp::get())
        .and(with_shared(shared.clone()))
        .map(|shared: Arc<Shared>| {
            let state = shared.state.read();
            warp::reply::json(&state.alerts.active().collect::<Vec<_>>())
        });
    let status = warp::path!("api" / "status")
        .and(warp::get())
        .and(with_shared(shared.clone()))
        .map(|shared: Arc<Shared>| {
            let state = shared.state.read();
            warp::reply::json(&state.source)
        });
    let updates = warp::path!("api" / "updates")
        .and(warp::get())
        .and(with_shared(shared.clone()))
        .map(|shared: Arc<Shared>| {
            let open = shared.streams.fetch_add(1, Ordering::Relaxed);
            let guard = StreamGuard(shared.clone());
            if open >= shared.settings.max_streams {
                return warp::reply::with_status(
                    "too many live pages; try again later",
                    StatusCode::SERVICE_UNAVAILABLE,
                )
                .into_response();
            }
            // Subscribed before the state is read: no change falls between.
            let updates = shared.updates.subscribe();
            let hello = {
                let state = shared.state.read();
                serde_json::to_string(&state.source).expect("state serializes")
            };
            let first = futures_util::stream::once(async move {
                Ok::<_, Infallible>(warp::sse::Event::default().event("hello").data(hello))
            });
            let rest = BroadcastStream::new(updates).map(move |m| {
                let _alive = &guard;
                Ok::<_, Infallible>(match m {
                    Ok(json) => warp::sse::Event::default().event("update").data(&*json),
                    // Too slow to keep up: the page reloads the windows.
                    Err(BroadcastStreamRecvError::Lagged(_)) => {
                        warp::sse::Event::default().event("resync").data("{}")
                    }
                })
            });
            warp::sse::reply(
                warp::sse::keep_alive()
                    .interval(Duration::from_secs(10))
                    .stream(first.chain(rest)),
            )
            .into_response()
        });
    let health = warp::path!("healthz").and(warp::get()).map(|| "ok\n");
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_shared(shared))
        .map(|shared: Arc<Shared>| {
            warp::reply::with_header(
                shared.metrics(),
                "content-type",
                super::metrics::CONTENT_TYPE,
            )
        });
    index
        .or(assets)
        .or(windows)
        .or(summary)
        .or(top)
        .or(export)
        .or(pacing)
        .or(alerts)
        .or(status)
        .or(updates)
        .or(health)
        .or(metrics)
}
