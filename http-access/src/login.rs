//! Pages log in once with the token and keep a cookie: a browser cannot
//! send a bearer token by itself, and the page's fetches and server-sent
//! stream then carry the cookie.

use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use warp::http::header::{HeaderValue, SET_COOKIE};
use warp::http::{Request, StatusCode, Uri};
use warp::reply::Response;
use warp::Reply;

use crate::access::SESSION_COOKIE;
use crate::body::RequestBody;
use crate::Access;

const PAGE: &str = include_str!("login.html");

/// Most bytes of a login form.
const MAX_FORM_BYTES: usize = 4096;

/// The login form, saying what went wrong if anything did.
pub(crate) fn page(error: Option<&str>) -> Response {
    let (html, status) = match error {
        None => (PAGE.to_string(), StatusCode::OK),
        Some(error) => (
            PAGE.replace("<!--error-->", &format!("<p class=\"error\">{error}</p>")),
            StatusCode::UNAUTHORIZED,
        ),
    };
    warp::reply::with_status(warp::reply::html(html), status).into_response()
}

/// A redirect that a browser follows with a GET.
pub(crate) fn to(path: &'static str) -> Response {
    warp::redirect::see_other(Uri::from_static(path)).into_response()
}

/// `POST /login`: the form's token, checked; right, the cookie and the page.
pub(crate) async fn log_in(request: Request<RequestBody>, access: &Access) -> Response {
    let form = match Limited::new(request.into_body(), MAX_FORM_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => return page(Some("The form could not be read: send it again.")),
    };
    let token = form_urlencoded::parse(&form)
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let Some(session) = access.session().filter(|_| access.is_token(token.trim())) else {
        // Slows guessing down; tokens should be long enough not to need it.
        tokio::time::sleep(Duration::from_secs(1)).await;
        tracing::info!("a login with a wrong token was refused");
        return page(Some("That is not the token this server was started with."));
    };
    let secure = if access.tls().is_some() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
        String::from_utf8_lossy(session)
    );
    with_cookie(to("/"), &cookie)
}

/// `POST /logout`: the cookie forgotten, back to the form.
pub(crate) fn log_out() -> Response {
    with_cookie(
        to("/login"),
        &format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"),
    )
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}
