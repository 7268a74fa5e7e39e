//! Environments and their promotion order.
//!
//! Environments are declared in the server configuration, in promotion order; with no configuration
//! the seed's three apply (`dev`, `staging`, `prod`, the last one protected). Wherever a user names an
//! environment the short key and the long name both work, case-insensitively: `prod` and `production` are one environment.

use serde::{Deserialize, Serialize};

use crate::name::printable;
use crate::{EnvKey, ValidationError};

/// One deployment environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// Short key used in keys, URLs and the CLI (`prod`).
    pub key: EnvKey,
    /// Long name, used in audit records (`production`).
    pub name: String,
    /// Display title (`Production`).
    pub title: String,
    /// Where the application of this environment runs, if known (`dev.asimo.io`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Changes need the admin role, a confirmation and a reason.
    #[serde(default)]
    pub protected: bool,
}

/// The configured environments, in promotion order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environments(Vec<Environment>);

impl Environments {
    /// Checks and orders a list of environments: keys and long names must be unique across both.
    pub fn new(list: Vec<Environment>) -> Result<Self, ValidationError> {
        if list.is_empty() {
            return Err(ValidationError::new("environments", "at least one environment is needed"));
        }
        let mut seen: Vec<String> = Vec::new();
        for environment in &list {
            EnvKey::parse(&environment.name).map_err(|_| {
                ValidationError::new(
                    "environments",
                    format!("environment name `{}` is invalid; names use the same alphabet as keys", printable(&environment.name)),
                )
            })?;
            for label in [environment.key.as_str().to_owned(), environment.name.clone()] {
                if seen.contains(&label) && !(label == environment.name && environment.name == environment.key.as_str()) {
                    return Err(ValidationError::new("environments", format!("environment `{label}` is declared twice")));
                }
                seen.push(label);
            }
        }
        Ok(Self(list))
    }

    /// The seed's environments: development, staging, production (protected).
    pub fn seed() -> Self {
        let env = |key: &str, name: &str, title: &str, url: &str, protected: bool| Environment {
            key: EnvKey::parse(key).expect("seed keys are valid"),
            name: name.to_owned(),
            title: title.to_owned(),
            url: Some(url.to_owned()),
            protected,
        };
        Self(vec![
            env("dev", "development", "Dev", "localhost:3000", false),
            env("staging", "staging", "Staging", "staging.dev.asimo.io", false),
            env("prod", "production", "Prod", "dev.asimo.io", true),
        ])
    }

    /// Finds an environment by key or long name, ignoring case.
    pub fn resolve(&self, input: &str) -> Result<&Environment, ValidationError> {
        let wanted = input.trim().to_ascii_lowercase();
        self.0.iter().find(|environment| environment.key.as_str() == wanted || environment.name == wanted).ok_or_else(|| {
            ValidationError::new(
                "environment",
                format!("environment `{}` does not exist; known: {}", printable(input), self.describe_known()),
            )
        })
    }

    /// Finds an environment by its exact key.
    pub fn get(&self, key: &EnvKey) -> Option<&Environment> {
        self.0.iter().find(|environment| &environment.key == key)
    }

    /// The position of an environment in promotion order.
    pub fn position(&self, key: &EnvKey) -> Option<usize> {
        self.0.iter().position(|environment| &environment.key == key)
    }

    /// The environment that follows `key` in promotion order, if any.
    pub fn next_after(&self, key: &EnvKey) -> Option<&Environment> {
        self.position(key).and_then(|index| self.0.get(index + 1))
    }

    /// Every environment, in promotion order.
    pub fn iter(&self) -> impl Iterator<Item = &Environment> {
        self.0.iter()
    }

    /// Every environment, in promotion order.
    pub fn as_slice(&self) -> &[Environment] {
        &self.0
    }

    /// `dev (development), staging, prod (production)`: what error messages list as accepted.
    pub fn describe_known(&self) -> String {
        self.0
            .iter()
            .map(|environment| {
                if environment.name == environment.key.as_str() {
                    environment.key.to_string()
                } else {
                    format!("{} ({})", environment.key, environment.name)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Default for Environments {
    fn default() -> Self {
        Self::seed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_long_name_are_the_same_environment() {
        let environments = Environments::seed();
        assert_eq!(environments.resolve("prod").unwrap().name, "production");
        assert_eq!(environments.resolve("production").unwrap().key.as_str(), "prod");
        assert_eq!(environments.resolve("Development").unwrap().key.as_str(), "dev");
        assert!(environments.resolve("production").unwrap().protected);
        let error = environments.resolve("prd").unwrap_err();
        assert_eq!(error.message, "environment `prd` does not exist; known: dev (development), staging, prod (production)");
    }

    #[test]
    fn promotion_order_is_declaration_order() {
        let environments = Environments::seed();
        let dev = EnvKey::parse("dev").unwrap();
        let prod = EnvKey::parse("prod").unwrap();
        assert_eq!(environments.next_after(&dev).unwrap().key.as_str(), "staging");
        assert!(environments.next_after(&prod).is_none());
    }

    #[test]
    fn duplicate_labels_are_refused() {
        let mut list = Environments::seed().as_slice().to_vec();
        list[1].name = "production".into();
        assert!(Environments::new(list).is_err());
    }
}
