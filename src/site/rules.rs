//! Path rules from the configuration file: what to do for request paths that match a
//! glob — extra response headers, a redirect, an internal rewrite, a single-page-app
//! fallback, IP allow/deny lists — plus site-wide custom error pages and a
//! security-headers preset.
//!
//! Rules are data; [`crate::site::router`] applies them around the one handler. With no
//! rules configured nothing here runs.

use std::net::IpAddr;

use http::header::{HeaderName, HeaderValue};
use http::StatusCode;
use ipnet::IpNet;

use crate::handlers::Handler;
use crate::site::auth::Users;
use crate::site::cors::Cors;
use std::sync::Arc;

/// A path pattern: `*` matches within one segment, `**` across segments; each
/// wildcard captures what it matched, available to redirects and rewrites as `{1}`,
/// `{2}`, …. A pattern ending in `/` matches everything below that prefix. `/**/`
/// also matches a single `/` (no folder at all), as in gitignore: `/**/*.cgi`
/// matches `/x.cgi` (its `**` then captures nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    parts: Vec<Part>,
    /// The pattern with its first `/**/` as `/`, and the number of that `**`'s
    /// capture: tried when the pattern itself does not match.
    no_folder: Option<(Box<Glob>, usize)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Star,
    DoubleStar,
}

impl Glob {
    /// Parses a pattern; it must start with `/`.
    pub fn parse(pattern: &str) -> Result<Glob, String> {
        if !pattern.starts_with('/') {
            return Err(format!("path pattern {pattern:?} must start with /"));
        }
        // Two wildcards side by side match nothing the first alone would not, and
        // their captures could not be told apart.
        if pattern.contains("***") {
            return Err(format!(
                "path pattern {pattern:?}: \"***\" is not a wildcard (\"*\" within a segment, \"**\" across)"
            ));
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '*' {
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                if chars.peek() == Some(&'*') {
                    chars.next();
                    parts.push(Part::DoubleStar);
                } else {
                    parts.push(Part::Star);
                }
            } else {
                literal.push(c);
            }
        }
        if pattern.ends_with('/') {
            parts.push(Part::Literal(literal));
            parts.push(Part::DoubleStar);
        } else if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        let no_folder = match pattern.find("/**/") {
            Some(at) => {
                // Wildcards before it, as parsed: `**` is one, a lone `*` one.
                let capture = pattern[..at]
                    .split(|c| c != '*')
                    .map(|run| run.len().div_ceil(2))
                    .sum();
                let without = format!("{}{}", &pattern[..at], &pattern[at + 3..]);
                Some((Box::new(Glob::parse(&without)?), capture))
            }
            None => None,
        };
        Ok(Glob {
            pattern: pattern.to_string(),
            parts,
            no_folder,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// How many captures a match yields (one per `*` or `**`, and the implicit `**`
    /// of a trailing `/`).
    pub fn wildcards(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| !matches!(p, Part::Literal(_)))
            .count()
    }

    /// The folder a pattern of the form `/folder/**` covers (`/folder/`), if it is
    /// one.
    pub fn folder_prefix(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Literal(prefix), Part::DoubleStar]
                if prefix.len() > 1 && prefix.ends_with('/') =>
            {
                Some(prefix)
            }
            _ => None,
        }
    }

    /// Whether the pattern may match a path strictly inside `folder` (which ends in
    /// `/`): its text before the first wildcard is inside the folder, or, with a
    /// wildcard after it, leads to the folder. Errs on the side of yes.
    pub fn may_match_below(&self, folder: &str) -> bool {
        let (lead, wild) = match self.parts.as_slice() {
            [Part::Literal(lead)] => (lead.as_str(), false),
            [Part::Literal(lead), ..] => (lead.as_str(), true),
            _ => ("", true),
        };
        if wild {
            lead.starts_with(folder) || folder.starts_with(lead)
        } else {
            lead.len() > folder.len() && lead.starts_with(folder)
        }
    }

