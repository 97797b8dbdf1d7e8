//! Label selectors as `kubectl get -l` reads them (apimachinery's `labels.Parse`): `k=v`,
//! `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>1`, `k<1`, joined by commas,
//! every requirement must hold. Written here rather than taken from a crate because the only
//! one (kube-rs's `Selector`) builds selectors for requests and does not parse them. Imports
//! nothing of the crate.

use std::fmt;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

/// A parsed selector: every requirement must hold (an empty one selects everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<Requirement>);

/// Why a selector does not parse, quoting the part at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError(pub String);

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SelectorError {}

fn valid_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
    });
    name_ok && prefix_ok
}

fn valid_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Splits on the commas outside parentheses.
fn split_requirements(text: &str) -> Result<Vec<&str>, SelectorError> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(SelectorError(format!("{text:?}: a ')' without its '('")));
        }
    }
    if depth != 0 {
        return Err(SelectorError(format!("{text:?}: a '(' is not closed")));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn key_of(key: &str, part: &str) -> Result<String, SelectorError> {
    let key = key.trim();
    if valid_key(key) {
        Ok(key.to_string())
    } else {
        Err(SelectorError(format!(
            "{part:?}: {key:?} is not a label key (name or prefix/name, letters, digits, - _ .)"
        )))
    }
}

fn value_of(value: &str, part: &str) -> Result<String, SelectorError> {
    let value = value.trim();
    if valid_value(value) {
        Ok(value.to_string())
    } else {
        Err(SelectorError(format!(
            "{part:?}: {value:?} is not a label value (up to 63 letters, digits, - _ .)"
        )))
    }
}

fn set_of(rest: &str, part: &str) -> Result<Vec<String>, SelectorError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError(format!("{part:?}: the values go in parentheses: (a,b)")))?;
    inner.split(',').map(|v| value_of(v, part)).collect()
}

/// Splits `key<word>rest` at a whole word (`in`, `notin`) surrounded by spaces.
fn split_word<'a>(part: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
    let at = part.find(&format!(" {word} "))?;
    Some((&part[..at], &part[at + word.len() + 2..]))
}

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::default());
        }
        let mut out = Vec::new();
        for part in split_requirements(text)? {
            let p = part.trim();
            if p.is_empty() {
                return Err(SelectorError(format!("{text:?}: an empty requirement")));
            }
            let req = if let Some((k, rest)) = split_word(p, "notin") {
                Requirement::NotIn(key_of(k, p)?, set_of(rest, p)?)
            } else if let Some((k, rest)) = split_word(p, "in") {
                Requirement::In(key_of(k, p)?, set_of(rest, p)?)
            } else if let Some((k, v)) = p.split_once("!=") {
                Requirement::NotEquals(key_of(k, p)?, value_of(v, p)?)
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                Requirement::Equals(key_of(k, p)?, value_of(v, p)?)
            } else if let Some((k, v)) = p.split_once('>') {
                let n = v.trim().parse().map_err(|_| {
                    SelectorError(format!("{p:?}: {:?} is not an integer", v.trim()))
                })?;
                Requirement::GreaterThan(key_of(k, p)?, n)
            } else if let Some((k, v)) = p.split_once('<') {
                let n = v.trim().parse().map_err(|_| {
                    SelectorError(format!("{p:?}: {:?} is not an integer", v.trim()))
                })?;
                Requirement::LessThan(key_of(k, p)?, n)
            } else if let Some(k) = p.strip_prefix('!') {
                Requirement::DoesNotExist(key_of(k, p)?)
            } else {
                Requirement::Exists(key_of(p, p)?)
            };
            out.push(req);
        }
        Ok(Self(out))
    }

    /// Whether labels (looked up by `get`) satisfy every requirement. As in Kubernetes, `!=`
    /// and `notin` hold for a pod without the label.
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
            Requirement::GreaterThan(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Requirement::LessThan(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(text: &str) -> LabelSelector {
        LabelSelector::parse(text).unwrap()
    }

    fn matches(text: &str, labels: &[(&str, &str)]) -> bool {
        sel(text).matches(|k| labels.iter().find(|(key, _)| *key == k).map(|(_, v)| *v))
    }

    #[test]
    fn selectors_parse_every_operator_kubectl_accepts() {
        assert_eq!(
            sel("app=web,tier!=db, env in (prod,staging),team notin (x),gpu,!spot,n>2,m<5,a==b").0,
            vec![
                Requirement::Equals("app".into(), "web".into()),
                Requirement::NotEquals("tier".into(), "db".into()),
                Requirement::In("env".into(), vec!["prod".into(), "staging".into()]),
                Requirement::NotIn("team".into(), vec!["x".into()]),
                Requirement::Exists("gpu".into()),
                Requirement::DoesNotExist("spot".into()),
                Requirement::GreaterThan("n".into(), 2),
                Requirement::LessThan("m".into(), 5),
                Requirement::Equals("a".into(), "b".into()),
            ]
        );
        assert_eq!(
            sel("training.kubeflow.org/job-name=llama").0,
            vec![Requirement::Equals(
                "training.kubeflow.org/job-name".into(),
                "llama".into()
            )]
        );
        assert_eq!(sel("").0, vec![]);
    }

    #[test]
    fn bad_selectors_say_which_part_is_wrong() {
        for bad in [
            "app=",
            "=web",
            "a,,b",
            "env in (a",
            "env in a,b",
            "n>x",
            "a=b c",
        ] {
            if bad == "app=" {
                // An empty value is valid: `app=` selects pods whose app label is empty.
                assert!(LabelSelector::parse(bad).is_ok());
                continue;
            }
            let err = LabelSelector::parse(bad).unwrap_err();
            assert!(!err.0.is_empty(), "{bad}");
        }
        assert!(
            LabelSelector::parse("a b=c")
                .unwrap_err()
                .0
                .contains("\"a b\"")
        );
    }

    #[test]
    fn not_equals_and_notin_hold_without_the_label_as_in_kubernetes() {
        let labels = [("app", "web"), ("env", "prod"), ("rank", "3")];
        assert!(matches("app=web,env in (prod,dev)", &labels));
        assert!(!matches("app=web,env notin (prod)", &labels));
        assert!(matches("tier!=db,team notin (x)", &labels));
        assert!(!matches("tier", &labels));
        assert!(matches("!tier,rank>2,rank<4", &labels));
        assert!(!matches("app!=web", &labels));
        assert!(matches("", &labels));
    }
}
