//! A small path language for values in config files.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Where a value sits: a path of element steps from the root, optionally ending in an
/// attribute.
///
/// - `configuration/appSettings/add[@key='MOMServer']/@value`: the `value` attribute of the
///   `add` elements whose `key` attribute is `MOMServer`;
/// - `Configuration/Extensions/Security/Extension/Configuration/ServerName`: that element's
///   text;
/// - `//ServerName`, `Configuration//ServerName`: `//` skips any number of levels;
/// - `*` matches any element name; `[@name]` requires an attribute to be present.
///
/// Names are compared exactly, as XML does. Elements inside comments or CDATA are text, not
/// elements, and never match.
///
/// ```
/// use opsmgr_configfix::Target;
/// let t: Target = "configuration/appSettings/add[@key='MOMServer']/@value".parse()?;
/// assert_eq!(t.to_string(), "configuration/appSettings/add[@key='MOMServer']/@value");
/// assert!("configuration/add[@key=MOMServer]".parse::<Target>().is_err());
/// # Ok::<(), opsmgr_configfix::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    source: String,
    pub(crate) steps: Vec<Step>,
    pub(crate) attribute: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    /// Preceded by `//`: any number of levels may stand between this step and the previous.
    pub(crate) descendant: bool,
    /// `None` for `*`.
    pub(crate) name: Option<String>,
    pub(crate) predicates: Vec<Predicate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Predicate {
    pub(crate) attribute: String,
    /// `None`: the attribute only has to be present.
    pub(crate) value: Option<String>,
}

/// The most steps a target may have (one bit each while matching).
const MAX_STEPS: usize = 64;

impl Target {
    /// The number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether the target has no steps (never true for a parsed target).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The last step's element name, if it is not `*`.
    pub fn element_name(&self) -> Option<&str> {
        self.steps.last()?.name.as_deref()
    }