    /// Whether the pattern matches everything inside `folder` (which ends in `/`):
    /// it is `/prefix/**` (or `/prefix/`) with the folder at or below the prefix.
    pub fn covers_below(&self, folder: &str) -> bool {
        match self.parts.as_slice() {
            [Part::Literal(prefix), Part::DoubleStar] => {
                prefix.ends_with('/') && folder.starts_with(prefix.as_str())
            }
            _ => false,
        }
    }

    /// The name ending a pattern of the form `…/*.cgi` (`.cgi`): what the last
    /// segment of every path it matches ends with.
    pub fn name_suffix(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [.., Part::Star, Part::Literal(suffix)] if !suffix.contains('/') => Some(suffix),
            _ => None,
        }
    }

    /// The captures if `path` matches.
    ///
    /// Runs in O(parts × path length) whatever the pattern: a table of which suffixes
    /// of the path each tail of the pattern can match is filled from the end, then the
    /// shortest match of each wildcard is read off it. (Backtracking would be
    /// exponential in the number of `**`, on request paths of up to 8 KiB.)
    pub fn captures<'a>(&self, path: &'a str) -> Option<Vec<&'a str>> {
        self.captures_here(path).or_else(|| {
            let (without, capture) = self.no_folder.as_ref()?;
            let mut caps = without.captures(path)?;
            caps.insert(*capture, &path[..0]);
            Some(caps)
        })
    }

    /// [`Glob::captures`] of the pattern as written.
    fn captures_here<'a>(&self, path: &'a str) -> Option<Vec<&'a str>> {
        // The common shapes need no table: a folder prefix (`/api/`), or a path.
        match self.parts.as_slice() {
            [Part::Literal(prefix), Part::DoubleStar] => {
                return path.strip_prefix(prefix.as_str()).map(|rest| vec![rest]);
            }
            [Part::Literal(whole)] => return (path == whole).then(Vec::new),
            _ => {}
        }
        if let Some(Part::Literal(first)) = self.parts.first() {
            if !path.starts_with(first.as_str()) {
                return None;
            }
        }
        let bytes = path.as_bytes();
        let n = bytes.len();
        let m = self.parts.len();
        // next[i][p]: the smallest q >= p where parts[i..] matches path[q..], or NONE.
        const NONE: usize = usize::MAX;
        let mut next = vec![vec![NONE; n + 2]; m + 1];
        // segment_end[p]: where the segment at p ends (the next `/`, or the end).
        let mut segment_end = vec![n; n + 1];
        for p in (0..n).rev() {
            segment_end[p] = if bytes[p] == b'/' {
                p
            } else {
                segment_end[p + 1]
            };
        }
        // The empty tail of the pattern matches only the empty tail of the path.
        next[m][..=n].fill(n);
        for i in (0..m).rev() {
            let (below, row) = {
                let (head, tail) = next.split_at_mut(i + 1);
                (&tail[0], &mut head[i])
            };
            let mut can = vec![false; n + 1];
            for p in 0..=n {
                if !path.is_char_boundary(p) {
                    continue;
                }
                can[p] = match &self.parts[i] {
                    Part::Literal(lit) => {
                        path[p..].starts_with(lit.as_str()) && below[p + lit.len()] == p + lit.len()
                    }
                    Part::DoubleStar => below[p] != NONE,
                    Part::Star => below[p] != NONE && below[p] <= segment_end[p],
                };
            }
            for p in (0..=n).rev() {
                row[p] = if can[p] { p } else { row[p + 1] };
            }
        }
        if next[0][0] != 0 {
            return None;
        }
        let mut caps = Vec::new();
        let mut p = 0;
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Literal(lit) => p += lit.len(),
                Part::Star | Part::DoubleStar => {
                    let end = next[i + 1][p];
                    caps.push(&path[p..end]);
                    p = end;
                }
            }
        }
        Some(caps)
    }
}

