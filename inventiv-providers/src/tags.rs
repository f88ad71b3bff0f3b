//! The tag convention that ties a cloud server (and its volumes) to an
//! Inventiv instance and organization, so reconciliation can tell ours from
//! anything else in the account and find orphans:
//! `inventiv:managed`, `inventiv:instance=<uuid>`, `inventiv:org=<uuid>`.

use uuid::Uuid;

/// Carried by every resource Inventiv creates; filter on it to list ours.
pub const MANAGED: &str = "inventiv:managed";

const INSTANCE_PREFIX: &str = "inventiv:instance=";
const ORG_PREFIX: &str = "inventiv:org=";

/// The tag naming the instance a server belongs to.
pub fn instance(id: Uuid) -> String {
    format!("{INSTANCE_PREFIX}{id}")
}

/// The tag naming the organization a server belongs to.
pub fn org(id: Uuid) -> String {
    format!("{ORG_PREFIX}{id}")
}

/// The tags every server and volume of an instance carries.
pub fn standard(instance_id: Uuid, organization_id: Uuid) -> Vec<String> {
    vec![
        MANAGED.to_owned(),
        instance(instance_id),
        org(organization_id),
    ]
}

/// The instance id found in a set of tags, if any.
pub fn instance_id(tags: &[String]) -> Option<Uuid> {
    find(tags, INSTANCE_PREFIX)
}

/// The organization id found in a set of tags, if any.
pub fn org_id(tags: &[String]) -> Option<Uuid> {
    find(tags, ORG_PREFIX)
}

fn find(tags: &[String], prefix: &str) -> Option<Uuid> {
    tags.iter()
        .find_map(|t| t.strip_prefix(prefix))
        .and_then(|v| Uuid::parse_str(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_tags_round_trip() {
        let (i, o) = (Uuid::new_v4(), Uuid::new_v4());
        let tags = standard(i, o);
        assert!(tags.iter().any(|t| t == MANAGED));
        assert_eq!(instance_id(&tags), Some(i));
        assert_eq!(org_id(&tags), Some(o));
    }

    #[test]
    fn foreign_or_malformed_tags_yield_nothing() {
        let tags = vec!["env=prod".to_owned(), "inventiv:instance=nope".to_owned()];
        assert_eq!(instance_id(&tags), None);
        assert_eq!(org_id(&tags), None);
    }
}
