//! The token check in front of every route (HTTP and WebSocket upgrades alike).

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

/// Lets a request through when no token is configured or it carries the right one, as
/// `Authorization: Bearer TOKEN` or a `token` query parameter (or it is for one of the page's
/// static assets); 401 otherwise.
pub(super) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.token.as_deref() else {
        return next.run(request).await;
    };
    // The page's script and style sheet are the same for everyone and hold no data; the page
    // loads them by plain URLs, which carry no token (the page itself and everything it asks
    // for afterwards do).
    if request.method() == axum::http::Method::GET && request.uri().path().starts_with("/assets/") {
        return next.run(request).await;
    }
    let from_header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let from_query = request.uri().query().and_then(query_token);
    let ok = from_header.is_some_and(|t| same(t, expected))
        || from_query.is_some_and(|t| same(&t, expected));
    if ok {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// The `token` parameter of a query string, percent-decoded.
fn query_token(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let value = pair.strip_prefix("token=")?;
        Some(percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Compares in time independent of where the first difference is.
fn same(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, &x) in b.iter().enumerate() {
        diff |= usize::from(x ^ a.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(same("abc", "abc"));
        assert!(!same("abd", "abc"));
        assert!(!same("ab", "abc"));
        assert!(!same("abcd", "abc"));
        assert!(!same("", "abc"));
    }

    #[test]
    fn the_query_token_is_decoded() {
        assert_eq!(query_token("a=1&token=x%2By").as_deref(), Some("x+y"));
        assert_eq!(query_token("token=ab%"), Some("ab%".into()));
        assert_eq!(query_token("tokens=1"), None);
    }
}