/// The capture numbers `{n}` that `template` refers to, as [`expand`] reads them.
pub fn placeholders(template: &str) -> impl Iterator<Item = usize> + '_ {
    template.split('{').skip(1).filter_map(|after| {
        let close = after.find('}')?;
        after[..close].parse().ok()
    })
}

/// Fills `{1}`, `{2}`… in `template` from `caps`.
pub fn expand<S: AsRef<str>>(template: &str, caps: &[S]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').and_then(|close| {
            let n: usize = after[..close].parse().ok()?;
            Some((n, close))
        }) {
            Some((n, close)) => {
                out.push_str(caps.get(n.wrapping_sub(1)).map_or("", AsRef::as_ref));
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A redirect action.
#[derive(Debug, Clone)]
pub struct Redirect {
    /// Target template with `{n}` captures.
    pub to: String,
    /// 301, 302, 307 or 308.
    pub status: StatusCode,
}

/// One `[[rule]]`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The handler for matching requests, when this rule names one.
    pub handler: Option<Handler>,
    /// Which paths it applies to.
    pub path: Glob,
    /// Response headers added (replacing any of the same name).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Answer with a redirect.
    pub redirect: Option<Redirect>,
    /// Serve another path instead (template with captures).
    pub rewrite: Option<String>,
    /// For requests that want HTML and find nothing: serve this path with 200.
    pub spa: Option<String>,
    /// Only these networks may access (empty: everyone).
    pub allow: Vec<IpNet>,
    /// These networks may not.
    pub deny: Vec<IpNet>,
    /// Cross-origin policy.
    pub cors: Option<Cors>,
    /// Who must be authenticated (HTTP Basic) to access.
    pub auth: Option<AuthRule>,
    /// Whether uploads and other changes are allowed (overrides `--upload`).
    pub upload: Option<bool>,
    /// Whether deleting is allowed (overrides `--delete`).
    pub delete: Option<bool>,
    /// Largest upload (overrides `--max-upload-size`).
    pub max_upload_size: Option<u64>,
    /// Not for direct requests (404): reached only when an app hands the file back
    /// with `X-Accel-Redirect`.
    pub internal: bool,
}

impl Rule {
    /// Whether the rule restricts who may reach its paths.
    pub fn guards(&self) -> bool {
        self.auth.is_some() || !self.allow.is_empty() || !self.deny.is_empty() || self.internal
    }

    /// A rule that only assigns `handler` to `path`.
    pub fn for_handler(path: Glob, handler: Handler) -> Rule {
        Rule {
            handler: Some(handler),
            path,
            headers: Vec::new(),
            redirect: None,
            rewrite: None,
            spa: None,
            allow: Vec::new(),
            deny: Vec::new(),
            cors: None,
            auth: None,
            upload: None,
            delete: None,
            max_upload_size: None,
            internal: false,
        }
    }
}

/// Which users a rule admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRule {
    /// Any user in `[users]`.
    AnyUser,
    /// Only these users.
    Users(Vec<String>),
}

impl AuthRule {
    /// Whether `user` (already authenticated) may access.
    pub fn admits(&self, user: &str) -> bool {
        match self {
            AuthRule::AnyUser => true,
            AuthRule::Users(users) => users.iter().any(|u| u == user),
        }
    }
}

impl Rule {
    /// Whether `ip` may access paths under this rule.
    pub fn admits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }
}

/// IPv4 clients reaching a dual-stack socket appear as `::ffff:a.b.c.d`; lists are
/// written with plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Everything the configuration file says about the site beyond the flags.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// Path rules, in file order.
    pub rules: Vec<Rule>,
    /// Status → path of the page served with that status.
    pub error_pages: Vec<(StatusCode, String)>,
    /// Add X-Content-Type-Options, Referrer-Policy, a frame policy, and HSTS on TLS.
    pub security_headers: bool,
    /// Users for HTTP Basic authentication.
    pub users: Arc<Users>,
}

