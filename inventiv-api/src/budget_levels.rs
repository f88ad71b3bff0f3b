//! The budgets' levels as Prometheus gauges: each budget's consumption this
//! month and its linear forecast to the month's end, as shares of its
//! monthly limit, per (organization, budget, metric). The budget watcher
//! (`crate::budgets`) replaces them after each round, so a deleted budget
//! leaves the next scrape; a replica that has not finished a round yet has
//! none. Labels are bounded by the budgets (at most one per organization,
//! API key and share).

use std::sync::RwLock;

use inventiv_common::metrics::{Kind, Text};
use uuid::Uuid;

/// One limit of one budget, as measured by the last round.
#[derive(Debug, Clone)]
pub struct Level {
    pub organization_id: Uuid,
    pub budget_id: Uuid,
    /// `eur`, `tokens` or `gpu_hours`.
    pub metric: &'static str,
    /// Consumed / limit (1 = the limit is reached).
    pub ratio: f64,
    /// Forecast at the month's end / limit.
    pub forecast_ratio: f64,
}

/// A gauge family: its name, its help and the value it takes of a level.
type Family = (&'static str, &'static str, fn(&Level) -> f64);

/// The levels of the last round.
#[derive(Debug, Default)]
pub struct Levels(RwLock<Vec<Level>>);

/// A gauge's value in the text format (`+Inf` for a zero limit exceeded).
fn value(v: f64) -> String {
    if v.is_infinite() {
        "+Inf".into()
    } else {
        v.to_string()
    }
}

impl Levels {
    /// Replaces the levels with a round's.
    pub fn set(&self, levels: Vec<Level>) {
        if let Ok(mut l) = self.0.write() {
            *l = levels;
        }
    }

    /// Renders `inventiv_budget_usage_ratio` and `inventiv_budget_forecast_ratio`.
    pub fn render(&self, t: &mut Text) {
        let levels = self.0.read().map(|l| l.clone()).unwrap_or_default();
        let ids: Vec<(String, String)> = levels
            .iter()
            .map(|l| (l.organization_id.to_string(), l.budget_id.to_string()))
            .collect();
        let families: [Family; 2] = [
            (
                "inventiv_budget_usage_ratio",
                "A budget's consumption this month as a share of its monthly limit (1 = reached), per limit (metric: eur, tokens, gpu_hours).",
                |l| l.ratio,
            ),
            (
                "inventiv_budget_forecast_ratio",
                "A budget's linear forecast to the month's end as a share of its monthly limit, per limit.",
                |l| l.forecast_ratio,
            ),
        ];
        for (name, help, get) in families {
            t.family(name, Kind::Gauge, help);
            for (l, (org, budget)) in levels.iter().zip(&ids) {
                let labels = [
                    ("organization_id", org.as_str()),
                    ("budget_id", budget.as_str()),
                    ("metric", l.metric),
                ];
                t.sample(name, &labels, value(get(l)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_render_per_limit_and_an_exceeded_zero_limit_as_inf() {
        let levels = Levels::default();
        let (org, budget) = (Uuid::nil(), Uuid::max());
        levels.set(vec![
            Level {
                organization_id: org,
                budget_id: budget,
                metric: "tokens",
                ratio: 0.5,
                forecast_ratio: 1.25,
            },
            Level {
                organization_id: org,
                budget_id: budget,
                metric: "eur",
                ratio: f64::INFINITY,
                forecast_ratio: f64::INFINITY,
            },
        ]);
        let mut t = Text::new();
        levels.render(&mut t);
        let text = t.finish();
        let labels = format!("organization_id=\"{org}\",budget_id=\"{budget}\"");
        for line in [
            format!("inventiv_budget_usage_ratio{{{labels},metric=\"tokens\"}} 0.5\n"),
            format!("inventiv_budget_forecast_ratio{{{labels},metric=\"tokens\"}} 1.25\n"),
            format!("inventiv_budget_usage_ratio{{{labels},metric=\"eur\"}} +Inf\n"),
        ] {
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        levels.set(Vec::new());
        let mut t = Text::new();
        levels.render(&mut t);
        assert!(!t.finish().contains("metric="));
    }
}
