//! SDK metrics: evaluations and errors per flag and variant, sent in batches by SDKs and read by the guard and the panel.
//!
//! `POST /api/feature-flags/metrics` with an SDK key, format version 1 (docs/api.md):
//! `{"flags": {"<flag>": {"variants": {"<variant>": {"evaluations": N, "errors": N}}}}}` — a boolean flag's variants are
//! `"true"` and `"false"`. Counts are added to the current minute's bucket in the store, so every server adds to the same
//! totals. Unknown flags are ignored and named in the answer; malformed batches are refused whole.
//!
//! Metrics steer the guard, so what one key can report is bounded: only labels the flag can serve (a label nobody
//! is served cannot exist), errors never above evaluations, at most `metrics_key_evaluations_per_minute` evaluations
//! per key and minute of arrival (per server), and filed at most `metrics_max_backdate_minutes` back.
//!
//! A client-side key is public, so under one its counts are a vote per network: each network (an IPv4 address, an
//! IPv6 /64) counts at most a share (`guard_min_evaluations / guard_client_networks`) per flag, variant and hour, its
//! errors scaled with what is counted so its error rate is kept ([`NetworkShares`]). A decision on browser counts
//! alone then takes at least `guard_client_networks` networks, and nobody with the key can outvote many real visitors.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vexil_store::MetricCount;

use crate::auth::{Actor, Principal, authenticate, credential, query_credential};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::service::AppState;

/// The most a batch may count for one variant, in either field.
const MAX_COUNT: u64 = 1_000_000_000;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(read)).routes(routes!(guard_report))
}

/// Where SDKs send their counts: browsers too (client-side keys), so it answers CORS preflights.
pub(super) fn receiver() -> OpenApiRouter<AppState> {
    let (schemas, paths, receive) = routes!(receive);
    OpenApiRouter::new().routes((schemas, paths, receive.options(super::options)))
}

/// A batch of counts from an SDK (format version 1).
#[derive(Debug, Deserialize, ToSchema)]
struct Batch {
    /// By flag name.
    flags: BTreeMap<String, FlagCounts>,
    /// When the counted evaluations began (RFC 3339): the counts are filed in that minute. Optional; a batch held back
    /// by an outage keeps its time this way. At most an hour in the past, not in the future.
    start: Option<String>,
}

/// Evaluations each SDK key reported in the current minute of arrival, on this server.
#[derive(Debug, Default)]
pub struct KeyBudget(std::sync::Mutex<std::collections::HashMap<String, (u64, u64)>>);

impl KeyBudget {
    /// Takes `amount` from `key`'s budget for `minute`; `Err` with what is already used when it does not fit.
    fn take(&self, key: &str, minute: u64, amount: u64, limit: u64) -> Result<(), u64> {
        let mut entries = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= 100_000 {
            entries.retain(|_, (at, _)| *at == minute);
        }
        let entry = entries.entry(key.to_owned()).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        if entry.1.saturating_add(amount) > limit {
            return Err(entry.1);
        }
        entry.1 += amount;
        Ok(())
    }

    /// Returns what a batch took when the store did not take it.
    fn give_back(&self, key: &str, minute: u64, amount: u64) {
        let mut entries = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(entry) = entries.get_mut(key).filter(|entry| entry.0 == minute) {
            entry.1 = entry.1.saturating_sub(amount);
        }
    }
}

/// What each client network counted this hour under client-side keys, per key, environment, flag and variant
/// (on this server): [`NetworkShares::take`] counts at most the share and says how much of a report fits.
///
/// Entries are 64-bit digests under a key chosen at start, so nobody can make two places collide. At most
/// [`NetworkShares::ENTRIES`] are kept; when a flood of networks fills them within an hour, further networks count
/// nothing until the next hour (the guard waits for evidence rather than counting votes it cannot bound).
#[derive(Debug)]
pub struct NetworkShares {
    entries: std::sync::Mutex<std::collections::HashMap<u64, (u64, u64)>>,
    hasher: std::hash::RandomState,
    capacity: usize,
}