impl Site {
    /// Whether anything is configured (lets the router skip the whole layer).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.error_pages.is_empty() && !self.security_headers
    }

    /// Whether `path` is an app's folder prefix without its `/` (`/api` of an
    /// `/api/**` proxy rule): a request for it is redirected into the folder, as
    /// nginx does for a `location /api/` with `proxy_pass`.
    pub fn is_app_folder_without_slash(&self, path: &str) -> bool {
        !path.ends_with('/')
            && self.rules.iter().any(|r| {
                matches!(r.handler, Some(Handler::Proxy(_)))
                    && r.path
                        .folder_prefix()
                        .and_then(|p| p.strip_suffix('/'))
                        .is_some_and(|p| p == path)
            })
    }

    /// The rules that restrict access to the folder `path` names without its `/`
    /// (`/admin` of an `/admin/**` rule with `allow`, `deny`, `auth` or
    /// `internal`): a folder's own name is guarded like what is in it, so that
    /// `/admin` does not reach an app that answers it as `/admin/` unchecked.
    pub fn guarding_folder<'s>(&'s self, path: &'s str) -> impl Iterator<Item = &'s Rule> + 's {
        self.rules.iter().filter(move |r| {
            r.guards()
                && !path.ends_with('/')
                && r.path
                    .folder_prefix()
                    .and_then(|p| p.strip_suffix('/'))
                    .is_some_and(|p| p == path)
        })
    }

    /// The rules that may apply to something inside `folder` (which ends in `/`):
    /// what a DELETE, COPY or MOVE of the whole folder reaches.
    pub fn inside<'s>(&'s self, folder: &'s str) -> impl Iterator<Item = &'s Rule> + 's {
        self.rules
            .iter()
            .filter(move |r| r.path.may_match_below(folder))
    }

    /// What the rules ahead of `rule` say of `flag` for everything inside `folder`:
    /// the value of the first of them that matches all of the folder and sets it.
    pub fn said_before(
        &self,
        rule: &Rule,
        folder: &str,
        flag: fn(&Rule) -> Option<bool>,
    ) -> Option<bool> {
        self.rules
            .iter()
            .take_while(|r| !std::ptr::eq(*r, rule))
            .filter(|r| r.path.covers_below(folder))
            .find_map(flag)
    }

    /// The rules matching `path`, with their captures. When no rule naming a
    /// handler matches the whole path, a CGI rule naming programs by their
    /// extension may match its start (see [`program_prefix`]).
    pub fn matching<'s, 'p>(&'s self, path: &'p str) -> Vec<(&'s Rule, Vec<&'p str>)> {
        let mut matched: Vec<(&Rule, Vec<&str>)> = self
            .rules
            .iter()
            .filter_map(|r| r.path.captures(path).map(|c| (r, c)))
            .collect();
        if matched.iter().any(|(r, _)| r.handler.is_some()) {
            return matched;
        }
        let Some((rule, caps)) = self
            .rules
            .iter()
            .find_map(|r| program_prefix(r, path).map(|c| (r, c)))
        else {
            return matched;
        };
        // In the rules' order, as a whole-path match would be.
        let at = self
            .rules
            .iter()
            .take_while(|r| !std::ptr::eq(*r, rule))
            .filter(|r| matched.iter().any(|(m, _)| std::ptr::eq(*m, *r)))
            .count();
        matched.insert(at, (rule, caps));
        matched
    }

    /// The custom page for `status`, if any.
    pub fn error_page(&self, status: StatusCode) -> Option<&str> {
        self.error_pages
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, p)| p.as_str())
    }
}

/// Leading parts of a path tried against a CGI rule: a bound on the work a long
/// path of `x.cgi/` segments can ask for.
const PROGRAM_PREFIXES: usize = 8;

