//! `GET /api/stats?since=24h` or `?from=MS&to=MS`, with `&name=GLOB`: every job name over a
//! period against the period before (`mmm_store::stats::Stats`, the shape of `mmm stats
//! --json`, docs/stats.schema.json), for the dashboard's overview page.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::{ApiError, AppState, blocking};
use mmm_core::job::now_ms;
use mmm_store::stats::{self, Stats, StatsQuery};

/// The longest period asked for in one request: a year.
const MAX_PERIOD_MS: i64 = 366 * 86_400_000;

/// The query of `GET /api/stats`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct StatsParams {
    /// The last DURATION up to now (`24h`, `7d`); 24h when neither it nor `from` is given.
    since: Option<String>,
    /// The period's start, epoch ms.
    from: Option<i64>,
    /// The period's end (excluded), epoch ms; now when not given.
    to: Option<i64>,
    /// Only job names matching this glob.
    name: Option<String>,
}

impl StatsParams {
    /// The store's query as of `now`; what does not parse or makes no period is a bad request.
    fn to_query(&self, now: i64) -> Result<StatsQuery, ApiError> {
        let (from, to) = match (&self.since, self.from) {
            (Some(_), Some(_)) => {
                return Err(ApiError::BadRequest(
                    "give since or from (and to), not both".into(),
                ));
            }
            (_, Some(from)) => (from, self.to.unwrap_or(now)),
            (since, None) => {
                if self.to.is_some() {
                    return Err(ApiError::BadRequest("to needs from".into()));
                }
                let text = since.as_deref().unwrap_or("24h");
                let ago = humantime::parse_duration(text).map_err(|e| {
                    ApiError::BadRequest(format!("since: `{text}` is not a duration ({e})"))
                })?;
                let ago = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
                (now.saturating_sub(ago), now)
            }
        };
        if from >= to {
            return Err(ApiError::BadRequest(format!(
                "the period is empty: from {from} is not before to {to}"
            )));
        }
        if to - from > MAX_PERIOD_MS {
            return Err(ApiError::BadRequest(
                "the period is longer than a year".into(),
            ));
        }
        Ok(StatsQuery {
            from,
            to,
            name_glob: self.name.clone().filter(|n| !n.is_empty()),
        })
    }
}

/// `GET /api/stats`.
pub(super) async fn stats(
    State(state): State<AppState>,
    params: Result<Query<StatsParams>, QueryRejection>,
) -> Result<Json<Stats>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let now = now_ms();
    let query = params.to_query(now)?;
    let store = state.store.clone();
    let computed = blocking(move || Ok(stats::compute(store.as_ref(), &query, now)?)).await?;
    Ok(Json(computed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_since_or_from_to() {
        let since = StatsParams {
            since: Some("1h".into()),
            ..StatsParams::default()
        };
        let q = since.to_query(10_000_000).unwrap();
        assert_eq!((q.from, q.to), (10_000_000 - 3_600_000, 10_000_000));
        let explicit = StatsParams {
            from: Some(5),
            to: Some(9),
            name: Some("n*".into()),
            ..StatsParams::default()
        };
        let q = explicit.to_query(100).unwrap();
        assert_eq!((q.from, q.to, q.name_glob.as_deref()), (5, 9, Some("n*")));
        let backwards = StatsParams {
            from: Some(9),
            to: Some(5),
            ..StatsParams::default()
        };
        assert!(backwards.to_query(100).is_err());
        let both = StatsParams {
            since: Some("1h".into()),
            from: Some(1),
            ..StatsParams::default()
        };
        assert!(both.to_query(100).is_err());
    }
}
