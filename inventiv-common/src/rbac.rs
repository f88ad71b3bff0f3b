//! Organization roles and the permission matrix: the single place where the
//! question "may this role do that?" is answered.

use serde::{Deserialize, Serialize};

/// A member's role inside one organization.
///
/// Admin is the technical side, manager the economic side, owner both; user
/// consumes. Admin and manager are not ranked against each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrgRole {
    Owner,
    Admin,
    Manager,
    User,
}

impl OrgRole {
    /// Every role, most powerful first.
    pub const ALL: [OrgRole; 4] = [
        OrgRole::Owner,
        OrgRole::Admin,
        OrgRole::Manager,
        OrgRole::User,
    ];

    /// The role's stable lowercase name, as stored and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::Owner => "owner",
            OrgRole::Admin => "admin",
            OrgRole::Manager => "manager",
            OrgRole::User => "user",
        }
    }

    /// The role with its article, for messages ("an owner", "a user").
    pub fn with_article(self) -> &'static str {
        match self {
            OrgRole::Owner => "an owner",
            OrgRole::Admin => "an admin",
            OrgRole::Manager => "a manager",
            OrgRole::User => "a user",
        }
    }

    /// Parses a stored or submitted role name.
    pub fn parse(value: &str) -> Option<OrgRole> {
        OrgRole::ALL.into_iter().find(|r| r.as_str() == value)
    }

    /// The roles this role may hand out or take away: owner any; admin moves
    /// members between user and admin; manager between user and manager.
    fn assignable(self) -> &'static [OrgRole] {
        match self {
            OrgRole::Owner => &OrgRole::ALL,
            OrgRole::Admin => &[OrgRole::Admin, OrgRole::User],
            OrgRole::Manager => &[OrgRole::Manager, OrgRole::User],
            OrgRole::User => &[],
        }
    }
}

impl std::fmt::Display for OrgRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a member may try to do inside their current organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read the organization and its member list.
    ViewOrganization,
    /// Rename it, change its sidebar color.
    UpdateOrganization,
    /// Delete a team organization.
    DeleteOrganization,
    /// Change roles of, or remove, members (within [`can_assign`]).
    ManageMembers,
    /// Invite people and see or revoke pending invitations.
    ManageInvitations,
    /// Read the organization's audit log.
    ViewAuditLog,
    /// Read the catalog and the organization's activations.
    ViewCatalog,
    /// Switch the technical activation of a catalog item or resource.
    ActivateTechnical,
    /// Switch the economic activation (spending) of a catalog item or resource.
    ActivateEconomic,
    /// Read instances, their timelines and metrics.
    ViewInstances,
    /// Deploy, terminate, reinstall and archive instances.
    ManageInstances,
    /// Create API keys for oneself and manage one's own keys.
    UseApiKeys,
    /// See and manage every API key of the organization.
    ManageAllApiKeys,
    /// Read GPU costs, usage series, statements and cost recovery.
    ViewFinOps,
    /// Close a month: its statement becomes an immutable snapshot.
    CloseStatements,
    /// Read the organization's own offerings and their shares.
    ViewOfferings,
    /// Publish an offering and switch it technically (visibility, on/off).
    PublishOfferings,
    /// Price offerings, activate them economically, manage their shares.
    SellOfferings,
    /// Accept (economically activate) an offering shared with or published
    /// to the organization.
    AcceptShares,
    /// Set, verify and remove the organization's cloud provider
    /// credentials and its Hugging Face token; read its reconciliation
    /// reports.
    ManageProviders,
    /// Read budgets, their consumption and their alerts.
    ViewBudgets,
    /// Set, change and remove budgets.
    ManageBudgets,
    /// Read the organization's own GPU servers (hosts) and their history.
    ViewHosts,
    /// Register, verify, drain and remove hosts; read the key to authorize.
    ManageHosts,
}

use Action::*;
use OrgRole::{Admin, Manager, Owner, User};