/// For a CGI rule that names programs by their extension (`/**/*.cgi`), the
/// captures of the shortest leading part of `path`, up to a `/`, that it matches:
/// the rest is the program's PATH_INFO (RFC 3875 §4.1.5), so `/apps/run.cgi/x`
/// runs `/apps/run.cgi`, as Apache's `AddHandler cgi-script .cgi` does. Only parts
/// whose last segment has the extension are tried, at most [`PROGRAM_PREFIXES`].
fn program_prefix<'p>(rule: &Rule, path: &'p str) -> Option<Vec<&'p str>> {
    if !matches!(rule.handler, Some(Handler::Cgi(_))) {
        return None;
    }
    let suffix = rule.path.name_suffix()?;
    path.match_indices('/')
        .map(|(at, _)| at)
        .filter(|&at| at > 0 && path[..at].ends_with(suffix))
        .take(PROGRAM_PREFIXES)
        .find_map(|at| rule.path.captures(&path[..at]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(pattern: &str, path: &str) -> Option<Vec<String>> {
        Glob::parse(pattern)
            .unwrap()
            .captures(path)
            .map(|c| c.into_iter().map(String::from).collect())
    }

    fn cgi_rule(pattern: &str) -> Rule {
        let route = crate::handlers::cgi::Route::default();
        Rule::for_handler(Glob::parse(pattern).unwrap(), Handler::Cgi(Arc::new(route)))
    }

    #[test]
    fn a_cgi_rule_by_extension_matches_the_start_of_a_path_no_other_rule_takes() {
        let site = Site {
            rules: vec![
                cgi_rule("/**/*.cgi"),
                cgi_rule("/api/**"),
                cgi_rule("/tools/*"),
            ],
            ..Site::default()
        };
        let patterns = |path: &str| -> Vec<String> {
            site.matching(path)
                .iter()
                .map(|(r, _)| r.path.pattern.clone())
                .collect()
        };
        assert_eq!(patterns("/pages/run.cgi/extra/x"), ["/**/*.cgi"]);
        assert_eq!(patterns("/run.cgi/"), ["/**/*.cgi"]);
        // A whole-path match of another rule naming a handler wins.
        assert_eq!(patterns("/api/x.cgi/1"), ["/api/**"]);
        // Only a rule naming programs by extension reaches past a path's end.
        assert!(patterns("/tools/docs/index.html").is_empty());
        assert!(patterns("/pages/readme.txt").is_empty());
        // A long path of such names costs a bounded number of tries.
        let narrow = Site {
            rules: vec![cgi_rule("/bin/*.cgi")],
            ..Site::default()
        };
        let long = "/x".to_string() + &"/a.cgi".repeat(1200);
        assert!(narrow.matching(&long).is_empty());
        assert_eq!(narrow.matching("/bin/a.cgi/x").len(), 1);
    }

    #[test]
    fn a_leading_double_star_folder_matches_the_top_folder_too() {
        assert!(caps("/**/*.cgi", "/x.cgi").is_some());
        assert!(caps("/**/*.cgi", "/a/b/x.cgi").is_some());
        assert!(caps("/**/*.cgi", "/x.cgix").is_none());
    }

    #[test]
    fn what_a_pattern_may_match_inside_a_folder() {
        let below = |pattern: &str, folder: &str| {
            Glob::parse(pattern)
                .expect("a pattern")
                .may_match_below(folder)
        };
        assert!(below("/team/secret/", "/team/"));
        assert!(below("/team/secret/", "/team/secret/"));
        assert!(below("/team/secret/**", "/"));
        assert!(!below("/team/secret/", "/other/"));
        assert!(!below("/teams/", "/team/"));
        assert!(below("/**/*.php", "/app/"));
        assert!(below("/app/**/*.php", "/app/sub/"));
        assert!(below("/users/*/private/**", "/users/"));
        assert!(below("/users/*/private/**", "/users/ann/"));
        assert!(!below("/users/*/private/**", "/groups/"));
        assert!(below("/team/plan.txt", "/team/"));
        assert!(!below("/team/plan.txt", "/team/plan.txt/"));
        assert!(!below("/team", "/team/"));
        let covers = |pattern: &str, folder: &str| {
            Glob::parse(pattern)
                .expect("a pattern")
                .covers_below(folder)
        };
        assert!(covers("/", "/inbox/"));
        assert!(covers("/inbox/", "/inbox/a/"));
        assert!(covers("/inbox/**", "/inbox/"));
        assert!(!covers("/inbox/", "/"));
        assert!(!covers("/**/*.txt", "/inbox/"));
    }

    #[test]
    fn globs_match_and_capture() {
        assert_eq!(
            caps("/assets/*", "/assets/app.js"),
            Some(vec!["app.js".into()])
        );
        assert_eq!(caps("/assets/*", "/assets/js/app.js"), None);
        assert_eq!(
            caps("/assets/**", "/assets/js/app.js"),
            Some(vec!["js/app.js".into()])
        );
        assert_eq!(caps("/docs/", "/docs/a/b"), Some(vec!["a/b".into()]));
        assert_eq!(caps("/docs/", "/docs/"), Some(vec!["".into()]));
        assert_eq!(caps("/docs/", "/docsx"), None);
        assert_eq!(
            caps("/old/*/page-*.html", "/old/blog/page-3.html"),
            Some(vec!["blog".into(), "3".into()])
        );
        assert_eq!(caps("/exact", "/exact"), Some(vec![]));
        assert_eq!(caps("/exact", "/exact/more"), None);
        assert!(Glob::parse("relative").is_err());
        assert!(Glob::parse("/g/***").is_err());
        assert!(Glob::parse("/a/**/***.txt").is_err());
    }

    #[test]
    fn many_wildcards_on_long_paths_stay_fast() {
        let long = format!("/{}", "x/".repeat(4000));
        for pattern in [
            "/**/**/**/z",
            "/**/x/**/y",
            "/*/*/*/*/*/*/q",
            "/**x**x**x**z",
        ] {
            let glob = Glob::parse(pattern).unwrap();
            let start = std::time::Instant::now();
            assert!(glob.captures(&long).is_none(), "{pattern}");
            // Generous bound: linear work on 8 KB is microseconds to milliseconds.
            assert!(
                start.elapsed() < std::time::Duration::from_secs(1),
                "{pattern}"
            );
        }
        assert_eq!(
            caps("/**/x/**/y", "/a/x/b/c/y"),
            Some(vec!["a".into(), "b/c".into()])
        );
    }

    #[test]
    fn templates_take_captures() {
        assert_eq!(expand("/new/{1}/x-{2}", &["a", "b"]), "/new/a/x-b");
        assert_eq!(expand("/n/{3}{", &["a"]), "/n/{");
        assert_eq!(
            expand("https://example.com/{1}", &["p/q"]),
            "https://example.com/p/q"
        );
    }

    #[test]
    fn allow_and_deny_lists() {
        let rule = Rule {
            handler: None,
            path: Glob::parse("/p/").unwrap(),
            headers: vec![],
            redirect: None,
            rewrite: None,
            spa: None,
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            deny: vec!["127.0.0.2/32".parse().unwrap()],
            cors: None,
            auth: None,
            upload: None,
            delete: None,
            max_upload_size: None,
            internal: false,
        };
        assert!(rule.admits("127.0.0.1".parse().unwrap()));
        assert!(rule.admits("::ffff:127.0.0.1".parse().unwrap()));
        assert!(rule.admits("::1".parse().unwrap()));
        assert!(!rule.admits("127.0.0.2".parse().unwrap()));
        assert!(!rule.admits("10.0.0.1".parse().unwrap()));
    }
}
