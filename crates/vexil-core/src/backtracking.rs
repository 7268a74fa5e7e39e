//! Regex patterns that a backtracking engine can take seconds on.
//!
//! The server matches with the `regex` crate, in linear time; the JavaScript SDK translates the same patterns to
//! `RegExp`, which backtracks, and so may an application's own engine. A backtracking engine tries, on a text that
//! fails to match, every way the pattern could have matched it: `^(a+)+$` on 30 `a`s and a `!` is 2^30 ways, seconds
//! of a blocked event loop, for anyone who controls an attribute value (an email, a user agent).
//!
//! The shape judged is the pattern as written (its AST, not the simplified HIR, which turns `(a|a)*` into `a*`: a
//! backtracking engine runs what was written). Each part counts the ways it can match, as far as its repetitions and
//! alternatives go: 1 for a literal or a class, the product along a concatenation, for alternatives the largest of
//! theirs when they start with different characters and their sum otherwise (an alternative that can match nothing
//! counts as starting with anything), for `{n,m}` its `m - n + 1` counts times the ways of its part to the `m`, and
//! unbounded for `*`, `+` and `{n,}`. A repetition that can repeat more than once, of a part that matches in more than
//! one way, unbounded or making more than [`MAX_REPEATED_WAYS`] ways, is refused unless that part *splits one way*:
//!
//! - it cannot match the empty text (`(a*)*`, `(a?){25}` are refused);
//! - every choice in it is decided by the next character: alternatives start with different characters and none
//!   matches nothing (`(a|ab)*`, `(\w|\d)+` are refused), and a part of it that can go on (`[a-z]+`, `x?`) cannot
//!   go on with a character that what follows it within the part can start with (`(x+x+)+`, `(.+,)*` are refused;
//!   `([a-z0-9-]+\.)+`, `(\w+\s)*` are not);
//! - once it has matched, it cannot go on with a character it starts with, so where one repetition ends and the next
//!   begins is fixed (`(a+)+`, `(\w+\s?)*`, `(a{1,2})*` are refused; `(-[a-z]+)*`, `(\.[a-z0-9]+)*` are not).
//!
//! Why that is enough: a part that splits one way is read like a deterministic automaton, each character telling
//! where in the part it falls (its Glushkov automaton is deterministic, and reaches each position one way only);
//! with the last rule, that holds across the repetition too, so a text has at most one way of being cut into
//! repetitions, and a backtracking engine only ever tries, besides that one way, to leave the repetition early (a
//! number of attempts linear in the text). Case-insensitivity and classes are taken into account as the regex crate
//! reads them; assertions count as matching the empty text, which can only refuse more.
//!
//! It does not judge the polynomial cost of adjacent repetitions (`\d+\d+$`), which is that of an unanchored search
//! in any engine.

use regex_syntax::ast::{self, Ast, RepetitionKind, RepetitionRange, Span};
use regex_syntax::hir::{self, Hir, HirKind};

/// The most ways a bounded repetition (`{n,m}`) of a part that itself matches in more than one way, and does not
/// split one way, may make: `(\d{1,3}\.){3}` makes 27; `(a{1,10}){1,10}`, some 10^11, took 83 s in V8 on 60 `a`s.
pub const MAX_REPEATED_WAYS: u64 = 1000;

/// Why a repeated part does not split one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// It can match the empty text (`a*` in `(a*)*`).
    Empty,
    /// It holds alternatives that can start with the same character, or match nothing (`a|ab` in `(a|ab)*`).
    Alternatives,
    /// A part of it can go on with a character that what follows it can start with (the first `x+` in `(x+x+)+`).
    Follows,
    /// Once matched, it can go on with a character it starts with (`a+` in `(a+)+`).
    Restarts,
}

/// A refused pattern: the repetition, what in it does not split one way, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Backtracking {
    /// The repetition, as written (`(a+)+`).
    pub repetition: String,
    /// Its upper bound; `None` for `*`, `+` and `{n,}`.
    pub max: Option<u32>,
    /// The part in it that does not split one way, as written (`a+`).
    pub part: String,
    /// Why.
    pub cause: Cause,
}

/// Checks a pattern that compiles (others are refused for that first). A pattern that does not parse passes.
pub(crate) fn check(pattern: &str) -> Result<(), Backtracking> {
    let Ok(ast) = ast::parse::Parser::new().parse(pattern) else {
        return Ok(());
    };
    Walker { pattern }.shape(&ast, &mut Flags::default()).map(|_| ())
}

