//! A small semantic version (`1.2.3`, `2.0.0-beta.1`) parser and ordering, for rule conditions.
//!
//! Only the parts targeting needs: precedence per semver.org §11, build metadata ignored.

use std::cmp::Ordering;

/// A parsed semantic version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Major, minor, patch.
    pub core: [u64; 3],
    /// Pre-release identifiers, empty for a release.
    pub pre: Vec<Identifier>,
}

/// One dot-separated pre-release identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identifier {
    /// All digits, compared numerically.
    Numeric(u64),
    /// Anything else, compared as ASCII.
    Text(String),
}

impl Version {
    /// Parses `MAJOR.MINOR.PATCH[-PRE][+BUILD]`; a leading `v` is accepted.
    pub fn parse(input: &str) -> Option<Self> {
        let input = input.strip_prefix('v').unwrap_or(input);
        let input = input.split_once('+').map(|(version, _build)| version).unwrap_or(input);
        let (core, pre) = match input.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (input, None),
        };
        let mut parts = core.split('.');
        let mut numbers = [0u64; 3];
        for slot in &mut numbers {
            let part = parts.next()?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) || (part.len() > 1 && part.starts_with('0')) {
                return None;
            }
            *slot = part.parse().ok()?;
        }
        if parts.next().is_some() {
            return None;
        }
        let mut identifiers = Vec::new();
        if let Some(pre) = pre {
            for part in pre.split('.') {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    return None;
                }
                identifiers.push(match part.parse::<u64>() {
                    Ok(number) if part.bytes().all(|b| b.is_ascii_digit()) => Identifier::Numeric(number),
                    _ => Identifier::Text(part.to_owned()),
                });
            }
        }
        Some(Self { core: numbers, pre: identifiers })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core.cmp(&other.core).then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                for (left, right) in self.pre.iter().zip(&other.pre) {
                    let order = match (left, right) {
                        (Identifier::Numeric(a), Identifier::Numeric(b)) => a.cmp(b),
                        (Identifier::Numeric(_), Identifier::Text(_)) => Ordering::Less,
                        (Identifier::Text(_), Identifier::Numeric(_)) => Ordering::Greater,
                        (Identifier::Text(a), Identifier::Text(b)) => a.cmp(b),
                    };
                    if order != Ordering::Equal {
                        return order;
                    }
                }
                self.pre.len().cmp(&other.pre.len())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_follows_semver_org() {
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.2.0",
            "v1.10.0",
        ];
        for pair in ordered.windows(2) {
            assert!(Version::parse(pair[0]).unwrap() < Version::parse(pair[1]).unwrap(), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(Version::parse("1.2.3+build.5"), Version::parse("1.2.3"));
        for bad in ["1", "1.2", "1.2.3.4", "01.2.3", "1.x.3", "", "1.2.3-", "1.2.3-a..b"] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
    }
}
