//! A small semantic version (`1.2.3`, `2.0.0-beta.1`) parser and ordering, for rule conditions.
//!
//! Only what targeting needs: precedence per semver.org §11, build metadata ignored. A [`Version`]
//! borrows its pre-release part from the text it was parsed from, so comparing versions during
//! evaluation allocates nothing.

use std::cmp::Ordering;

/// A parsed semantic version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version<'a> {
    /// Major, minor, patch.
    pub core: [u64; 3],
    /// The pre-release identifiers, dot-separated; empty for a release.
    pub pre: &'a str,
}

impl<'a> Version<'a> {
    /// Parses `MAJOR.MINOR.PATCH[-PRE][+BUILD]`; a leading `v` is accepted.
    pub fn parse(input: &'a str) -> Option<Self> {
        let input = input.strip_prefix('v').unwrap_or(input);
        let input = input.split_once('+').map(|(version, _build)| version).unwrap_or(input);
        let (core, pre) = match input.split_once('-') {
            Some((core, pre)) => (core, pre),
            None => (input, ""),
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
        let pre_invalid =
            pre.is_empty() || pre.split('.').any(|part| part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        if input.contains('-') && pre_invalid {
            return None;
        }
        Some(Self { core: numbers, pre })
    }
}

fn compare_identifiers(left: &str, right: &str) -> Ordering {
    let numeric = |text: &str| if text.bytes().all(|b| b.is_ascii_digit()) { text.parse::<u64>().ok() } else { None };
    match (numeric(left), numeric(right)) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => left.cmp(right),
    }
}

impl PartialOrd for Version<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core.cmp(&other.core).then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                let mut left = self.pre.split('.');
                let mut right = other.pre.split('.');
                loop {
                    match (left.next(), right.next()) {
                        (Some(a), Some(b)) => match compare_identifiers(a, b) {
                            Ordering::Equal => continue,
                            order => return order,
                        },
                        (Some(_), None) => return Ordering::Greater,
                        (None, Some(_)) => return Ordering::Less,
                        (None, None) => return Ordering::Equal,
                    }
                }
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