/// The flags that change which characters an atom matches.
#[derive(Debug, Clone, Copy)]
struct Flags {
    caseless: bool,
    unicode: bool,
    dot_all: bool,
    crlf: bool,
}

impl Default for Flags {
    fn default() -> Self {
        Self { caseless: false, unicode: true, dot_all: false, crlf: false }
    }
}

impl Flags {
    fn apply(&mut self, flags: &ast::Flags) {
        let set = |flag| flags.flag_state(flag);
        self.caseless = set(ast::Flag::CaseInsensitive).unwrap_or(self.caseless);
        self.unicode = set(ast::Flag::Unicode).unwrap_or(self.unicode);
        self.dot_all = set(ast::Flag::DotMatchesNewLine).unwrap_or(self.dot_all);
        self.crlf = set(ast::Flag::CRLF).unwrap_or(self.crlf);
    }
}

/// What the walk knows of a part.
struct Shape {
    /// The ways it can match (saturating; `u64::MAX` is unbounded).
    ways: u64,
    /// The characters a match can start with.
    first: hir::ClassUnicode,
    /// The characters with which a complete, non-empty match can go on within the part (`[a-z]` for `-[a-z]+`,
    /// `x` for `ax?`): what must not start what follows it.
    tail: hir::ClassUnicode,
    /// Whether it can match the empty text (then what follows it can come first too).
    nullable: bool,
    /// Whether it can match a non-empty text.
    consumes: bool,
    /// The first thing in it that keeps it from splitting one way, and why; `None` when it does.
    undecided: Option<(Span, Cause)>,
}

impl Shape {
    fn atom(first: hir::ClassUnicode) -> Self {
        Self { ways: 1, first, tail: hir::ClassUnicode::empty(), nullable: false, consumes: true, undecided: None }
    }

    fn empty() -> Self {
        Self {
            ways: 1,
            first: hir::ClassUnicode::empty(),
            tail: hir::ClassUnicode::empty(),
            nullable: true,
            consumes: false,
            undecided: None,
        }
    }
}

/// Whether two sets of characters share one.
fn overlap(left: &hir::ClassUnicode, right: &hir::ClassUnicode) -> bool {
    let mut common = left.clone();
    common.intersect(right);
    !common.ranges().is_empty()
}

fn union(left: &hir::ClassUnicode, right: &hir::ClassUnicode) -> hir::ClassUnicode {
    let mut all = left.clone();
    all.union(right);
    all
}

struct Walker<'p> {
    pattern: &'p str,
}

