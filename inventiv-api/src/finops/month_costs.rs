//! Each organization's cost of the current month (UTC) as a Prometheus
//! gauge, per kind of statement line: `gpu` (cost minutes), `debit` (calls
//! to other organizations' shares), `credit` (calls served to others,
//! negative) and `adjustment` (carried into this month from closed ones).
//! The same rows as the open month's statement (`statement_month_lines`):
//! their sum is its total before each line is rounded to the cent. The cost
//! job's loop replaces them after each pass, so they lag by at most
//! `INVENTIV_COST_JOB_INTERVAL_SECS`; a replica that does not run the job,
//! or has not finished a pass yet, has none. Labels are bounded: the
//! organizations with a cost this month, and four kinds.

use std::sync::RwLock;

use chrono::{DateTime, Utc};
use inventiv_common::metrics::{Kind, Text};
use sqlx::PgPool;
use uuid::Uuid;

use crate::proxy::budgets::month_of;

/// One kind of one organization's month so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    pub organization_id: Uuid,
    /// `gpu`, `debit`, `credit` or `adjustment`.
    pub kind: String,
    pub eur: f64,
}

/// The costs of the last pass.
#[derive(Debug, Default)]
pub struct MonthCosts(RwLock<Vec<Cost>>);

/// Every organization's costs of the month `now` falls in, in EUR, sorted
/// by organization and kind.
pub async fn measure(db: &PgPool, now: DateTime<Utc>) -> sqlx::Result<Vec<Cost>> {
    let (_, from, until) = month_of(now);
    let rows = sqlx::query!(
        r#"WITH lines (organization_id, kind, eur) AS (
               SELECT organization_id, 'gpu', sum(cost_eur)
                 FROM cost_buckets WHERE minute >= $1 AND minute < $2
                GROUP BY organization_id
               UNION ALL
               SELECT organization_id, 'debit', sum(COALESCE(charged_eur, 0))
                 FROM usage_records WHERE offering_id IS NOT NULL AND at >= $1 AND at < $2
                GROUP BY organization_id
               UNION ALL
               SELECT provider_organization_id, 'credit', -sum(COALESCE(charged_eur, 0))
                 FROM usage_records
                WHERE offering_id IS NOT NULL AND at >= $1 AND at < $2
                  AND provider_organization_id IS NOT NULL AND provider_organization_id <> organization_id
                GROUP BY provider_organization_id
               UNION ALL
               SELECT organization_id, 'adjustment', sum(amount_eur)
                 FROM statement_adjustments WHERE statement_month = $3 AND period_month < $3
                GROUP BY organization_id
           )
           SELECT organization_id AS "organization_id!", kind AS "kind!", sum(eur)::float8 AS "eur!"
             FROM lines GROUP BY organization_id, kind ORDER BY organization_id, kind"#,
        from,
        until,
        from.date_naive(),
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Cost {
            organization_id: r.organization_id,
            kind: r.kind,
            eur: r.eur,
        })
        .collect())
}

impl MonthCosts {
    /// Replaces the costs with a pass's.
    pub fn set(&self, costs: Vec<Cost>) {
        if let Ok(mut c) = self.0.write() {
            *c = costs;
        }
    }

    /// Measures the month `now` falls in and keeps it for the next scrapes.
    pub async fn refresh(&self, db: &PgPool, now: DateTime<Utc>) -> sqlx::Result<()> {
        self.set(measure(db, now).await?);
        Ok(())
    }

    /// Renders `inventiv_organization_cost_eur`.
    pub fn render(&self, t: &mut Text) {
        let costs = self.0.read().map(|c| c.clone()).unwrap_or_default();
        let name = "inventiv_organization_cost_eur";
        t.family(
            name,
            Kind::Gauge,
            "An organization's cost this month (UTC) in EUR, by statement line kind (gpu, debit, credit: negative, adjustment); the sum is the open month's statement total before rounding.",
        );
        for c in &costs {
            let org = c.organization_id.to_string();
            let labels = [("organization_id", org.as_str()), ("kind", c.kind.as_str())];
            t.sample(name, &labels, c.eur);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_render_per_organization_and_kind_and_leave_with_the_month() {
        let costs = MonthCosts::default();
        let org = Uuid::max();
        costs.set(vec![
            Cost {
                organization_id: org,
                kind: "gpu".into(),
                eur: 3.1675,
            },
            Cost {
                organization_id: org,
                kind: "credit".into(),
                eur: -0.5,
            },
        ]);
        let mut t = Text::new();
        costs.render(&mut t);
        let text = t.finish();
        for line in [
            "# TYPE inventiv_organization_cost_eur gauge\n".to_owned(),
            format!("inventiv_organization_cost_eur{{organization_id=\"{org}\",kind=\"gpu\"}} 3.1675\n"),
            format!("inventiv_organization_cost_eur{{organization_id=\"{org}\",kind=\"credit\"}} -0.5\n"),
        ] {
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        costs.set(Vec::new());
        let mut t = Text::new();
        costs.render(&mut t);
        assert!(!t.finish().contains("organization_id="));
    }
}
