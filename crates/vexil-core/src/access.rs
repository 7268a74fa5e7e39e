//! Roles and what each may do ("production requires elevated permissions").
//!
//! - `viewer` reads everything.
//! - `developer` also defines flags and changes unprotected environments.
//! - `admin` also changes protected environments (with a reason) and manages users and tokens.

use serde::{Deserialize, Serialize};

use crate::{Environment, ValidationError};

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads flags, states and the audit trail.
    Viewer,
    /// Also defines flags and changes unprotected environments.
    Developer,
    /// Also changes protected environments and manages users and tokens.
    Admin,
}

impl Role {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Admin => "admin",
        }
    }

    /// Parses `viewer`, `developer` or `admin`.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        match input {
            "viewer" => Ok(Role::Viewer),
            "developer" => Ok(Role::Developer),
            "admin" => Ok(Role::Admin),
            _ => Err(ValidationError::new(
                "role",
                format!("role `{}` is unknown; accepted: viewer, developer, admin", crate::name::printable(input)),
            )),
        }
    }

    /// Whether this role may change flag states in `environment`; the refusal says why.
    pub fn may_change(self, environment: &Environment) -> Result<(), String> {
        match self {
            Role::Admin => Ok(()),
            Role::Developer if !environment.protected => Ok(()),
            Role::Developer => Err(format!("{} is protected: changing it needs the admin role; your role is developer", environment.name)),
            Role::Viewer => {
                Err(format!("your role is viewer, which can only read; changing {} needs the developer role", environment.name))
            }
        }
    }

    /// Whether this role may create and edit flag definitions.
    pub fn may_define(self) -> Result<(), String> {
        match self {
            Role::Viewer => Err("your role is viewer, which can only read; defining flags needs the developer role".to_owned()),
            _ => Ok(()),
        }
    }

    /// Whether this role may manage users and other people's tokens.
    pub fn may_administer(self) -> Result<(), String> {
        match self {
            Role::Admin => Ok(()),
            other => Err(format!("managing users and tokens needs the admin role; your role is {}", other.as_str())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EnvKey, Environments};

    #[test]
    fn production_needs_admin() {
        let environments = Environments::seed();
        let prod = environments.get(&EnvKey::parse("prod").unwrap()).unwrap();
        let staging = environments.get(&EnvKey::parse("staging").unwrap()).unwrap();
        assert!(Role::Admin.may_change(prod).is_ok());
        assert!(Role::Developer.may_change(staging).is_ok());
        assert_eq!(
            Role::Developer.may_change(prod).unwrap_err(),
            "production is protected: changing it needs the admin role; your role is developer"
        );
        assert!(Role::Viewer.may_change(staging).is_err());
        assert!(Role::Viewer.may_define().is_err());
    }
}