impl Walker<'_> {
    fn text(&self, span: &Span) -> String {
        self.pattern.get(span.start.offset..span.end.offset).unwrap_or_default().to_owned()
    }

    /// The shape of `ast` under `flags`, which flags set in it change for what follows (as in the regex crate:
    /// `(?i)` applies up to the end of its group, across `|`).
    fn shape(&self, ast: &Ast, flags: &mut Flags) -> Result<Shape, Backtracking> {
        Ok(match ast {
            Ast::Empty(_) | Ast::Assertion(_) => Shape::empty(),
            Ast::Flags(set) => {
                flags.apply(&set.flags);
                Shape::empty()
            }
            Ast::Literal(_) | Ast::Dot(_) | Ast::ClassUnicode(_) | Ast::ClassPerl(_) | Ast::ClassBracketed(_) => {
                Shape::atom(self.characters(ast, *flags))
            }
            Ast::Group(group) => {
                let mut inner = *flags;
                if let Some(scoped) = group.flags() {
                    inner.apply(scoped);
                }
                self.shape(&group.ast, &mut inner)?
            }
            Ast::Concat(concat) => {
                let mut shape = Shape::empty();
                // The items so far: what a choice at the next one is decided against.
                let mut before: Vec<(Span, Shape)> = Vec::new();
                for item in &concat.asts {
                    let next = self.shape(item, flags)?;
                    if shape.undecided.is_none() {
                        shape.undecided = next.undecided;
                    }
                    if shape.undecided.is_none() {
                        // The nearest earlier item, past ones that can match nothing, that can go on (or, matching
                        // nothing, start) with a character `next` can start with.
                        for (span, earlier) in before.iter().rev() {
                            if overlap(&earlier.tail, &next.first) || (earlier.nullable && overlap(&earlier.first, &next.first)) {
                                shape.undecided = Some((*span, Cause::Follows));
                                break;
                            }
                            if !earlier.nullable {
                                break;
                            }
                        }
                    }
                    shape.ways = shape.ways.saturating_mul(next.ways);
                    let tail = if next.nullable && shape.consumes {
                        union(&next.tail, &union(&shape.tail, &next.first))
                    } else {
                        next.tail.clone()
                    };
                    if shape.nullable {
                        shape.first.union(&next.first);
                    }
                    shape.tail = tail;
                    shape.nullable &= next.nullable;
                    shape.consumes |= next.consumes;
                    before.push((*item.span(), next));
                }
                shape
            }
            Ast::Alternation(alternation) => {
                let mut shape = Shape { nullable: false, ..Shape::empty() };
                let mut overlapping = false;
                let (mut sum, mut largest): (u64, u64) = (0, 0);
                for branch in &alternation.asts {
                    let branch = self.shape(branch, flags)?;
                    overlapping |= shape.nullable || branch.nullable || overlap(&shape.first, &branch.first);
                    shape.nullable |= branch.nullable;
                    shape.consumes |= branch.consumes;
                    shape.first.union(&branch.first);
                    shape.tail.union(&branch.tail);
                    shape.undecided = shape.undecided.or(branch.undecided);
                    sum = sum.saturating_add(branch.ways);
                    largest = largest.max(branch.ways);
                }
                if overlapping {
                    shape.ways = sum;
                    shape.undecided = Some((alternation.span, Cause::Alternatives));
                } else {
                    shape.ways = largest.max(1);
                }
                shape
            }
            Ast::Repetition(repetition) => {
                let part = self.shape(&repetition.ast, flags)?;
                let (min, max) = match &repetition.op.kind {
                    RepetitionKind::ZeroOrOne => (0, Some(1)),
                    RepetitionKind::ZeroOrMore => (0, None),
                    RepetitionKind::OneOrMore => (1, None),
                    RepetitionKind::Range(RepetitionRange::Exactly(n)) => (*n, Some(*n)),
                    RepetitionKind::Range(RepetitionRange::AtLeast(n)) => (*n, None),
                    RepetitionKind::Range(RepetitionRange::Bounded(n, m)) => (*n, Some(*m)),
                };
                if max == Some(0) {
                    // `x{0}` matches the empty text, one way.
                    return Ok(Shape::empty());
                }
                let ways = match max {
                    None => u64::MAX,
                    Some(max) => u64::from(max - min.min(max) + 1).saturating_mul(part.ways.checked_pow(max).unwrap_or(u64::MAX)),
                };
                let repeats = max.is_none_or(|max| max >= 2);
                let span = *ungrouped(&repetition.ast).span();
                let undecided = if repeats {
                    // Where one repetition ends and the next begins must be fixed.
                    part.undecided.or(if part.nullable && part.consumes {
                        Some((span, Cause::Empty))
                    } else if overlap(&part.tail, &part.first) {
                        Some((span, Cause::Restarts))
                    } else {
                        None
                    })
                } else if min == 0 && part.nullable {
                    // `(a?)?` matches the empty text two ways.
                    part.undecided.or(Some((span, Cause::Empty)))
                } else {
                    part.undecided
                };
                if repeats
                    && part.ways > 1
                    && (max.is_none() || ways > MAX_REPEATED_WAYS)
                    && let Some((span, cause)) = undecided
                {
                    return Err(Backtracking { repetition: self.text(&repetition.span), max, part: self.text(&span), cause });
                }
                // After a non-empty match another repetition can start when the count can still grow.
                let tail = if max.is_none_or(|max| max > min.max(1)) { union(&part.tail, &part.first) } else { part.tail.clone() };
                Shape { ways, first: part.first, tail, nullable: min == 0 || part.nullable, consumes: part.consumes, undecided }
            }
        })
    }

    /// The characters an atom (a literal, `.` or a class) matches under `flags`; every character when that cannot
    /// be worked out, which can only refuse more.
    fn characters(&self, atom: &Ast, flags: Flags) -> hir::ClassUnicode {
        let everything = || hir::ClassUnicode::new([hir::ClassUnicodeRange::new('\0', char::MAX)]);
        let translated = hir::translate::TranslatorBuilder::new()
            .case_insensitive(flags.caseless)
            .unicode(flags.unicode)
            .dot_matches_new_line(flags.dot_all)
            .crlf(flags.crlf)
            .build()
            .translate(self.pattern, atom);
        let Ok(hir) = translated else { return everything() };
        first_characters(&hir).unwrap_or_else(everything)
    }
}