impl Default for NetworkShares {
    fn default() -> Self {
        Self::with_capacity(Self::ENTRIES)
    }
}

impl NetworkShares {
    /// The most places kept (about 40 MB).
    pub const ENTRIES: usize = 1_000_000;

    /// Shares that keep at most `capacity` places.
    fn with_capacity(capacity: usize) -> Self {
        Self { entries: Default::default(), hasher: Default::default(), capacity }
    }

    /// The place of one network's counts of `variant` of `flag`.
    fn place(&self, key: &str, network: &str, environment: &str, flag: &str, variant: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, (key, network, environment, flag, variant))
    }

    /// Takes up to `wanted` of `place`'s `share` for `hour`: how many are counted.
    fn take(&self, place: u64, hour: u64, wanted: u64, share: u64) -> u64 {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&place) {
            entries.retain(|_, (at, _)| *at == hour);
            if entries.len() >= self.capacity {
                return 0;
            }
        }
        let entry = entries.entry(place).or_insert((hour, 0));
        if entry.0 != hour {
            *entry = (hour, 0);
        }
        let counted = wanted.min(share.saturating_sub(entry.1));
        entry.1 += counted;
        counted
    }

    /// Returns what [`take`](Self::take) counted when the store did not take it.
    fn give_back(&self, place: u64, hour: u64, amount: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(entry) = entries.get_mut(&place).filter(|entry| entry.0 == hour) {
            entry.1 = entry.1.saturating_sub(amount);
        }
    }
}

/// The network an address belongs to, for [`NetworkShares`]: an IPv4 address itself (one home, one office behind
/// its NAT), an IPv6 address's /64 (what one subscriber is given).
fn network_of(address: std::net::IpAddr) -> String {
    match address {
        std::net::IpAddr::V4(address) => address.to_string(),
        std::net::IpAddr::V6(address) => match address.to_ipv4_mapped() {
            Some(address) => address.to_string(),
            None => {
                let segments = address.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", segments[0], segments[1], segments[2], segments[3])
            }
        },
    }
}

/// `errors` of `evaluations` scaled to `counted` of them (rounded to the nearest, never above `counted`), so a share
/// keeps the error rate it was cut from.
fn scaled_errors(errors: u64, evaluations: u64, counted: u64) -> u64 {
    if evaluations == 0 {
        return 0;
    }
    let scaled = (u128::from(errors) * u128::from(counted) * 2 + u128::from(evaluations)) / (u128::from(evaluations) * 2);
    (scaled as u64).min(counted)
}

/// The labels a flag can ever be counted under: its variants, and `true`/`false` for a boolean or the label of
/// values that are no variant for other types.
fn servable_labels(definition: &vexil_core::FlagDefinition) -> Vec<String> {
    let mut labels: Vec<String> = definition.variants.iter().map(|variant| variant.name.clone()).collect();
    match definition.flag_type {
        vexil_core::FlagType::Boolean => labels.extend(["true".to_owned(), "false".to_owned()]),
        _ => labels.push(vexil_core::evaluation::UNNAMED_LABEL.to_owned()),
    }
    labels
}

/// One flag's counts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct FlagCounts {
    /// By variant served (`"true"` and `"false"` for a boolean flag); only labels the flag can serve.
    variants: BTreeMap<String, VariantCounts>,
}

/// Evaluations that served a variant, and errors the application attributed to it (never more).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct VariantCounts {
    #[serde(default)]
    evaluations: u64,
    #[serde(default)]
    errors: u64,
}

/// The minute bucket now.
pub(crate) fn current_bucket() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|elapsed| elapsed.as_secs() / 60).unwrap_or(0)
}

