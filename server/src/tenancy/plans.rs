//! The price list's limits: monthly call quota, request rate and burst, webhook endpoints, and
//! what happens past the quota (Free stops; paid plans are counted as overage). A custom deal
//! (`updateTenantPlan(overrides)`) replaces any of them for one tenant.

use serde::{Deserialize, Serialize};

/// What one tenant may do, its plan's defaults with its overrides applied.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub plan: String,
    /// Calls per calendar month (UTC); `None`: no quota (an Enterprise deal without one).
    pub call_limit: Option<u64>,
    /// The token bucket's refill rate, in request units per second.
    pub requests_per_second: f64,
    /// The bucket's size: how many units a burst may spend at once.
    pub burst: u64,
    pub webhook_endpoints: u64,
    /// Past the quota: `true` counts calls as overage, `false` refuses them (`QUOTA_EXCEEDED`).
    pub overage: bool,
}

struct PlanRow {
    name: &'static str,
    call_limit: Option<u64>,
    requests_per_second: f64,
    burst: u64,
    webhook_endpoints: u64,
    overage: bool,
}

/// Free 10k, Developer 100k, Startup 500k, Growth 2M, Scale 10M calls a month, Enterprise
/// custom (no quota unless the deal sets one). Rates grow with the plan; a burst is ten
/// seconds' worth.
const PLANS: [PlanRow; 6] = [
    PlanRow {
        name: "free",
        call_limit: Some(10_000),
        requests_per_second: 10.0,
        burst: 100,
        webhook_endpoints: 2,
        overage: false,
    },
    PlanRow {
        name: "developer",
        call_limit: Some(100_000),
        requests_per_second: 25.0,
        burst: 250,
        webhook_endpoints: 10,
        overage: true,
    },
    PlanRow {
        name: "startup",
        call_limit: Some(500_000),
        requests_per_second: 50.0,
        burst: 500,
        webhook_endpoints: 25,
        overage: true,
    },
    PlanRow {
        name: "growth",
        call_limit: Some(2_000_000),
        requests_per_second: 100.0,
        burst: 1_000,
        webhook_endpoints: 50,
        overage: true,
    },
    PlanRow {
        name: "scale",
        call_limit: Some(10_000_000),
        requests_per_second: 250.0,
        burst: 2_500,
        webhook_endpoints: 100,
        overage: true,
    },
    PlanRow {
        name: "enterprise",
        call_limit: None,
        requests_per_second: 1_000.0,
        burst: 10_000,
        webhook_endpoints: 500,
        overage: true,
    },
];

/// A custom deal: any limit of the plan, replaced. Unknown keys are refused, so a typo in a
/// deal never silently leaves the plan's default in force.
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Overrides {
    /// A number, or null for no quota.
    #[serde(default, deserialize_with = "some_or_null")]
    pub call_limit: Option<Option<u64>>,
    pub requests_per_second: Option<f64>,
    pub burst: Option<u64>,
    pub webhook_endpoints: Option<u64>,
    pub overage: Option<bool>,
}

fn some_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

impl Overrides {
    /// Reads and checks an overrides object; the error says what is wrong.
    pub fn parse(value: &serde_json::Value) -> Result<Self, String> {
        let overrides: Overrides = serde_json::from_value(value.clone()).map_err(|e| {
            format!(
                "{e}; overrides take callLimit (calls a month, or null for none), requestsPerSecond, burst, webhookEndpoints and overage (true or false)"
            )
        })?;
        if let Some(rate) = overrides.requests_per_second
            && !(rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0)
        {
            return Err("requestsPerSecond must be above 0 and at most 1000000".into());
        }
        if let Some(burst) = overrides.burst
            && !(1..=10_000_000).contains(&burst)
        {
            return Err("burst must be 1 to 10000000".into());
        }
        Ok(overrides)
    }
}

/// The limits of a plan with a tenant's overrides (as stored: a JSON object's text).
pub fn limits(plan: &str, overrides: Option<&str>) -> Limits {
    let row = PLANS.iter().find(|p| p.name == plan).unwrap_or(&PLANS[0]);
    let mut limits = Limits {
        plan: row.name.to_owned(),
        call_limit: row.call_limit,
        requests_per_second: row.requests_per_second,
        burst: row.burst,
        webhook_endpoints: row.webhook_endpoints,
        overage: row.overage,
    };
    let overrides = overrides
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .and_then(|value| Overrides::parse(&value).ok())
        .unwrap_or_default();
    if let Some(call_limit) = overrides.call_limit {
        limits.call_limit = call_limit;
    }
    if let Some(rate) = overrides.requests_per_second {
        limits.requests_per_second = rate;
    }
    if let Some(burst) = overrides.burst {
        limits.burst = burst;
    }
    if let Some(endpoints) = overrides.webhook_endpoints {
        limits.webhook_endpoints = endpoints;
    }
    if let Some(overage) = overrides.overage {
        limits.overage = overage;
    }
    limits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_the_price_list() {
        let quotas: Vec<_> = super::super::PLANS
            .iter()
            .map(|p| limits(p, None).call_limit)
            .collect();
        assert_eq!(
            quotas,
            [
                Some(10_000),
                Some(100_000),
                Some(500_000),
                Some(2_000_000),
                Some(10_000_000),
                None
            ]
        );
        let free = limits("free", None);
        assert_eq!(free.webhook_endpoints, 2);
        assert!(!free.overage);
        assert!(limits("developer", None).overage);
    }

    #[test]
    fn overrides_replace_what_they_name() {
        let deal = limits(
            "enterprise",
            Some(r#"{"callLimit": 5000000, "requestsPerSecond": 40}"#),
        );
        assert_eq!(deal.call_limit, Some(5_000_000));
        assert_eq!(deal.requests_per_second, 40.0);
        assert_eq!(deal.burst, 10_000);
        let unlimited = limits("growth", Some(r#"{"callLimit": null}"#));
        assert_eq!(unlimited.call_limit, None);
    }

    #[test]
    fn bad_overrides_are_refused_with_a_reason() {
        let typo = Overrides::parse(&serde_json::json!({"callLimt": 5})).unwrap_err();
        assert!(typo.contains("callLimt"), "{typo}");
        assert!(Overrides::parse(&serde_json::json!({"requestsPerSecond": 0})).is_err());
        assert!(Overrides::parse(&serde_json::json!({"burst": -1})).is_err());
        assert!(Overrides::parse(&serde_json::json!({"overage": "yes"})).is_err());
    }
}