/// What a group holds (`a+` for `(a+)`), to name it as written.
fn ungrouped(ast: &Ast) -> &Ast {
    match ast {
        Ast::Group(group) => ungrouped(&group.ast),
        _ => ast,
    }
}

/// The characters a one-character HIR (a literal or a class) matches.
fn first_characters(hir: &Hir) -> Option<hir::ClassUnicode> {
    match hir.kind() {
        HirKind::Literal(hir::Literal(bytes)) => {
            let c = std::str::from_utf8(bytes).ok()?.chars().next()?;
            Some(hir::ClassUnicode::new([hir::ClassUnicodeRange::new(c, c)]))
        }
        HirKind::Class(hir::Class::Unicode(class)) => Some(class.clone()),
        HirKind::Class(hir::Class::Bytes(class)) => {
            let ranges = class.ranges().iter().map(|range| {
                let end = if range.end().is_ascii() { char::from(range.end()) } else { char::MAX };
                hir::ClassUnicodeRange::new(char::from(range.start()), end)
            });
            Some(hir::ClassUnicode::new(ranges))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(pattern: &str) -> Backtracking {
        assert!(regex::Regex::new(pattern).is_ok(), "{pattern} compiles");
        check(pattern).expect_err(pattern)
    }

    #[test]
    fn ordinary_patterns_are_accepted() {
        for pattern in [
            r"@asimo\.io$",
            r"^user-\d+$",
            r"^(foo|bar)-[a-z]+$",
            r"^[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}$",
            r"^v?\d+\.\d+(\.\d+)?$",
            r"^.+@asimo\.io$",
            r"^[a-z]+@asimo\.io$",
            r"^(fr|de)$",
            r"^(\d{1,3}\.){3}\d{1,3}$",
            r"^(?:[0-9a-f]{2}:){5}[0-9a-f]{2}$",
            r"(foo|bar)+",
            r"^(\d|[a-f])+$",
            r"^(\w|-)+$",
            r"^(a|b|c)*$",
            r"(?i)^(pro|premium|enterprise)$",
            r"^(?P<user>[a-z]+)@(example|asimo)\.(com|io)$",
            r"^.*(chrome|firefox).*$",
            r"^(\w)+$",
            r"(?x) ^ pro \# # comment",
            r"^a{2,5}$",
            r"^(ab){2,}$",
            r"^(a|a){2}$",
            r"\bpro\b",
            r"^(https?://)?[a-z]+\.example\.com(/.*)?$",
            r"^(.|\n)*$",
            r"^(a{0}b|a)+$",
        ] {
            assert_eq!(check(pattern), Ok(()), "{pattern}");
        }
    }

    /// Each repetition's end is fixed by a character its part cannot go on with: a text splits into repetitions
    /// one way only.
    #[test]
    fn repetitions_of_varying_parts_that_split_one_way_are_accepted() {
        for pattern in [
            r"^[a-z]+(-[a-z]+)*$",
            r"^([a-z0-9-]+\.)+[a-z]{2,}$",
            r"^(\w+\s)*$",
            r"^[a-z0-9]+(\.[a-z0-9]+)*@example\.com$",
            r"^([a-z]+\.)*[a-z]+$",
            r"^\d+(,\d+)*$",
            r"^(/[a-z0-9_-]+)+/?$",
            r"^([A-Z][a-z]+ ?)+$",
            r"^(\S+\s+)*\S*$",
            r"^(-[a-z]+(_[a-z]+)*)*$",
            r"^((-[a-z]+)*\.)+$",
            r"^(\d+[a-z]?,)*$",
            r"^([a-z]+=[^&]*&)*$",
            r"(?i)^(-[a-z]+)+$",
            r"^(-[a-z]{1,1000})*$",
            r"^(\.[a-z0-9]+){1,20}$",
            r"^((-[a-z]+)*\.){3}$",
            r"^((a+)?b)*$",
        ] {
            assert_eq!(check(pattern), Ok(()), "{pattern}");
        }
    }

    #[test]
    fn repetitions_of_parts_that_can_split_more_than_one_way_are_refused() {
        for (pattern, repetition, part, cause) in [
            (r"^(a+)+$", "(a+)+", "a+", Cause::Restarts),
            (r"(a*)*", "(a*)*", "a*", Cause::Empty),
            (r"^(\w+\s?)*$", r"(\w+\s?)*", r"\w+\s?", Cause::Restarts),
            (r"^(([a-z])+.)+[A-Z]([a-z])+$", r"(([a-z])+.)+", "([a-z])+", Cause::Follows),
            (r"(x+x+)+y", "(x+x+)+", "x+", Cause::Follows),
            (r"^(a{1,2})*$", "(a{1,2})*", "a{1,2}", Cause::Restarts),
            (r"a**", "a**", "a*", Cause::Empty),
            (r"(?:(?:a+)?)+", "(?:(?:a+)?)+", "(?:a+)?", Cause::Empty),
            (r"^(.+,)*$", "(.+,)*", ".+", Cause::Follows),
            (r"^(a?a)+$", "(a?a)+", "a?", Cause::Follows),
            (r"^([a-z]+-?)+$", "([a-z]+-?)+", "[a-z]+-?", Cause::Restarts),
            (r"(?i)^([a-z]+ ?)+$", "([a-z]+ ?)+", "[a-z]+ ?", Cause::Restarts),
            (r"^(-[a-z]+[a-z0-9]*)*$", "(-[a-z]+[a-z0-9]*)*", "[a-z]+", Cause::Follows),
            (r"^((a+)?)*$", "((a+)?)*", "(a+)?", Cause::Empty),
        ] {
            let refusal = refused(pattern);
            assert_eq!((refusal.repetition.as_str(), refusal.part.as_str(), refusal.cause), (repetition, part, cause), "{pattern}");
            assert_eq!(refusal.max, None);
        }
    }

    #[test]
    fn repeated_alternatives_that_start_alike_are_refused() {
        for (pattern, part) in [
            (r"^(a|a)*$", "a|a"),
            (r"^(a|ab)*$", "a|ab"),
            (r"^(a|aa)+$", "a|aa"),
            (r"^(\w|\d)+$", r"\w|\d"),
            (r"^(?i)(a|A)+$", "a|A"),
            (r"^(?i:k|\x{212A})+$", r"k|\x{212A}"),
            (r"^(a|)+$", "a|"),
            (r"^(a?b|b)+$", "a?b|b"),
            (r"^(foo|bar|fizz)+$", "foo|bar|fizz"),
            (r"^(-(a|ab))+$", "a|ab"),
        ] {
            let refusal = refused(pattern);
            assert_eq!((refusal.part.as_str(), refusal.cause), (part, Cause::Alternatives), "{pattern}");
        }
        // Flags set in one alternative hold in the next, as in the regex crate.
        assert_eq!(refused(r"^(a(?i)|A)+$").cause, Cause::Alternatives);
        assert_eq!(check(r"^(a|A)+$"), Ok(()));
    }

    #[test]
    fn bounded_repetitions_of_varying_parts_are_refused_beyond_the_budget() {
        for (pattern, max) in
            [(r"^(a+){3}$", 3), (r"^(a+){2}$", 2), (r"^(a{1,10}){1,10}$", 10), (r"^(a|a){1,20}$", 20), (r"^(a?){25}a{25}$", 25)]
        {
            let refusal = refused(pattern);
            assert_eq!(refusal.max, Some(max), "{pattern}");
        }
        // Within the budget: 3 ^ 3 and 4 * 3 ^ 4 ways; 4 * 4 ^ 4 is over it.
        assert_eq!(check(r"^(\d{1,3}\.){3}$"), Ok(()));
        assert_eq!(check(r"^(a{1,3}){1,4}$"), Ok(()));
        assert_eq!(refused(r"^(a{1,4}){1,4}$").max, Some(4));
        // A part repeated at most once can vary as it likes.
        assert_eq!(check(r"^(a+)?b(c*|c+)?$"), Ok(()));
    }

    #[test]
    fn the_innermost_offending_repetition_is_named() {
        let refusal = refused(r"^((a+)+b)*$");
        assert_eq!((refusal.repetition.as_str(), refusal.part.as_str()), ("(a+)+", "a+"));
        // Within the budget on its own, a repetition that does not split one way still keeps an enclosing one from it.
        let refusal = refused(r"^((a{1,2}){2}b)*$");
        assert_eq!((refusal.repetition.as_str(), refusal.part.as_str(), refusal.cause), ("((a{1,2}){2}b)*", "a{1,2}", Cause::Restarts));
    }
}