/// What a batch of metrics was counted as.
#[derive(Debug, Serialize, ToSchema)]
struct MetricsAccepted {
    /// The SDK key's environment.
    environment: String,
    /// Variants counted.
    accepted: usize,
    /// Flags not defined here, ignored.
    ignored: Vec<String>,
    /// Under a client-side key: `flag/variant` whose counts were cut to this network's share of the hour
    /// (`guard_client_networks`); the rest was not counted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    capped: Vec<String>,
}

/// Send evaluation and error counts, with an SDK key: they feed the guard.
#[utoipa::path(post, path = "/api/feature-flags/metrics", tag = "metrics", security(("sdk_key" = [])), request_body = Batch,
    responses((status = ACCEPTED, body = MetricsAccepted)))]
async fn receive(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    ApiJson(batch): ApiJson<Batch>,
) -> ApiResult<(StatusCode, Json<MetricsAccepted>)> {
    // A page's last counts go with `sendBeacon`, which cannot send headers: a client-side key, which is public
    // anyway, may come in the URL; a server-side key is a secret and is never taken from one (it would be logged).
    let in_query = credential(&parts).is_none();
    let token = credential(&parts)
        .or_else(|| query_credential(&parts).map(str::to_owned))
        .ok_or_else(|| ApiError::unauthenticated("metrics need an SDK key (Authorization: Bearer vxs_…)"))?;
    let (key_id, environment, client) = match authenticate(&state, &token, vexil_core::Source::Api).await? {
        Some(Principal::Sdk { client: false, .. }) if in_query => {
            return Err(ApiError::unauthenticated(
                "a server-side SDK key is a secret and is not read from the URL (it would end up in logs): send it as Authorization: Bearer vxs_…",
            ));
        }
        Some(principal @ Principal::Sdk { .. }) => {
            principal.may_serve_origin(&parts.headers)?;
            let Principal::Sdk { token_id, environment, client, .. } = principal else { unreachable!("matched above") };
            (token_id, environment, client)
        }
        Some(Principal::User(_)) => {
            return Err(ApiError::forbidden("metrics are sent with an SDK key, which says which environment they come from"));
        }
        None => return Err(ApiError::unauthenticated("the SDK key is unknown or revoked")),
    };
    let bucket = match &batch.start {
        None => current_bucket(),
        Some(start) => {
            let start = time::OffsetDateTime::parse(start, &time::format_description::well_known::Rfc3339).map_err(|_| {
                ApiError::bad_request(format!(
                    "start `{}` is not an RFC 3339 time such as 2026-11-24T10:30:00Z",
                    vexil_core::name::printable(start)
                ))
            })?;
            let bucket = start.unix_timestamp().max(0) as u64 / 60;
            let now = current_bucket();
            let oldest = state.config.metrics_max_backdate_minutes;
            if bucket > now.saturating_add(1) || bucket.saturating_add(oldest) < now {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_value",
                    format!("start must lie within the last {oldest} minutes (metrics_max_backdate_minutes), not in the future"),
                ));
            }
            bucket.min(now)
        }
    };
    let mut counts = Vec::new();
    let mut ignored = Vec::new();
    let mut unservable = Vec::new();
    let mut capped = Vec::new();
    for (flag, flag_counts) in batch.flags {
        let Some(definition) = vexil_core::FlagName::parse(&flag).ok().and_then(|name| state.catalog.definition(&name)) else {
            ignored.push(vexil_core::name::printable(&flag));
            continue;
        };
        let labels = servable_labels(&definition);
        for (variant, variant_counts) in flag_counts.variants {
            if !labels.contains(&variant) {
                unservable.push(format!("`{}` of {flag} (it can serve: {})", vexil_core::name::printable(&variant), labels.join(", ")));
                continue;
            }
            if variant_counts.errors > variant_counts.evaluations {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_value",
                    format!(
                        "{flag}/{variant} reports {} errors in {} evaluations; errors are evaluations that failed, so never more",
                        variant_counts.errors, variant_counts.evaluations
                    ),
                ));
            }
            let label_ok = !variant.is_empty() && variant.chars().count() <= 64 && !variant.chars().any(char::is_control);
            if !label_ok {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_value",
                    format!(
                        "variant `{}` of {flag} is invalid; variants are 1 to 64 printable characters",
                        vexil_core::name::printable(&variant)
                    ),
                ));
            }
            if variant_counts.evaluations > MAX_COUNT || variant_counts.errors > MAX_COUNT {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_value",
                    format!("counts of {flag}/{variant} exceed {MAX_COUNT} in one batch"),
                ));
            }
            if variant_counts.evaluations > 0 || variant_counts.errors > 0 {
                counts.push(MetricCount {
                    flag: flag.clone(),
                    variant,
                    evaluations: variant_counts.evaluations,
                    errors: variant_counts.errors,
                });
            }
        }
    }
    if !unservable.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
            format!("these variants are not ones the flags can serve: {}; nothing was counted", unservable.join("; ")),
        ));
    }
    if !counts.is_empty() {
        let total = counts.iter().fold(0u64, |total, count| total.saturating_add(count.evaluations));
        let (minute, limit) = (current_bucket(), state.config.metrics_key_evaluations_per_minute);
        // A client-side key is in every page that uses it: what one address may add under it is bounded too, so
        // nobody holding it can drown the pages' real counts (and with them a regression) from one place.
        let address = client.then(|| {
            let connected = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|info| info.0.ip());
            let connected = connected.unwrap_or(std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST));
            super::users::address_behind_proxies(&state, connected, &parts.headers)
        });
        let place = address.map(|address| format!("{key_id}@{address}"));
        if let Some(place) = &place {
            let per_address = state.config.metrics_client_evaluations_per_minute;
            if let Err(used) = state.metrics_budget.take(place, minute, total, per_address) {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!(
                        "this client-side key reported {used} evaluations from your address this minute and the batch adds {total}; at most {per_address} per client-side key, address and minute are counted (metrics_client_evaluations_per_minute); nothing was counted, send it again next minute"
                    ),
                ));
            }
        }
        let give_back_place = || {
            if let Some(place) = &place {
                state.metrics_budget.give_back(place, minute, total);
            }
        };
        if let Err(used) = state.metrics_budget.take(&key_id, minute, total, limit) {
            give_back_place();
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "this SDK key reported {used} evaluations this minute and the batch adds {total}; at most {limit} per key and minute are counted (metrics_key_evaluations_per_minute); nothing was counted, send it again next minute"
                ),
            ));
        }
        // Under a client-side key each network counts at most its share of the hour.
        let share = address.and_then(|address| state.config.client_network_share().map(|share| (network_of(address), share)));
        let hour = minute / 60;
        let mut taken = Vec::new();
        if let Some((network, share)) = &share {
            for count in &mut counts {
                let place = state.network_shares.place(&key_id, network, environment.as_str(), &count.flag, &count.variant);
                let counted = state.network_shares.take(place, hour, count.evaluations, *share);
                if counted < count.evaluations {
                    capped.push(format!("{}/{}", count.flag, count.variant));
                    count.errors = scaled_errors(count.errors, count.evaluations, counted);
                    count.evaluations = counted;
                }
                taken.push((place, counted));
            }
            counts.retain(|count| count.evaluations > 0);
        }
        let filed = if counts.is_empty() { Ok(()) } else { state.store.add_metrics(&environment, bucket, &counts).await };
        if let Err(error) = filed {
            state.metrics_budget.give_back(&key_id, minute, total);
            give_back_place();
            for (place, counted) in taken {
                state.network_shares.give_back(place, hour, counted);
            }
            return Err(error.into());
        }
    }
    Ok((StatusCode::ACCEPTED, Json(MetricsAccepted { environment: environment.to_string(), accepted: counts.len(), ignored, capped })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Window {
    /// How far back: an age (`30m`, `2h`) or a time; 1 hour by default, a day at most.
    since: Option<String>,
}

/// A flag's counts in an environment, minute by minute.
#[derive(Debug, Serialize, ToSchema)]
struct MetricsReport {
    flag: vexil_core::FlagName,
    environment: String,
    /// Each minute and variant with counts, oldest first.
    buckets: Vec<MetricsBucket>,
    /// The window's totals by variant.
    totals: BTreeMap<String, VariantTotal>,
}

/// One minute's counts of one variant.
#[derive(Debug, Serialize, ToSchema)]
struct MetricsBucket {
    /// The minute (RFC 3339 UTC).
    at: String,
    variant: String,
    evaluations: u64,
    errors: u64,
}

/// A variant's totals.
#[derive(Debug, Serialize, ToSchema)]
struct VariantTotal {
    evaluations: u64,
    errors: u64,
    /// errors / evaluations (0 without evaluations).
    error_rate: f64,
}

/// The evaluation and error counts SDKs reported for a flag in an environment.
#[utoipa::path(get, path = "/api/flags/{flag}/environments/{environment}/metrics", tag = "metrics",
    params(("flag" = String, Path, description = super::flags::FLAG), ("environment" = String, Path, description = super::states::ENVIRONMENT), Window),
    responses((status = OK, body = MetricsReport)))]