    /// Whether the target is an attribute (ends in `/@name`) rather than element text.
    pub fn is_attribute(&self) -> bool {
        self.attribute.is_some()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn is_name_char(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(
            c,
            '/' | '[' | ']' | '@' | '=' | '"' | '\'' | '<' | '>' | '&'
        )
}

impl FromStr for Target {
    type Err = Error;

    fn from_str(source: &str) -> Result<Self, Error> {
        let fail = |reason: &str| Error::Target {
            target: source.to_owned(),
            reason: reason.to_owned(),
        };
        let name = |s: &str| -> Result<(String, usize), Error> {
            let len = s.find(|c| !is_name_char(c)).unwrap_or(s.len());
            if len == 0 {
                return Err(fail("expected a name"));
            }
            Ok((s[..len].to_owned(), len))
        };
        let mut rest = source;
        let mut descendant = if let Some(r) = rest.strip_prefix("//") {
            rest = r;
            true
        } else {
            rest = rest.strip_prefix('/').unwrap_or(rest);
            false
        };
        let mut steps = Vec::new();
        let mut attribute = None;
        loop {
            if let Some(r) = rest.strip_prefix('@') {
                if steps.is_empty() || descendant {
                    return Err(fail("an attribute must follow an element step, after '/'"));
                }
                let (attr, len) = name(r)?;
                if len != r.len() {
                    return Err(fail("the attribute must be the last step"));
                }
                attribute = Some(attr);
                break;
            }
            let (step_name, len) = if let Some(r) = rest.strip_prefix('*') {
                (None, r.len())
            } else {
                let (n, len) = name(rest)?;
                (Some(n), rest.len() - len)
            };
            rest = &rest[rest.len() - len..];
            let mut predicates = Vec::new();
            while let Some(r) = rest.strip_prefix('[') {
                let r = r
                    .strip_prefix('@')
                    .ok_or_else(|| fail("a predicate is [@name] or [@name='value']"))?;
                let (attr, len) = name(r)?;
                let r = &r[len..];
                let (value, r) = if let Some(r) = r.strip_prefix('=') {
                    let quote = r
                        .chars()
                        .next()
                        .filter(|&q| q == '\'' || q == '"')
                        .ok_or_else(|| fail("a predicate's value must be quoted"))?;
                    let r = &r[1..];
                    let end = r
                        .find(quote)
                        .ok_or_else(|| fail("unterminated quoted value"))?;
                    (Some(r[..end].to_owned()), &r[end + 1..])
                } else {
                    (None, r)
                };
                rest = r.strip_prefix(']').ok_or_else(|| fail("expected ']'"))?;
                predicates.push(Predicate {
                    attribute: attr,
                    value,
                });
            }
            steps.push(Step {
                descendant,
                name: step_name,
                predicates,
            });
            if steps.len() > MAX_STEPS {
                return Err(fail("more than 64 steps"));
            }
            if rest.is_empty() {
                break;
            }
            if let Some(r) = rest.strip_prefix("//") {
                rest = r;
                descendant = true;
            } else if let Some(r) = rest.strip_prefix('/') {
                rest = r;
                descendant = false;
            } else {
                return Err(fail(&format!("unexpected '{rest}'")));
            }
            if rest.is_empty() {
                return Err(fail("the path ends in '/'"));
            }
        }
        Ok(Target {
            source: source.to_owned(),
            steps,
            attribute,
        })
    }
}

/// Whether a stack of `depth` elements matches the steps: `mask(d)` has bit `i` set when
/// the element at depth `d` (0 = root) satisfies step `i` on its own (name and predicates).
pub(crate) fn path_matches(steps: &[Step], depth: usize, mask: impl Fn(usize) -> u64) -> bool {
    fn fits(steps: &[Step], mask: &dyn Fn(usize) -> u64, step: usize, depth: usize) -> bool {
        if mask(depth) & (1 << step) == 0 {
            return false;
        }
        if step == 0 {
            return steps[0].descendant || depth == 0;
        }
        if steps[step].descendant {
            (0..depth).rev().any(|d| fits(steps, mask, step - 1, d))
        } else {
            depth > 0 && fits(steps, mask, step - 1, depth - 1)
        }
    }
    depth > 0 && !steps.is_empty() && fits(steps, &mask, steps.len() - 1, depth - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Target {
        s.parse().unwrap()
    }

    #[test]
    fn parses_the_config_targets() {
        let t = parse("configuration/appSettings/add[@key='MOMServer']/@value");
        assert_eq!(t.steps.len(), 3);
        assert_eq!(t.attribute.as_deref(), Some("value"));
        assert_eq!(
            t.steps[2].predicates,
            [Predicate {
                attribute: "key".into(),
                value: Some("MOMServer".into())
            }]
        );
        let t = parse("//Extension[@Name][@Type=\"a'b\"]/Configuration//ServerName");
        assert!(t.steps[0].descendant && !t.steps[1].descendant && t.steps[2].descendant);
        assert_eq!(t.steps[0].predicates[1].value.as_deref(), Some("a'b"));
        assert_eq!(parse("/a/*/c").steps[1].name, None);
    }

    #[test]
    fn refuses_bad_paths_with_the_reason() {
        let reason = |s: &str| match s.parse::<Target>() {
            Err(Error::Target { reason, .. }) => reason,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(reason(""), "expected a name");
        assert_eq!(reason("a/"), "the path ends in '/'");
        assert_eq!(reason("a/@v/b"), "the attribute must be the last step");
        assert_eq!(
            reason("@v"),
            "an attribute must follow an element step, after '/'"
        );
        assert_eq!(reason("a[@k=v]"), "a predicate's value must be quoted");
        assert_eq!(reason("a[@k='v"), "unterminated quoted value");
        assert_eq!(reason("a[k]"), "a predicate is [@name] or [@name='value']");
        assert_eq!(reason("a b"), "unexpected ' b'");
    }

    fn matches(t: &Target, masks: &[u64]) -> bool {
        path_matches(&t.steps, masks.len(), |d| masks[d])
    }

    #[test]
    fn matching_with_descendants() {
        let t = parse("a//c");
        // a > b > c: bits for step 0 (a) and step 1 (c).
        assert!(matches(&t, &[0b01, 0b00, 0b10]));
        assert!(matches(&t, &[0b01, 0b10]));
        assert!(!matches(&t, &[0b00, 0b01, 0b10]), "a must be the root");
        let t = parse("a/c");
        assert!(!matches(&t, &[0b01, 0b00, 0b10]));
        let t = parse("//c");
        assert!(matches(&t, &[0, 0, 0b1]));
    }
}