/// The permission matrix. Each row lists the roles allowed to do the action.
const MATRIX: &[(Action, &[OrgRole])] = &[
    (ViewOrganization, &[Owner, Admin, Manager, User]),
    (UpdateOrganization, &[Owner, Admin]),
    (DeleteOrganization, &[Owner]),
    (ManageMembers, &[Owner, Admin, Manager]),
    (ManageInvitations, &[Owner, Admin, Manager]),
    (ViewAuditLog, &[Owner, Admin]),
    (ViewCatalog, &[Owner, Admin, Manager, User]),
    (ActivateTechnical, &[Owner, Admin]),
    (ActivateEconomic, &[Owner, Manager]),
    (ViewInstances, &[Owner, Admin, Manager, User]),
    (ManageInstances, &[Owner, Admin]),
    (UseApiKeys, &[Owner, Admin, Manager, User]),
    (ManageAllApiKeys, &[Owner, Admin]),
    (ViewFinOps, &[Owner, Manager]),
    (CloseStatements, &[Owner]),
    (ViewOfferings, &[Owner, Admin, Manager]),
    (PublishOfferings, &[Owner, Admin]),
    (SellOfferings, &[Owner, Manager]),
    (AcceptShares, &[Owner, Manager]),
    (ManageProviders, &[Owner, Admin]),
    (ViewBudgets, &[Owner, Admin, Manager]),
    (ManageBudgets, &[Owner, Admin]),
    (ViewHosts, &[Owner, Admin, Manager, User]),
    (ManageHosts, &[Owner, Admin]),
];

/// Whether `role` may perform `action`.
pub fn can(role: OrgRole, action: Action) -> bool {
    MATRIX
        .iter()
        .find(|(a, _)| *a == action)
        .is_some_and(|(_, roles)| roles.contains(&role))
}

/// Whether `actor` may move a member from role `from` (None for a newcomer,
/// e.g. an invitation) to role `to`. Nobody grants above their own role.
pub fn can_assign(actor: OrgRole, from: Option<OrgRole>, to: OrgRole) -> bool {
    let allowed = actor.assignable();
    can(actor, ManageMembers) && from.is_none_or(|f| allowed.contains(&f)) && allowed.contains(&to)
}

/// Whether `actor` may remove a member whose role is `target`.
pub fn can_remove(actor: OrgRole, target: OrgRole) -> bool {
    can(actor, ManageMembers) && actor.assignable().contains(&target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules from the product plan, one line each: (actor, from, to, allowed).
    const ASSIGNMENTS: &[(OrgRole, Option<OrgRole>, OrgRole, bool)] = &[
        (Owner, Some(User), Owner, true),
        (Owner, Some(Owner), User, true),
        (Owner, None, Admin, true),
        (Admin, Some(User), Admin, true),
        (Admin, Some(Admin), User, true),
        (Admin, Some(User), Manager, false),
        (Admin, Some(Manager), User, false),
        (Admin, Some(User), Owner, false),
        (Admin, Some(Owner), User, false),
        (Admin, None, Admin, true),
        (Admin, None, Manager, false),
        (Manager, Some(User), Manager, true),
        (Manager, Some(Manager), User, true),
        (Manager, Some(User), Admin, false),
        (Manager, None, Admin, false),
        (Manager, None, User, true),
        (Manager, Some(Owner), User, false),
        (User, None, User, false),
        (User, Some(User), User, false),
    ];

    #[test]
    fn assignment_rules() {
        for &(actor, from, to, expected) in ASSIGNMENTS {
            assert_eq!(
                can_assign(actor, from, to),
                expected,
                "{actor} {from:?} -> {to}"
            );
        }
    }

    #[test]
    fn every_action_has_a_row() {
        for action in [
            ViewOrganization,
            UpdateOrganization,
            DeleteOrganization,
            ManageMembers,
            ManageInvitations,
            ViewAuditLog,
            ViewCatalog,
            ActivateTechnical,
            ActivateEconomic,
            ViewInstances,
            ManageInstances,
            UseApiKeys,
            ManageAllApiKeys,
            ViewFinOps,
            CloseStatements,
            ViewOfferings,
            PublishOfferings,
            SellOfferings,
            AcceptShares,
            ManageProviders,
            ViewBudgets,
            ManageBudgets,
            ViewHosts,
            ManageHosts,
        ] {
            assert!(MATRIX.iter().any(|(a, _)| *a == action), "{action:?}");
            assert!(can(Owner, action), "owner can do everything: {action:?}");
        }
    }

    #[test]
    fn removal_follows_assignment() {
        assert!(can_remove(Owner, Owner));
        assert!(can_remove(Admin, Admin));
        assert!(!can_remove(Admin, Manager));
        assert!(!can_remove(Manager, Admin));
        assert!(!can_remove(User, User));
    }

    #[test]
    fn roles_round_trip() {
        for role in OrgRole::ALL {
            assert_eq!(OrgRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(OrgRole::parse("member"), None);
    }
}