async fn read(
    State(state): State<AppState>,
    _actor: Actor,
    ApiPath((flag, environment)): ApiPath<(String, String)>,
    ApiQuery(window): ApiQuery<Window>,
) -> ApiResult<Json<MetricsReport>> {
    let definition = state.definition(&flag)?;
    let environment = state.environment(&environment)?;
    let since = crate::time::parse_moment(window.since.as_deref().unwrap_or("1h")).map_err(ApiError::bad_request)?;
    let since = time::OffsetDateTime::parse(&since, &time::format_description::well_known::Rfc3339).map_err(ApiError::internal)?;
    let since_bucket = (since.unix_timestamp().max(0) as u64 / 60).max(current_bucket().saturating_sub(24 * 60));
    let rows = state.store.metrics(&environment.key, definition.name.as_str(), since_bucket).await?;
    let mut totals: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for row in &rows {
        let total = totals.entry(row.variant.clone()).or_default();
        total.0 = total.0.saturating_add(row.evaluations);
        total.1 = total.1.saturating_add(row.errors);
    }
    let buckets = rows
        .iter()
        .map(|row| MetricsBucket {
            at: time::OffsetDateTime::from_unix_timestamp(row.bucket as i64 * 60).map(crate::time::format).unwrap_or_default(),
            variant: row.variant.clone(),
            evaluations: row.evaluations,
            errors: row.errors,
        })
        .collect();
    let totals = totals
        .into_iter()
        .map(|(variant, (evaluations, errors))| {
            let error_rate = if evaluations == 0 { 0.0 } else { errors as f64 / evaluations as f64 };
            (variant, VariantTotal { evaluations, errors, error_rate })
        })
        .collect();
    Ok(Json(MetricsReport { flag: definition.name, environment: environment.key.to_string(), buckets, totals }))
}

