//! Redaction: secrets found in entry text, details, subjects and API answers become `[REDACTED]`
//! before anything is stored or exported. Owns the secret patterns; imports `model` only.
//!
//! Hand-written rules over `regex` rather than a secret-scanning crate: the scanners on crates.io
//! detect (and report) secrets in files; none rewrites a string in place while leaving the
//! surrounding words readable, which is what a timeline needs.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex, RegexSet};
use serde_json::Value;

use crate::model::incident::{FieldChange, NewEntry};

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Replaces secret-looking values in `s` with `[REDACTED]`; borrows `s` when nothing matched.
pub fn redact_str(s: &str) -> Cow<'_, str> {
    let rules = &*RULES;
    let matched = rules.set.matches(s);
    if !matched.matched_any() {
        return Cow::Borrowed(s);
    }
    let mut out = Cow::Borrowed(s);
    for index in matched.iter() {
        if let Some(changed) = rules.rules[index].apply(&out) {
            out = Cow::Owned(changed);
        }
    }
    out
}

/// Redacts every string in `v`, and replaces the whole value under a secret-ish object key.
pub fn redact_value(v: &mut Value) {
    match v {
        Value::String(s) => redact_in_place(s),
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::Object(map) => {
            // Kubernetes env vars and similar pairs: `{"name": "API_TOKEN", "value": "…"}`.
            let named_secret = map
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(is_secret_name);
            if map.keys().any(|k| has_secret(k)) {
                let old = std::mem::take(map);
                for (k, val) in old {
                    map.insert(redact_str(&k).into_owned(), val);
                }
            }
            for (key, val) in map.iter_mut() {
                if is_secret_name(key) || (named_secret && key == "value") {
                    redact_whole(val);
                } else {
                    redact_value(val);
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Redacts an entry before it is stored: summary, detail (keys and values), subject, the
/// fields an action changed and the API's answers.
pub fn redact_entry(e: &mut NewEntry) {
    redact_in_place(&mut e.summary);

    if e.detail.keys().any(|k| has_secret(k)) {
        let old = std::mem::take(&mut e.detail);
        for (k, val) in old {
            e.detail.insert(redact_str(&k).into_owned(), val);
        }
    }
    for (key, val) in e.detail.iter_mut() {
        if is_secret_name(key) {
            redact_whole(val);
        } else {
            redact_value(val);
        }
    }

    if let Some(subject) = &mut e.subject {
        redact_in_place(&mut subject.cluster);
        for part in [
            &mut subject.node,
            &mut subject.gpu,
            &mut subject.endpoint,
            &mut subject.namespace,
            &mut subject.object,
        ]
        .into_iter()
        .flatten()
        {
            redact_in_place(part);
        }
    }

    for change in &mut e.changes {
        redact_change(change);
    }

    for outcome in &mut e.outcomes {
        redact_in_place(&mut outcome.request);
        redact_in_place(&mut outcome.reason);
        redact_in_place(&mut outcome.message);
    }
}

fn redact_change(change: &mut FieldChange) {
    redact_in_place(&mut change.object);
    redact_in_place(&mut change.field);
    if is_secret_name(&change.field) || is_secret_object_data(&change.object, &change.field) {
        for value in [&mut change.before, &mut change.after]
            .into_iter()
            .flatten()
        {
            redact_whole(value);
        }
    } else {
        for value in [&mut change.before, &mut change.after]
            .into_iter()
            .flatten()
        {
            redact_value(value);
        }
    }
}

/// A Secret's `data`/`stringData` fields are secret whatever their key is called.
fn is_secret_object_data(object: &str, field: &str) -> bool {
    let kind = object.split('/').next().unwrap_or_default();
    kind.eq_ignore_ascii_case("secret")
        && ["data", "stringdata"].iter().any(|root| {
            let head = field.split(['.', '[', '/']).next().unwrap_or_default();
            head.eq_ignore_ascii_case(root)
        })
}

/// Replaces a value under a secret-ish key. A `null` stays `null`: "no token was set" is
/// worth knowing and discloses nothing.
fn redact_whole(v: &mut Value) {
    if !v.is_null() {
        *v = Value::String(REDACTED.to_owned());
    }
}

fn redact_in_place(s: &mut String) {
    if let Cow::Owned(redacted) = redact_str(s) {
        *s = redacted;
    }
}

fn has_secret(s: &str) -> bool {
    matches!(redact_str(s), Cow::Owned(_))
}

/// Words that make a name secret wherever they appear in it (`db_password`, `clientSecret`).
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "apikey",
    "privatekey",
    "accesskey",
    "secretkey",
    "credential",
    "credentials",
];

/// Words that make a name secret only as its last word: `github_token`, `basic_auth`,
/// `Proxy-Authorization`, but not `token_count`, `auth_method` or `authorization_mode`.
const SECRET_LAST_WORDS: &[&str] = &["token", "auth", "authorization", "cookie"];

/// `<word>_key` compounds that name a secret key (a bare `key` is a dedup or map key).
const SECRET_KEY_PREFIXES: &[&str] = &[
    "api",
    "private",
    "access",
    "secret",
    "signing",
    "encryption",
    "master",
    "client",
    "session",
    "account",
];

/// Words before `token` that make it an LLM serving metric, not a credential
/// (`time_to_first_token`, `time_per_output_token`, `max_token`).
const TOKEN_METRIC_WORDS: &[&str] = &[
    "first",
    "output",
    "input",
    "per",
    "next",
    "last",
    "max",
    "min",
    "inter",
    "prompt",
    "completion",
    "generated",
];

/// A last word that makes a secret-ish name a reference or a property of the secret, not the
/// secret itself (`secretName`, `password_file`, `token_ttl`).
const REFERENCE_LAST_WORDS: &[&str] = &[
    "name",
    "names",
    "ref",
    "namespace",
    "count",
    "length",
    "len",
    "limit",
    "path",
    "file",
    "type",
    "kind",
    "ttl",
    "expiry",
    "expires",
    "expiration",
    "policy",
    "rotation",
    "present",
    "set",
];

/// Whether a key, header or field name names a secret: `password`, `DB_PASSWORD`, `apiKey`,
/// `client_secret`, `x-auth-token`, `Authorization`, `spec.password`, case-insensitively.
pub fn is_secret_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 128 {
        return false;
    }
    let words = split_words(name);
    let words: Vec<&str> = words.split('_').filter(|w| !w.is_empty()).collect();
    let Some(&last) = words.last() else {
        return false;
    };
    if words.len() > 1 && REFERENCE_LAST_WORDS.contains(&last) {
        return false;
    }
    let anywhere = words.iter().any(|w| SECRET_WORDS.contains(w))
        || words
            .windows(2)
            .any(|pair| pair[1] == "key" && SECRET_KEY_PREFIXES.contains(&pair[0]));
    if anywhere {
        return true;
    }
    if !SECRET_LAST_WORDS.contains(&last) {
        return false;
    }
    let before = words.len().checked_sub(2).map(|i| words[i]);
    !(last == "token" && before.is_some_and(|w| TOKEN_METRIC_WORDS.contains(&w)))
}

/// `X-Auth-Token` → `x_auth_token`, `clientSecret` → `client_secret`, `APIKey` → `api_key`.
fn split_words(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            out.push('_');
            continue;
        }
        if i > 0 && c.is_ascii_uppercase() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// One pattern and what becomes of a match: `None` keeps it (the pattern over-matched).
type Replace = fn(&Captures<'_>, &str) -> Option<String>;

struct Rule {
    regex: Regex,
    replace: Replace,
}

impl Rule {
    /// The redacted text, or `None` when no match was replaced.
    fn apply(&self, haystack: &str) -> Option<String> {
        let mut out: Option<String> = None;
        let mut copied = 0;
        for caps in self.regex.captures_iter(haystack) {
            let Some(whole) = caps.get(0) else { continue };
            let Some(replacement) = (self.replace)(&caps, haystack) else {
                continue;
            };
            let buf = out.get_or_insert_with(|| String::with_capacity(haystack.len()));
            buf.push_str(&haystack[copied..whole.start()]);
            buf.push_str(&replacement);
            copied = whole.end();
        }
        let mut buf = out?;
        buf.push_str(&haystack[copied..]);
        Some(buf)
    }
}
struct Rules {
    /// The same patterns as `rules`, in order: one pass tells which rules can apply.
    set: RegexSet,
    rules: Vec<Rule>,
}

static RULES: LazyLock<Rules> = LazyLock::new(|| {
    let specs: Vec<(&str, Replace)> = vec![
        // PEM private keys, terminated or cut off.
        (
            r"(?s)(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----)(?:(.*?)(-----END [A-Z0-9 ]*PRIVATE KEY-----)|([A-Za-z0-9+/=\s\\]*))",
            replace_pem,
        ),
        // Authorization-like headers: the value runs to the end of the line or the quote.
        (
            r#"(?i)\b((?:proxy-)?authorization|set-cookie|cookie|x-api-key|x-auth-token)(["']?[ \t]*[:=][ \t]*["']?)([^\r\n"']+)"#,
            replace_header,
        ),
        (
            r"(?i)\b(bearer|basic)([ \t]+)([A-Za-z0-9\-._~+/]{8,}=*)",
            replace_scheme_token,
        ),
        // URL userinfo: keep the user, hide the password.
        (
            r#"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@"'<>]*):([^@\s/"'<>]+)@"#,
            replace_userinfo,
        ),
        (
            r#"(?i)([?&;](?:token|access_token|refresh_token|id_token|auth_token|api_key|apikey|api-key|key|secret|client_secret|password|passwd|pwd|signature|sig|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential)=)([^&#\s"'<>]+)"#,
            replace_query,
        ),
        // `name=value`, `name: value`, `"name": "value"` with a secret-ish name.
        (
            r#"(?i)\b([a-z0-9_.\-]*(?:pass|secret|token|api_?key|private_?key|access_?key|(?:signing|encryption|master|client|session|account)[_\-.]?key|credential|auth|cookie)[a-z0-9_.\-]*)(["']?)([ \t]*([:=])[ \t]*)(?:"((?:[^"\\\r\n]|\\.)*)"|'([^'\r\n]*)'|([^\s,;&"'<>(){}\]:][^\s,;&"'<>(){}\]]*))"#,
            replace_pair,
        ),
        (
            r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",
            replace_all_of_it,
        ),
        (r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", replace_all_of_it),
        (
            r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})",
            replace_all_of_it,
        ),
        (r"\bxox[abprs]-[A-Za-z0-9\-]{10,}", replace_all_of_it),
        // OpenAI/Anthropic-style and Hugging Face keys: common on AI infrastructure.
        (
            r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{20,}|hf_[A-Za-z0-9]{30,})",
            replace_all_of_it,
        ),
    ];
    let mut rules = Vec::with_capacity(specs.len());
    let mut patterns = Vec::with_capacity(specs.len());
    for (pattern, replace) in specs {
        // The patterns are constants: a failure is a bug caught by every test.
        #[allow(clippy::expect_used)]
        let regex = Regex::new(pattern).expect("redaction pattern compiles");
        patterns.push(pattern);
        rules.push(Rule { regex, replace });
    }
    #[allow(clippy::expect_used)]
    let set = RegexSet::new(patterns).expect("redaction patterns compile");
    Rules { set, rules }
});

fn group<'h>(caps: &Captures<'h>, i: usize) -> &'h str {
    caps.get(i).map_or("", |m| m.as_str())
}

