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

use super::Shared;
use crate::view::{self, Filter as Query, Selection};
use crate::{pacing, range};
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

/// What answers a filter: the rows read for it, the hot windows (which
/// say what is final), and the filter.
type Answer<T> = fn(&[Window], &Merger, &Selection) -> T;

/// `GET /api/<name>?campaign=&channel=&from=&to=&…`, answered by `answer`
/// over the rows of the history that the filter reads (with `listing`,
/// the windows themselves); a bad filter is a 400 that says why.
fn filtered<T: Serialize>(
    name: &'static str,
    shared: Arc<Shared>,
    listing: bool,
    answer: Answer<T>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    warp::path("api")
        .and(warp::path(name))
        .and(warp::path::end())
        .and(warp::get())
        .and(warp::query::<Query>())
        .and(with_shared(shared))
        .map(move |q: Query, shared: Arc<Shared>| {
            let state = shared.state.read();
            let listing = listing && q.bucket.as_deref().is_none_or(str::is_empty);
            let rows = q.parse().and_then(|selection| {
                let window_ms = state.merger.window_size().unwrap_or(60_000);
                let rows = range::rows(&state.history, &selection, window_ms, listing)?;
                Ok((rows, selection))
            });
            match rows {
                Ok((rows, selection)) => {
                    warp::reply::json(&answer(&rows, &state.merger, &selection)).into_response()
                }
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
    let windows = filtered("windows", shared.clone(), true, view::windows);
    let summary = filtered("summary", shared.clone(), false, view::summary);
    let top = filtered("top", shared.clone(), false, |rows, merger, selection| {
        view::top(rows, merger, selection)
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
            let hello = {
                let state = shared.state.read();
                serde_json::to_string(&state.source).expect("state serializes")
            };
            let first = futures_util::stream::once(async move {
                Ok::<_, Infallible>(warp::sse::Event::default().event("hello").data(hello))
            });
            let rest = BroadcastStream::new(shared.updates.subscribe()).map(move |m| {
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
        .or(pacing)
        .or(alerts)
        .or(status)
        .or(updates)
        .or(health)
        .or(metrics)
}