/// What the guard last saw of a flag in an environment.
#[derive(Debug, Serialize, ToSchema)]
struct GuardAnswer {
    flag: vexil_core::FlagName,
    environment: String,
    /// Whether the guard watches it now (a running plan, or a change in a protected environment within the window).
    watched: bool,
    /// How the guard judges.
    settings: GuardSettings,
    /// The last look, when watched.
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<crate::guard::Report>,
}

/// The guard's settings on this server.
#[derive(Debug, Serialize, ToSchema)]
struct GuardSettings {
    /// Seconds between looks.
    check_seconds: u64,
    /// How long a change in this environment is watched (0: only plans are).
    window_seconds: u64,
    /// The evaluations each arm needs before it is judged.
    min_evaluations: u64,
    /// The smallest rise of the error rate that counts as a regression.
    min_increase: f64,
    /// The chance of a false alarm the test allows.
    false_positive_budget: f64,
    /// Whether a rollout's next step waits for the guard's evidence that the current one is healthy
    /// (`rollout_without_evidence = "hold"`, the default) rather than going on schedule.
    steps_wait_for_evidence: bool,
}

/// What the guard last saw of a flag in an environment: whether it is watched, on what basis, and each comparison.
#[utoipa::path(get, path = "/api/flags/{flag}/environments/{environment}/guard", tag = "metrics",
    params(("flag" = String, Path, description = super::flags::FLAG), ("environment" = String, Path, description = super::states::ENVIRONMENT)),
    responses((status = OK, body = GuardAnswer)))]