fn replace_all_of_it(_: &Captures<'_>, _: &str) -> Option<String> {
    Some(REDACTED.to_owned())
}

fn replace_pem(caps: &Captures<'_>, _: &str) -> Option<String> {
    let begin = group(caps, 1);
    match caps.get(3) {
        Some(_) if group(caps, 2) == REDACTED => None,
        Some(end) => Some(format!("{begin}{REDACTED}{}", end.as_str())),
        // Cut off before the END line: nothing after BEGIN means nothing to hide.
        None if group(caps, 4).trim().is_empty() => None,
        None => Some(format!("{begin}{REDACTED}")),
    }
}

fn replace_header(caps: &Captures<'_>, _: &str) -> Option<String> {
    let value = group(caps, 3);
    if value.trim() == REDACTED || is_placeholder(value) {
        return None;
    }
    Some(format!("{}{}{REDACTED}", group(caps, 1), group(caps, 2)))
}

/// `Authorization: Bearer <token> header is required`: a message saying what to send names a
/// placeholder, not a secret, and a refusal's reason must stay readable.
fn is_placeholder(value: &str) -> bool {
    let mut words = value.split_whitespace();
    let first = words.next().unwrap_or_default();
    let credential = if ["bearer", "basic"]
        .iter()
        .any(|scheme| first.eq_ignore_ascii_case(scheme))
    {
        words.next().unwrap_or_default()
    } else {
        first
    };
    credential.len() > 2 && credential.starts_with('<') && credential.ends_with('>')
}