async fn guard_report(
    State(state): State<AppState>,
    _actor: Actor,
    ApiPath((flag, environment)): ApiPath<(String, String)>,
) -> ApiResult<Json<GuardAnswer>> {
    let definition = state.definition(&flag)?;
    let environment = state.environment(&environment)?;
    let settings = GuardSettings {
        check_seconds: state.config.guard_interval.as_secs(),
        window_seconds: if environment.protected { state.config.guard_window.as_secs() } else { 0 },
        min_evaluations: state.config.guard.min_evaluations,
        min_increase: state.config.guard.min_increase,
        false_positive_budget: state.config.guard.false_positive_budget,
        steps_wait_for_evidence: state.config.rollout_holds_without_evidence,
    };
    let report = state.guard.report(&environment.key, &definition.name);
    Ok(Json(GuardAnswer { flag: definition.name, environment: environment.key.to_string(), watched: report.is_some(), settings, report }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_is_an_ipv4_address_or_an_ipv6_slash_64() {
        assert_eq!(network_of("203.0.113.8".parse().unwrap()), "203.0.113.8");
        assert_eq!(network_of("::ffff:203.0.113.8".parse().unwrap()), "203.0.113.8");
        let one = network_of("2001:db8:1:2:aaaa::1".parse().unwrap());
        assert_eq!(one, network_of("2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap()));
        assert_ne!(one, network_of("2001:db8:1:3::1".parse().unwrap()));
    }

    #[test]
    fn a_share_counts_up_to_its_size_per_hour_and_keeps_the_error_rate() {
        let shares = NetworkShares::default();
        let place = shares.place("key", "203.0.113.8", "prod", "ui.x", "true");
        assert_ne!(place, shares.place("key", "203.0.113.9", "prod", "ui.x", "true"));
        assert_eq!(shares.take(place, 7, 20, 25), 20);
        assert_eq!(shares.take(place, 7, 20, 25), 5, "only what is left of the hour's share");
        assert_eq!(shares.take(place, 7, 20, 25), 0);
        shares.give_back(place, 7, 5);
        assert_eq!(shares.take(place, 7, 20, 25), 5, "what the store did not take is counted again");
        assert_eq!(shares.take(place, 8, 20, 25), 20, "a new hour, a new share");
        assert_eq!(scaled_errors(500, 1000, 25), 13);
        assert_eq!(scaled_errors(1000, 1000, 25), 25);
        assert_eq!(scaled_errors(0, 1000, 25), 0);
        assert_eq!(scaled_errors(1, 1000, 25), 0);
        assert_eq!(scaled_errors(3, 0, 0), 0);
    }

    #[test]
    fn a_flood_of_networks_fills_the_places_and_further_ones_count_nothing_until_the_next_hour() {
        let shares = NetworkShares::with_capacity(3);
        let places: Vec<u64> = (0..5).map(|index| shares.place("key", &format!("198.51.100.{index}"), "prod", "ui.x", "true")).collect();
        for place in &places[..3] {
            assert_eq!(shares.take(*place, 7, 10, 25), 10);
        }
        assert_eq!(shares.take(places[3], 7, 10, 25), 0, "full this hour: a new network is not counted");
        assert_eq!(shares.take(places[0], 7, 10, 25), 10, "a network already kept still has its share");
        assert_eq!(shares.take(places[4], 8, 10, 25), 10, "a new hour makes room");
    }
}