/// `Bearer <token>`, `Basic <b64>`, but not `basic checks` or `the bearer of bad news`.
fn replace_scheme_token(caps: &Captures<'_>, _: &str) -> Option<String> {
    looks_like_token(group(caps, 3))
        .then(|| format!("{}{}{REDACTED}", group(caps, 1), group(caps, 2)))
}

/// Random-looking: a digit or a token symbol, or upper and lower case mixed past the first
/// letter. Plain words (`authentication`, `Configuration`) are not tokens.
fn looks_like_token(s: &str) -> bool {
    let mut upper = false;
    let mut lower = false;
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_digit() || "+/=-_.~".contains(c) {
            return true;
        }
        upper |= i > 0 && c.is_ascii_uppercase();
        lower |= c.is_ascii_lowercase();
    }
    upper && lower
}

fn replace_userinfo(caps: &Captures<'_>, _: &str) -> Option<String> {
    (group(caps, 2) != REDACTED).then(|| format!("{}:{REDACTED}@", group(caps, 1)))
}

fn replace_query(caps: &Captures<'_>, _: &str) -> Option<String> {
    (group(caps, 2) != REDACTED).then(|| format!("{}{REDACTED}", group(caps, 1)))
}

fn replace_pair(caps: &Captures<'_>, haystack: &str) -> Option<String> {
    if !is_secret_name(group(caps, 1)) {
        return None;
    }
    let head = || format!("{}{}{}", group(caps, 1), group(caps, 2), group(caps, 3));
    if let Some(quoted) = caps.get(5) {
        return (quoted.as_str() != REDACTED).then(|| format!("{}\"{REDACTED}\"", head()));
    }
    if let Some(quoted) = caps.get(6) {
        return (quoted.as_str() != REDACTED).then(|| format!("{}'{REDACTED}'", head()));
    }
    let bare = caps.get(7)?;
    let value = bare.as_str();
    if value.starts_with("[REDACTED")
        || value.starts_with("-----BEGIN")
        || is_placeholder(&haystack[bare.start()..])
    {
        return None;
    }
    // `failed to refresh token: connection refused` is prose, not a pair: after a colon, a
    // plain lowercase word followed by more words stays.
    let after = &haystack[bare.end()..];
    let prose = group(caps, 4) == ":"
        && value.chars().all(|c| c.is_ascii_lowercase())
        && after
            .strip_prefix(' ')
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_lowercase()));
    (!prose).then(|| format!("{}{REDACTED}", head()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::incident::{Actor, ApiOutcome, EntryKind, Origin};
    use crate::model::signal::Subject;
    use chrono::Utc;
    use serde_json::json;

    fn r(s: &str) -> String {
        redact_str(s).into_owned()
    }

    #[test]
    fn a_refusals_reason_naming_the_header_to_send_stays_readable() {
        assert_clean("an Authorization: Bearer <token> header is required");
        assert_eq!(
            r("Authorization: Bearer s3cr3t-t0ken-value"),
            "Authorization: [REDACTED]"
        );
    }

    fn assert_clean(s: &str) {
        assert!(
            matches!(redact_str(s), Cow::Borrowed(_)),
            "{s:?} was redacted to {:?}",
            redact_str(s)
        );
    }

    #[test]
    fn clean_strings_are_borrowed_not_copied() {
        for s in [
            "",
            "node gpu-node-3 NotReady for 5m",
            "cordoned node/gpu-node-3 after Xid 79",
            "POST /api/v1/namespaces/ml/pods/trainer-0/eviction",
        ] {
            assert_clean(s);
        }
    }

    #[test]
    fn authorization_headers_lose_their_value_to_the_end_of_the_line() {
        assert_eq!(
            r("Authorization: Bearer abc.def.ghi\nnext line"),
            "Authorization: [REDACTED]\nnext line"
        );
        assert_eq!(
            r("authorization: Basic dXNlcjpwYXNz"),
            "authorization: [REDACTED]"
        );
        assert_eq!(
            r("Proxy-Authorization: Negotiate YIIabc"),
            "Proxy-Authorization: [REDACTED]"
        );
        assert_eq!(
            r(r#"{"Authorization": "Bearer s3cr3t", "Accept": "json"}"#),
            r#"{"Authorization": "[REDACTED]", "Accept": "json"}"#
        );
        assert_eq!(
            r("Cookie: session=abc123; theme=dark"),
            "Cookie: [REDACTED]"
        );
    }

    #[test]
    fn bearer_and_basic_credentials_are_redacted_in_running_text() {
        assert_eq!(
            r("curl -H 'x: Bearer tok_9f8e7d6c5b' url"),
            "curl -H 'x: Bearer [REDACTED]' url"
        );
        assert_eq!(
            r("used basic dXNlcjpwYXNzd29yZA== creds"),
            "used basic [REDACTED] creds"
        );
    }

    #[test]
    fn bearer_and_basic_as_ordinary_words_stay() {
        assert_clean("basic checks passed on all nodes");
        assert_clean("Basic authentication is disabled");
        assert_clean("the bearer of bad news");
    }

    #[test]
    fn url_passwords_are_redacted_and_users_kept() {
        assert_eq!(
            r("fetch https://alice:hunter2@registry.example.com/v2/ failed"),
            "fetch https://alice:[REDACTED]@registry.example.com/v2/ failed"
        );
        assert_eq!(
            r("redis://:p4ss@cache:6379/0"),
            "redis://:[REDACTED]@cache:6379/0"
        );
        assert_clean("https://registry.example.com:5000/v2/ and user@example.com");
    }

    #[test]
    fn secret_query_parameters_are_redacted_whatever_their_case() {
        assert_eq!(
            r("GET https://h/x?access_token=abc123&page=2"),
            "GET https://h/x?access_token=[REDACTED]&page=2"
        );
        assert_eq!(
            r(
                "https://b.s3.amazonaws.com/o?X-Amz-Credential=AK%2F2026&X-Amz-Signature=deadbeef&X-Amz-Expires=60"
            ),
            "https://b.s3.amazonaws.com/o?X-Amz-Credential=[REDACTED]&X-Amz-Signature=[REDACTED]&X-Amz-Expires=60"
        );
        assert_eq!(
            r("/q?KEY=k1&sig=s1&pwd=p1"),
            "/q?KEY=[REDACTED]&sig=[REDACTED]&pwd=[REDACTED]"
        );
        assert_eq!(
            r("/cb?client_secret=zz&apikey=yy&Token=xx"),
            "/cb?client_secret=[REDACTED]&apikey=[REDACTED]&Token=[REDACTED]"
        );
        assert_clean("/q?monkey=3&keyboard=us&page=2");
    }

    #[test]
    fn secret_named_pairs_lose_their_values() {
        assert_eq!(
            r("DB_PASSWORD=hunter2 retrying"),
            "DB_PASSWORD=[REDACTED] retrying"
        );
        assert_eq!(r("password: hunter2"), "password: [REDACTED]");
        assert_eq!(
            r(r#"{"client_secret": "abc\"def"}"#),
            r#"{"client_secret": "[REDACTED]"}"#
        );
        assert_eq!(r("apiKey='k-123'"), "apiKey='[REDACTED]'");
        assert_eq!(
            r("github_token=foo, node=gpu-1"),
            "github_token=[REDACTED], node=gpu-1"
        );
        assert_eq!(
            r("aws_secret_access_key = wJalrXUtnFEMI"),
            "aws_secret_access_key = [REDACTED]"
        );
        assert_eq!(r("private_key: abc"), "private_key: [REDACTED]");
        assert_eq!(r("credentials=user:pw"), "credentials=[REDACTED]");
        assert_eq!(r("x-auth-token: t0k"), "x-auth-token: [REDACTED]");
    }

    #[test]
    fn words_that_merely_contain_a_secret_word_stay() {
        assert_clean("tokenizer=bpe keys pressed: 3 monkey=3");
        assert_clean("time_to_first_token: 0.35 time_per_output_token=0.02 max_tokens=4096");
        assert_clean("token_count=12 auth_method=oidc passed: 3");
        assert_clean("secretName: db-creds password_file=/run/secrets/db");
        assert_clean("dedup key: node.not_ready key=gpu.xid");
        assert_clean("node gpu-node-3 (passthrough) authorization_mode=RBAC");
    }

    #[test]
    fn a_secret_word_in_prose_before_a_colon_keeps_the_prose() {
        assert_clean("failed to refresh token: connection refused");
        assert_eq!(
            r("token: abc123 for node-7"),
            "token: [REDACTED] for node-7"
        );
    }

    #[test]
    fn jwts_are_redacted() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(r(&format!("id {jwt} seen")), "id [REDACTED] seen");
    }

    #[test]
    fn cloud_and_chat_tokens_are_redacted() {
        assert_eq!(r("key AKIAIOSFODNN7EXAMPLE used"), "key [REDACTED] used");
        assert_eq!(r("ASIAABCDEFGHIJKLMNOP"), "[REDACTED]");
        assert_clean("AKIA is a prefix, AKIAshort too");
        assert_eq!(
            r("ghp_0123456789abcdefABCDEF0123456789abcd gho_aaaaaaaaaaaaaaaaaaaaaaaa"),
            "[REDACTED] [REDACTED]"
        );
        assert_eq!(r("ghs_abcdefghijklmnopqrstuvwx!"), "[REDACTED]!");
        assert_eq!(
            r("github_pat_11ABCDEFG0123456789_abcdefghijkl"),
            "[REDACTED]"
        );
        assert_eq!(
            r("slack xoxb-1234567890-abcdefghij ok"),
            "slack [REDACTED] ok"
        );
        assert_eq!(r("xoxp-1234-5678-abcdefabcdef"), "[REDACTED]");
        assert_eq!(
            r("OPENAI sk-proj-abcdefghijklmnopqrstuvwxyz012"),
            "OPENAI [REDACTED]"
        );
        assert_eq!(r("hf_abcdefghijklmnopqrstuvwxyzABCDEFGH"), "[REDACTED]");
    }

    #[test]
    fn pem_private_key_blocks_are_redacted_between_their_markers() {
        let pem = "cert:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nxyz==\n-----END RSA PRIVATE KEY-----\ndone";
        assert_eq!(
            r(pem),
            "cert:\n-----BEGIN RSA PRIVATE KEY-----[REDACTED]-----END RSA PRIVATE KEY-----\ndone"
        );
        assert_eq!(
            r("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq"),
            "-----BEGIN PRIVATE KEY-----[REDACTED]"
        );
        assert_clean("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
    }

    #[test]
    fn redaction_is_idempotent() {
        for s in [
            "Authorization: Bearer abc123def",
            "https://u:p@h/x?token=t&sig=s password=x",
            "-----BEGIN EC PRIVATE KEY-----\nabc\n-----END EC PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\nabc",
            r#"{"password": "x"} AKIAIOSFODNN7EXAMPLE"#,
        ] {
            let once = r(s);
            assert!(matches!(redact_str(&once), Cow::Borrowed(_)), "{once:?}");
        }
    }

    #[test]
    fn secret_names_are_recognised_by_word() {
        for name in [
            "password",
            "DB_PASSWORD",
            "apiKey",
            "APIKey",
            "x-api-key",
            "client_secret",
            "clientSecret",
            "Authorization",
            "Proxy-Authorization",
            "token",
            "refresh_token",
            "basic_auth",
            "spec.password",
            "aws_access_key_id",
            "privateKey",
            "credentials",
            "password_hash",
        ] {
            assert!(is_secret_name(name), "{name} should be secret");
        }
        for name in [
            "key",
            "dedup_key",
            "monkey",
            "tokenizer",
            "max_tokens",
            "time_to_first_token",
            "token_count",
            "auth_method",
            "secretName",
            "passed",
            "node",
            "",
        ] {
            assert!(!is_secret_name(name), "{name} should not be secret");
        }
    }

    #[test]
    fn json_values_under_secret_keys_are_replaced_whole() {
        let mut v = json!({
            "password": 1234,
            "token": {"nested": true},
            "apiKey": "k",
            "authorization": ["Bearer x"],
            "empty_token": null,
            "node": "gpu-node-3",
            "dedup_key": "gpu.xid",
            "url": "https://u:pw@h/x",
            "list": [{"client_secret": "s"}, "Bearer abcdef123456"],
            "env": [{"name": "HF_TOKEN", "value": "hf_x"}, {"name": "MODE", "value": "fast"}],
        });
        redact_value(&mut v);
        assert_eq!(
            v,
            json!({
                "password": "[REDACTED]",
                "token": "[REDACTED]",
                "apiKey": "[REDACTED]",
                "authorization": "[REDACTED]",
                "empty_token": null,
                "node": "gpu-node-3",
                "dedup_key": "gpu.xid",
                "url": "https://u:[REDACTED]@h/x",
                "list": [{"client_secret": "[REDACTED]"}, "Bearer [REDACTED]"],
                "env": [{"name": "HF_TOKEN", "value": "[REDACTED]"}, {"name": "MODE", "value": "fast"}],
            })
        );
    }

    #[test]
    fn entries_are_redacted_in_every_text_field() {
        let mut e = NewEntry::new(
            EntryKind::Action,
            Actor::User("alice".into()),
            Origin::Tui,
            "patched with password=hunter2",
        )
        .about(Subject {
            cluster: "prod".into(),
            endpoint: Some("https://svc:pw@infer.example.com/v1".into()),
            ..Subject::default()
        });
        e.detail.insert("Token".into(), json!("t"));
        e.detail.insert("note".into(), json!("see ?sig=abc"));
        e.detail.insert("count".into(), json!(3));
        e.changes.push(FieldChange {
            object: "secret/ml/hf".into(),
            field: "data.HF_HOME".into(),
            before: Some(json!("aGVsbG8=")),
            after: None,
        });
        e.changes.push(FieldChange {
            object: "deployment/ml/infer".into(),
            field: "spec.template.metadata.annotations.apiKey".into(),
            before: Some(json!("old")),
            after: Some(json!("new")),
        });
        e.changes.push(FieldChange {
            object: "node/gpu-node-3".into(),
            field: "spec.unschedulable".into(),
            before: Some(json!(false)),
            after: Some(json!(true)),
        });
        e.outcomes.push(ApiOutcome {
            at: Utc::now(),
            request: "GET https://api/x?token=abc".into(),
            status: 401,
            reason: "Unauthorized".into(),
            message: "bad Authorization: Bearer abcdef12345".into(),
            pdb: None,
        });

        redact_entry(&mut e);

        assert_eq!(e.summary, "patched with password=[REDACTED]");
        assert_eq!(
            e.subject.as_ref().and_then(|s| s.endpoint.as_deref()),
            Some("https://svc:[REDACTED]@infer.example.com/v1")
        );
        assert_eq!(e.detail["Token"], json!("[REDACTED]"));
        assert_eq!(e.detail["note"], json!("see ?sig=[REDACTED]"));
        assert_eq!(e.detail["count"], json!(3));
        assert_eq!(e.changes[0].before, Some(json!("[REDACTED]")));
        assert_eq!(e.changes[0].after, None);
        assert_eq!(e.changes[1].before, Some(json!("[REDACTED]")));
        assert_eq!(e.changes[1].after, Some(json!("[REDACTED]")));
        assert_eq!(e.changes[2].after, Some(json!(true)));
        assert_eq!(e.outcomes[0].request, "GET https://api/x?token=[REDACTED]");
        assert_eq!(e.outcomes[0].reason, "Unauthorized");
        assert_eq!(e.outcomes[0].message, "bad Authorization: [REDACTED]");
    }
}
