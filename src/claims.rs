//! Verified claims and scopes.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::Algorithm;

/// A scope token (RFC 6749 §3.3): one or more of `%x21 / %x23-5B / %x5D-7E`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScopeToken(Box<str>);

/// The error of [`ScopeToken::new`] and [`Scopes::parse`]: a scope token is empty or has a
/// character RFC 6749 §3.3 does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidScope(());

impl fmt::Display for InvalidScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid scope token (RFC 6749 section 3.3)")
    }
}

impl std::error::Error for InvalidScope {}

/// Whether `s` is a valid RFC 6749 §3.3 scope token.
pub(crate) fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

impl ScopeToken {
    /// Validates a scope token.
    ///
    /// ```
    /// use bearer_guard::ScopeToken;
    /// assert!(ScopeToken::new("read:maps").is_ok());
    /// assert!(ScopeToken::new("two words").is_err());
    /// assert!(ScopeToken::new("").is_err());
    /// ```
    pub fn new(s: &str) -> Result<Self, InvalidScope> {
        if is_scope_token(s) {
            Ok(Self(s.into()))
        } else {
            Err(InvalidScope(()))
        }
    }

    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ScopeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ScopeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A set of scope tokens granted by a token.
///
/// Held as one string: the tokens sorted, without duplicates, joined by single spaces (one
/// allocation, whatever the number of scopes).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Scopes(Box<str>);

impl Scopes {
    /// Parses a space-separated scope string (RFC 6749 §3.3). Runs of spaces are tolerated.
    ///
    /// ```
    /// use bearer_guard::Scopes;
    /// let s = Scopes::parse("directions geocode:location").unwrap();
    /// assert!(s.contains("directions"));
    /// assert!(s.contains_all(["directions", "geocode:location"]));
    /// assert!(!s.contains_any(["reverse-geocode:location"]));
    /// ```
    pub fn parse(s: &str) -> Result<Self, InvalidScope> {
        Self::default().with_valid(split_spaces(s))
    }

    /// Whether the scope is granted.
    pub fn contains(&self, scope: &str) -> bool {
        // Tokens hold no space: a whole word of the text.
        !scope.is_empty()
            && self
                .0
                .as_bytes()
                .split(|&b| b == b' ')
                .any(|t| t == scope.as_bytes())
    }

    /// Whether every one of `scopes` is granted.
    pub fn contains_all<'a>(&self, scopes: impl IntoIterator<Item = &'a str>) -> bool {
        scopes.into_iter().all(|s| self.contains(s))
    }

    /// Whether at least one of `scopes` is granted.
    pub fn contains_any<'a>(&self, scopes: impl IntoIterator<Item = &'a str>) -> bool {
        scopes.into_iter().any(|s| self.contains(s))
    }

    /// The granted scopes, sorted.
    pub fn iter(&self) -> ScopesIter<'_> {
        ScopesIter(&self.0)
    }

    /// The number of scopes.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether no scope is granted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These scopes and `more`, which must all be valid scope tokens.
    pub(crate) fn with_valid<'a>(
        &'a self,
        more: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, InvalidScope> {
        let mut tokens: Vec<&str> = self.iter().collect();
        for t in more {
            if !is_scope_token(t) {
                return Err(InvalidScope(()));
            }
            tokens.push(t);
        }
        tokens.sort_unstable();
        tokens.dedup();
        Ok(Self(tokens.join(" ").into_boxed_str()))
    }

    /// Adds the roles of a role claim (an array, or a space-separated string) as scopes.
    /// Lenient, unlike scope claims: a role that is not a valid scope token (a name with a
    /// space, say) is skipped, since no guard can require it, and any other shape is ignored.
    pub(crate) fn extend_from_roles(&mut self, v: &Value) {
        let roles: Vec<&str> = match v {
            Value::String(s) => s.split(' ').collect(),
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let valid = roles.into_iter().filter(|r| is_scope_token(r));
        if let Ok(scopes) = self.with_valid(valid) {
            *self = scopes;
        }
    }

    /// Adds the scopes of a claim value: a space-separated string or an array of tokens.
    pub(crate) fn extend_from_claim(&mut self, v: &Value) -> Result<(), InvalidScope> {
        let tokens: Vec<&str> = match v {
            Value::String(s) => split_spaces(s).collect(),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().ok_or(InvalidScope(())))
                .collect::<Result<_, _>>()?,
            _ => return Err(InvalidScope(())),
        };
        *self = self.with_valid(tokens)?;
        Ok(())
    }
}

/// The scopes of [`Scopes`], sorted (see [`Scopes::iter`]).
#[derive(Clone, Debug)]
pub struct ScopesIter<'a>(&'a str);

impl<'a> Iterator for ScopesIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        // The text is tokens joined by single spaces.
        if self.0.is_empty() {
            return None;
        }
        let (token, rest) = self.0.split_once(' ').unwrap_or((self.0, ""));
        self.0 = rest;
        Some(token)
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'a> IntoIterator for &'a Scopes {
    type Item = &'a str;
    type IntoIter = ScopesIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The verified claims of an access token: the registered claims, the scopes, and every other
/// claim. Cheap to clone (an `Arc`).
///
/// The layer puts it in the request extensions; read your own claim type with
/// [`deserialize`](Self::deserialize).
#[derive(Clone)]
pub struct Claims(Arc<ClaimsInner>);

struct ClaimsInner {
    registered: Registered,
    /// Accepted by introspection (RFC 7662), not by a signature.
    introspected: bool,
    algorithm: Algorithm,
    key_id: Option<Arc<str>>,
    raw: RawClaims,
}

/// Every claim as JSON: the payload's text, parsed into a [`Value`] the first time a claim
/// is asked for by name (most requests only need the registered claims and the scopes,
/// which are read in the verifier's single pass). Shared by every clone, so parsed at most
/// once per verified token.
struct RawClaims {
    text: Box<str>,
    value: OnceLock<Value>,
    /// [`Claims::may_contain_cnf`], remembered.
    may_have_cnf: OnceLock<bool>,
}

/// A claim's string: where it lies in the payload's text (the usual case, a string without
/// escapes: nothing is copied), or its own text.
enum Text {
    Span(std::ops::Range<usize>),
    Own(Box<str>),
}

impl Text {
    /// `s`, a string read from `payload`: its span there when it is a slice of it.
    fn new(s: Cow<'_, str>, payload: &str) -> Self {
        let start = (s.as_ptr() as usize).wrapping_sub(payload.as_ptr() as usize);
        match s {
            Cow::Borrowed(b)
                if payload
                    .get(start..start + b.len())
                    .is_some_and(|p| std::ptr::eq(p, b)) =>
            {
                Self::Span(start..start + b.len())
            }
            s => Self::Own(s.into_owned().into_boxed_str()),
        }
    }
}

impl RawClaims {
    fn text<'a>(&'a self, t: &'a Text) -> &'a str {
        match t {
            Text::Span(r) => self.text.get(r.clone()).unwrap_or_default(),
            Text::Own(s) => s,
        }
    }

    fn value(&self) -> &Value {
        // The text passed `read_claims` (a JSON object, every value parsed as `Value` would
        // parse it), so this cannot fail; `Null` is only a defensive answer.
        self.value
            .get_or_init(|| serde_json::from_str(&self.text).unwrap_or(Value::Null))
    }
}

/// The error of [`Claims::deserialize`]: serde's message, kept.
///
/// Its `Display` holds serde's message, which can quote a claim's value (`invalid type:
/// string "…"`): log it escaped, do not send it to clients.
/// [`missing_claim`](Self::missing_claim) gives the name of a missing field, which comes
/// from your type rather than from the token.
#[derive(Debug)]
pub struct ClaimsError {
    error: serde_json::Error,
    missing: Option<String>,
}

impl ClaimsError {
    fn new(error: serde_json::Error) -> Self {
        // serde's `de::Error::missing_field` message, as serde_json words it (no position:
        // the claims are deserialized from a `Value`).
        let missing = error
            .to_string()
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
            .map(str::to_owned);
        Self { error, missing }
    }

    /// When the claims lack a field that the type requires: its name (as the type's serde
    /// derive names it, so never token content).
    pub fn missing_claim(&self) -> Option<&str> {
        self.missing.as_deref()
    }
}

impl fmt::Display for ClaimsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the claims do not fit the requested type: {}",
            self.error
        )
    }
}

impl std::error::Error for ClaimsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl Claims {
    /// `iss`.
    pub fn issuer(&self) -> &str {
        self.0.raw.text(&self.0.registered.issuer)
    }

    /// `sub`, when present.
    pub fn subject(&self) -> Option<&str> {
        self.0
            .registered
            .subject
            .as_ref()
            .map(|t| self.0.raw.text(t))
    }

    /// `aud`, as a list (a string `aud` is a list of one).
    pub fn audience(&self) -> &[String] {
        &self.0.registered.audience
    }

    /// `exp`, in seconds since the Unix epoch (a fractional `exp` rounded down; the
    /// verifier compares the exact value).
    pub fn expires_at(&self) -> i64 {
        whole_seconds(self.0.registered.expires_at)
    }

    /// `nbf`, in seconds since the Unix epoch (rounded down; the verifier compares the exact
    /// value).
    pub fn not_before(&self) -> Option<i64> {
        self.0.registered.not_before.map(whole_seconds)
    }

    /// `iat`, in seconds since the Unix epoch (rounded down; the verifier compares the exact
    /// value).
    pub fn issued_at(&self) -> Option<i64> {
        self.0.registered.issued_at.map(whole_seconds)
    }

    /// `exp`, `nbf` and `iat` exactly as the token states them (NumericDate may have a
    /// fraction, RFC 7519 §2), for the time checks.
    pub(crate) fn exact_times(&self) -> ExactTimes {
        let r = &self.0.registered;
        ExactTimes {
            expires_at: r.expires_at,
            not_before: r.not_before,
            issued_at: r.issued_at,
        }
    }

    /// `jti`, when present.
    pub fn jwt_id(&self) -> Option<&str> {
        self.0
            .registered
            .jwt_id
            .as_ref()
            .map(|t| self.0.raw.text(t))
    }

    /// `client_id` (RFC 9068), or else `azp`, when present.
    pub fn client_id(&self) -> Option<&str> {
        self.0
            .registered
            .client_id
            .as_ref()
            .map(|t| self.0.raw.text(t))
    }

    /// The granted scopes, read from the configured scope claims.
    pub fn scopes(&self) -> &Scopes {
        &self.0.registered.scopes
    }

    /// The algorithm the token was signed with. An opaque token accepted by introspection
    /// ([`is_introspected`](Self::is_introspected)) has no signature of its own: then
    /// this is the algorithm of the signed introspection response (RFC 9701), or `RS256`
    /// for a plain JSON one; do not base decisions on it for such tokens.
    pub fn algorithm(&self) -> Algorithm {
        self.0.algorithm
    }

    /// Whether the token was accepted by RFC 7662 introspection at the authorization
    /// server (an opaque token) rather than by verifying its signature (a JWT). Its claims
    /// are then the members of the introspection response.
    pub fn is_introspected(&self) -> bool {
        self.0.introspected
    }

    /// The `kid` of the key that verified the token.
    pub fn key_id(&self) -> Option<&str> {
        self.0.key_id.as_deref()
    }

    /// One claim by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.raw.value().get(name)
    }

    /// Every claim, as a JSON object.
    pub fn as_json(&self) -> &Value {
        self.0.raw.value()
    }

    /// Deserializes the claims into your own type.
    ///
    /// ```
    /// # async fn f(claims: bearer_guard::Claims) {
    /// #[derive(serde::Deserialize)]
    /// struct MyClaims { sub: String, org_id: Option<String> }
    /// let mine: MyClaims = claims.deserialize().expect("shape");
    /// # }
    /// ```
    pub fn deserialize<C: DeserializeOwned>(&self) -> Result<C, ClaimsError> {
        C::deserialize(self.0.raw.value()).map_err(ClaimsError::new)
    }

    /// The time `exp` denotes.
    pub fn expiry(&self) -> SystemTime {
        to_system_time(self.expires_at())
    }
}

/// The time claims with their fractions, in seconds since the Unix epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExactTimes {
    pub(crate) expires_at: f64,
    pub(crate) not_before: Option<f64>,
    pub(crate) issued_at: Option<f64>,
}

/// A NumericDate rounded down to whole seconds.
fn whole_seconds(date: f64) -> i64 {
    // `as` is exact here: the value is finite, whole after `floor`, and within ±MAX_DATE.
    #[allow(clippy::cast_possible_truncation)]
    let secs = date.floor() as i64;
    secs
}

/// The confirmation claim (RFC 7800), read on demand: DPoP (RFC 9449 §6).
impl Claims {
    /// `cnf.jkt`: the RFC 7638 thumbprint of the key a DPoP-bound token is bound to, or
    /// `None` for a token that is not DPoP-bound.
    pub fn confirmation_jkt(&self) -> Option<&str> {
        if !self.may_contain_cnf() {
            return None;
        }
        self.get("cnf")?.get("jkt")?.as_str()
    }

    /// `cnf.x5t#S256`: the SHA-256 thumbprint of the client certificate a certificate-bound
    /// token (RFC 8705 §3.1) is bound to, or `None` for a token that is not
    /// certificate-bound.
    pub fn confirmation_x5t_s256(&self) -> Option<&str> {
        if !self.may_contain_cnf() {
            return None;
        }
        self.get("cnf")?.get("x5t#S256")?.as_str()
    }

    /// The confirmation method `member` of `cnf` (`jkt`, `x5t#S256`) for the binding checks,
    /// strictly: `Ok(None)` for a token without it, `invalid_token` for a `cnf` that is not an
    /// object or a member that is not a non-empty string. Most tokens have no `cnf`: their
    /// payload is then not parsed at all.
    pub(crate) fn confirmation(
        &self,
        member: &str,
    ) -> Result<Option<&str>, crate::error::AuthError> {
        if !self.may_contain_cnf() {
            return Ok(None);
        }
        let invalid = || {
            crate::error::AuthError::invalid_with(
                crate::error::InvalidTokenReason::InvalidClaim,
                "the token's cnf claim is invalid",
            )
        };
        match self.get("cnf") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(cnf)) => match cnf.get(member) {
                None => Ok(None),
                Some(Value::String(v)) if !v.is_empty() => Ok(Some(v)),
                Some(_) => Err(invalid()),
            },
            Some(_) => Err(invalid()),
        }
    }

    /// Whether the payload may have a `cnf` member (no false negatives): a scan of its text
    /// for `"cnf"`, or for any escape, which could spell it otherwise, made once per token
    /// (the binding checks ask on every request, cached tokens included). Spares most tokens
    /// the full parse that [`get`](Self::get) makes.
    pub(crate) fn may_contain_cnf(&self) -> bool {
        let raw = &self.0.raw;
        *raw.may_have_cnf.get_or_init(|| {
            if raw.value.get().is_some() || raw.text.is_empty() {
                return true;
            }
            let text = raw.text.as_bytes();
            memchr::memchr(b'\\', text).is_some()
                || memchr::memmem::find(text, b"\"cnf\"").is_some()
        })
    }
}

pub(crate) fn to_system_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("iss", &self.issuer())
            .field("sub", &self.subject())
            .field("aud", &self.0.registered.audience)
            .field("exp", &self.expires_at())
            .field("scopes", &self.0.registered.scopes)
            .field("alg", &self.0.algorithm)
            .finish_non_exhaustive()
    }
}

/// A JSON object whose top level has no duplicate member names (a duplicate makes the
/// token ambiguous: parsers disagree on which value wins). The development issuer reads
/// request bodies with it, introspection its answers; the verifier's own reader refuses the same duplicates.
#[cfg(any(test, feature = "dev-issuer", feature = "introspection"))]
pub(crate) struct UniqueObject(pub(crate) Map<String, Value>);

#[cfg(any(test, feature = "dev-issuer", feature = "introspection"))]
impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<UniqueObject, A::Error> {
                let mut map = Map::new();
                while let Some((k, v)) = a.next_entry::<String, Value>()? {
                    if map.contains_key(&k) {
                        return Err(serde::de::Error::custom("duplicate member"));
                    }
                    map.insert(k, v);
                }
                Ok(UniqueObject(map))
            }
        }
        d.deserialize_map(V)
    }
}

/// Why a claim set is not acceptable (before comparison with the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimShape {
    Missing(&'static str),
    Invalid(&'static str),
}

/// The largest NumericDate accepted: 9999-12-31T23:59:59Z.
pub(crate) const MAX_DATE: f64 = 253_402_300_799.0;

/// Where scopes are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScopeSource {
    /// A top-level scope claim (`scope`, `scp`, `permissions`): a space-separated string or
    /// an array of scope tokens. A value that is not one refuses the token.
    Claim(String),
    /// A role claim, by path (`roles`, `realm_access.roles`,
    /// `resource_access.<client>.roles`): see [`claim_at`] and [`Scopes::extend_from_roles`].
    Roles(String),
}

/// The value at `path` in `obj`: the member named `path` itself if there is one, else the
/// path followed through nested objects, split at dots (`realm_access.roles`). Names that
/// contain dots (`resource_access.my.app.roles`, a namespaced `https://example.com/roles`)
/// are found too: every split is tried, the whole name first.
pub(crate) fn claim_at<'a>(obj: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = obj.get(path) {
        return Some(v);
    }
    path.match_indices('.')
        .find_map(|(i, _)| match obj.get(&path[..i]) {
            Some(Value::Object(inner)) => claim_at(inner, &path[i + 1..]),
            _ => None,
        })
}

/// Why a payload was refused by [`read_claims`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// Not a JSON object, or a member name appears twice.
    Malformed,
    /// A claim has the wrong shape, or a required one is missing.
    Shape(ClaimShape),
}

/// Reads a verified payload (the JSON text of the claims) in one pass: the registered
/// claims and the scopes straight into [`Claims`] (strings borrowed from the payload until
/// they are kept), every other member checked as JSON and skipped, its text kept for
/// [`Claims::get`]. Refuses what [`UniqueObject`] refuses.
pub(crate) fn read_claims(
    payload: String,
    algorithm: Algorithm,
    key_id: Option<Arc<str>>,
    scope_sources: &[ScopeSource],
) -> Result<Claims, ReadError> {
    let registered = {
        let mut de = serde_json::Deserializer::from_str(&payload);
        let fields = Wanted::new(scope_sources)
            .deserialize(&mut de)
            .map_err(|_| ReadError::Malformed)?;
        de.end().map_err(|_| ReadError::Malformed)?;
        fields
            .assemble(scope_sources, &payload)
            .map_err(ReadError::Shape)?
    };
    let raw = RawClaims {
        text: payload.into_boxed_str(),
        value: OnceLock::new(),
        may_have_cnf: OnceLock::new(),
    };
    Ok(registered.into_claims(algorithm, key_id, raw))
}

/// The claims of an opaque token from its validated introspection response (RFC 7662
/// §2.2): `payload` is the response's members as a JSON object (`active` removed, `iss`
/// present), read exactly as a JWT payload is, then marked as introspected. `algorithm` is
/// that of a signed response (RFC 9701), if any.
#[cfg(feature = "introspection")]
pub(crate) fn from_introspection(
    payload: String,
    algorithm: Option<Algorithm>,
    scope_sources: &[ScopeSource],
) -> Result<Claims, ReadError> {
    let mut claims = read_claims(
        payload,
        algorithm.unwrap_or(Algorithm::RS256),
        None,
        scope_sources,
    )?;
    if let Some(inner) = Arc::get_mut(&mut claims.0) {
        inner.introspected = true;
    }
    Ok(claims)
}

/// Reads the registered claims and the scopes of a payload already parsed (the reference
/// the one-pass reader is tested against).
#[cfg(test)]
pub(crate) fn build_claims(
    raw: Map<String, Value>,
    algorithm: Algorithm,
    key_id: Option<Arc<str>>,
    scope_sources: &[ScopeSource],
) -> Result<Claims, ClaimShape> {
    let wanted = Wanted::new(scope_sources);
    let mut fields = Fields::default();
    for (name, value) in &raw {
        let member = wanted.member(name);
        match member.route {
            Route::Value => fields.keep_value(&member, name, value.clone()),
            Route::Raw => fields.keep_raw(&member, Raw::from_json(value)),
            Route::Skip => {}
        }
    }
    let registered = fields.assemble(scope_sources, "")?;
    let parsed = RawClaims {
        text: Box::default(),
        value: OnceLock::from(Value::Object(raw)),
        may_have_cnf: OnceLock::new(),
    };
    Ok(registered.into_claims(algorithm, key_id, parsed))
}

/// The registered claims [`Fields::assemble`] reads: each one's index in
/// [`Fields::registered`].
#[inline]
fn registered(name: &str) -> Option<usize> {
    // Compared as integers: every member name of every token goes through here.
    const fn three(n: &[u8; 3]) -> u32 {
        n[0] as u32 | (n[1] as u32) << 8 | (n[2] as u32) << 16
    }
    match *name.as_bytes() {
        [a, b, c] => match u32::from(a) | u32::from(b) << 8 | u32::from(c) << 16 {
            k if k == three(b"iss") => Some(0),
            k if k == three(b"sub") => Some(1),
            k if k == three(b"aud") => Some(2),
            k if k == three(b"exp") => Some(3),
            k if k == three(b"nbf") => Some(4),
            k if k == three(b"iat") => Some(5),
            k if k == three(b"jti") => Some(6),
            k if k == three(b"azp") => Some(8),
            _ => None,
        },
        _ if name == "client_id" => Some(7),
        _ => None,
    }
}

/// A member as read: its JSON shape, strings borrowed from the payload when they have no
/// escapes. Numbers are kept as `f64`, as [`Value::as_f64`] gives them.
#[derive(Default, Clone)]
enum Raw<'de> {
    #[default]
    Absent,
    Null,
    Str(Cow<'de, str>),
    Num(f64),
    /// An array whose items are all strings.
    Strs(Vec<Cow<'de, str>>),
    /// Anything else, checked as JSON and dropped.
    Other,
}

impl<'de> Raw<'de> {
    fn string(self, name: &'static str, payload: &str) -> Result<Option<Text>, ClaimShape> {
        match self {
            Raw::Absent | Raw::Null => Ok(None),
            Raw::Str(s) => Ok(Some(Text::new(s, payload))),
            _ => Err(ClaimShape::Invalid(name)),
        }
    }

    /// A NumericDate, kept exact (with its fraction).
    fn numeric_date(self, name: &'static str) -> Result<Option<f64>, ClaimShape> {
        match self {
            Raw::Absent | Raw::Null => Ok(None),
            Raw::Num(f) if (-MAX_DATE..=MAX_DATE).contains(&f) => Ok(Some(f)),
            _ => Err(ClaimShape::Invalid(name)),
        }
    }

    /// A string or an array of strings, as a list.
    fn strings(self, name: &'static str) -> Result<Vec<String>, ClaimShape> {
        match self {
            Raw::Absent | Raw::Null => Ok(Vec::new()),
            Raw::Str(s) => Ok(vec![s.into_owned()]),
            Raw::Strs(items) => Ok(items.into_iter().map(Cow::into_owned).collect()),
            _ => Err(ClaimShape::Invalid(name)),
        }
    }
}

impl<'de> Deserialize<'de> for Raw<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Raw<'de>, E> {
                Ok(Raw::Other)
            }
            #[allow(clippy::cast_precision_loss)] // As `Value::as_f64` converts it.
            fn visit_i64<E>(self, v: i64) -> Result<Raw<'de>, E> {
                Ok(Raw::Num(v as f64))
            }
            #[allow(clippy::cast_precision_loss)] // As `Value::as_f64` converts it.
            fn visit_u64<E>(self, v: u64) -> Result<Raw<'de>, E> {
                Ok(Raw::Num(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Raw<'de>, E> {
                Ok(Raw::Num(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Raw<'de>, E> {
                Ok(Raw::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Raw<'de>, E> {
                Ok(Raw::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Raw<'de>, E> {
                Ok(Raw::Str(Cow::Owned(v)))
            }
            fn visit_unit<E>(self) -> Result<Raw<'de>, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E>(self) -> Result<Raw<'de>, E> {
                Ok(Raw::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Raw<'de>, A::Error> {
                let mut strings = Some(Vec::new());
                while let Some(item) = a.next_element::<Raw<'de>>()? {
                    match (item, &mut strings) {
                        (Raw::Str(s), Some(list)) => list.push(s),
                        _ => strings = None,
                    }
                }
                Ok(strings.map_or(Raw::Other, Raw::Strs))
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Raw<'de>, A::Error> {
                Skip.visit_map(a).map(|_| Raw::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The members of a payload that [`Fields::assemble`] reads.
#[derive(Default)]
struct Fields<'de> {
    /// The registered claims, by their index given by [`registered`].
    registered: [Raw<'de>; 9],
    /// The registered claims seen, a bit each (a second one fails the payload).
    seen: u16,
    /// The scopes of the scope claims read so far.
    scopes: Scopes,
    /// Whether a scope claim was not a scope string or an array of scope tokens.
    bad_scope: bool,
    /// The top-level members role paths may read, parsed whole.
    scope_members: Map<String, Value>,
}

/// The non-empty parts of `s` between spaces (as `split(' ')` less the empty ones, with a
/// vectorized search).
fn split_spaces(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        loop {
            if rest.is_empty() {
                return None;
            }
            let (part, after) = match memchr::memchr(b' ', rest.as_bytes()) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, ""),
            };
            rest = after;
            if !part.is_empty() {
                return Some(part);
            }
        }
    })
}

/// A member name as [`Wanted`] sees it.
struct Member {
    /// Its index in [`Fields::registered`], for a registered claim.
    registered: Option<usize>,
    /// Whether a scope source reads it as a scope claim.
    scope_claim: bool,
    route: Route,
}

/// How [`Wanted`] reads a member.
enum Route {
    /// As a [`Raw`]: a registered claim or a scope claim.
    Raw,
    /// As a [`Value`]: role paths look inside it.
    Value,
    /// Checked as JSON and dropped.
    Skip,
}

impl<'de> Fields<'de> {
    fn keep_raw(&mut self, member: &Member, raw: Raw<'de>) {
        if member.scope_claim {
            self.add_scopes(&raw);
        }
        if let Some(i) = member.registered {
            self.registered[i] = raw;
        }
    }

    fn keep_value(&mut self, member: &Member, name: &str, value: Value) {
        if let Some(i) = member.registered {
            self.registered[i] = Raw::from_json(&value);
        }
        self.scope_members.insert(name.to_owned(), value);
    }

    /// Adds the scopes of a scope claim: a space-separated string or an array of tokens.
    fn add_scopes(&mut self, raw: &Raw<'_>) {
        let added = match raw {
            Raw::Absent | Raw::Null => return,
            Raw::Str(s) => self.scopes.with_valid(split_spaces(s)),
            Raw::Strs(items) => self.scopes.with_valid(items.iter().map(|t| &**t)),
            Raw::Num(_) | Raw::Other => Err(InvalidScope(())),
        };
        match added {
            Ok(scopes) => self.scopes = scopes,
            Err(_) => self.bad_scope = true,
        }
    }

    #[inline]
    fn take(&mut self, name: &'static str) -> Raw<'de> {
        registered(name)
            .map(|i| std::mem::take(&mut self.registered[i]))
            .unwrap_or_default()
    }

    /// The registered claims and the scopes, owned. Claims are checked in a fixed order (the
    /// first wrong one is reported); a bad scope claim is reported after all of them.
    fn assemble(
        mut self,
        sources: &[ScopeSource],
        payload: &str,
    ) -> Result<Registered, ClaimShape> {
        let issuer = self.take("iss").string("iss", payload)?;
        let issuer = issuer.ok_or(ClaimShape::Missing("iss"))?;
        let expires_at = self.take("exp").numeric_date("exp")?;
        let expires_at = expires_at.ok_or(ClaimShape::Missing("exp"))?;
        let not_before = self.take("nbf").numeric_date("nbf")?;
        let issued_at = self.take("iat").numeric_date("iat")?;
        let subject = self.take("sub").string("sub", payload)?;
        let jwt_id = self.take("jti").string("jti", payload)?;
        let client_id = match self.take("client_id").string("client_id", payload)? {
            Some(c) => Some(c),
            None => self.take("azp").string("azp", payload)?,
        };
        let audience = self.take("aud").strings("aud")?;
        let mut scopes = self.scopes;
        if self.bad_scope || read_scopes(&mut scopes, &self.scope_members, sources).is_err() {
            return Err(ClaimShape::Invalid("scope"));
        }
        Ok(Registered {
            issuer,
            subject,
            audience,
            expires_at,
            not_before,
            issued_at,
            jwt_id,
            client_id,
            scopes,
        })
    }
}

impl Raw<'_> {
    /// A registered claim that a role path also reads (so it was parsed as a [`Value`]).
    fn from_json(v: &Value) -> Raw<'static> {
        match v {
            Value::Null => Raw::Null,
            Value::String(s) => Raw::Str(Cow::Owned(s.clone())),
            Value::Number(n) => n.as_f64().map_or(Raw::Other, Raw::Num),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(|s| Cow::Owned(s.to_owned())))
                .collect::<Option<Vec<_>>>()
                .map_or(Raw::Other, Raw::Strs),
            Value::Bool(_) | Value::Object(_) => Raw::Other,
        }
    }
}

/// What [`Claims`] holds besides the JSON, owned.
struct Registered {
    issuer: Text,
    subject: Option<Text>,
    audience: Vec<String>,
    expires_at: f64,
    not_before: Option<f64>,
    issued_at: Option<f64>,
    jwt_id: Option<Text>,
    client_id: Option<Text>,
    scopes: Scopes,
}

impl Registered {
    fn into_claims(self, algorithm: Algorithm, key_id: Option<Arc<str>>, raw: RawClaims) -> Claims {
        Claims(Arc::new(ClaimsInner {
            registered: self,
            introspected: false,
            algorithm,
            key_id,
            raw,
        }))
    }
}

/// Adds the scopes that role paths find, and those of scope claims that a role path also
/// reads (parsed as [`Value`]s, in `members`).
fn read_scopes(
    scopes: &mut Scopes,
    members: &Map<String, Value>,
    sources: &[ScopeSource],
) -> Result<(), InvalidScope> {
    if members.is_empty() {
        return Ok(());
    }
    for source in sources {
        match source {
            ScopeSource::Claim(name) => {
                if let Some(v) = members.get(name.as_str())
                    && !v.is_null()
                {
                    scopes.extend_from_claim(v)?;
                }
            }
            ScopeSource::Roles(path) => {
                if let Some(v) = claim_at(members, path) {
                    scopes.extend_from_roles(v);
                }
            }
        }
    }
    Ok(())
}

/// The one pass of [`read_claims`]: a JSON object whose registered claims and scope claims
/// are read as [`Raw`]s, the members role paths may read parsed as [`Value`]s, every other
/// member parsed and dropped as it goes; no member name may appear twice.
struct Wanted<'s> {
    sources: &'s [ScopeSource],
    /// Whether any source is a role path.
    roles: bool,
}

impl<'s> Wanted<'s> {
    fn new(sources: &'s [ScopeSource]) -> Self {
        Self {
            sources,
            roles: sources.iter().any(|s| matches!(s, ScopeSource::Roles(_))),
        }
    }

    /// Whether `name` is a scope claim.
    fn scope_claim(&self, name: &str) -> bool {
        self.sources
            .iter()
            .any(|source| matches!(source, ScopeSource::Claim(claim) if claim.as_bytes().first() == name.as_bytes().first() && claim == name))
    }

    /// Whether a role path may read the top-level member `name`.
    fn for_roles(&self, name: &str) -> bool {
        self.roles
            && self.sources.iter().any(|source| match source {
                ScopeSource::Claim(_) => false,
                // `claim_at` looks up the whole path, then every part before a dot.
                ScopeSource::Roles(path) => {
                    path == name || path.match_indices('.').any(|(i, _)| &path[..i] == name)
                }
            })
    }

    /// What `name` is to the reader, worked out once per member.
    fn member(&self, name: &str) -> Member {
        let registered = registered(name);
        let scope_claim = self.scope_claim(name);
        let route = if self.for_roles(name) {
            Route::Value
        } else if registered.is_some() || scope_claim {
            Route::Raw
        } else {
            Route::Skip
        };
        Member {
            registered,
            scope_claim,
            route,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Wanted<'_> {
    type Value = Fields<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Fields<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Wanted<'_> {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Fields<'de>, A::Error> {
        let mut fields = Fields::default();
        // The names that are not registered claims (those have a bit in `fields.seen`): the
        // first few on the stack, the rest in a list.
        let mut first: [Cow<'de, str>; 8] = Default::default();
        let mut count = 0;
        let mut more = Vec::new();
        while let Some(Name(name)) = a.next_key()? {
            let member = self.member(&name);
            match member.route {
                Route::Value => fields.keep_value(&member, &name, a.next_value()?),
                Route::Raw => fields.keep_raw(&member, a.next_value()?),
                Route::Skip => {
                    a.next_value::<Skip>()?;
                }
            }
            match member.registered {
                Some(i) if fields.seen & (1 << i) != 0 => {
                    return Err(serde::de::Error::custom("duplicate member"));
                }
                Some(i) => fields.seen |= 1 << i,
                None if count < first.len() => {
                    first[count] = name;
                    count += 1;
                }
                None => more.push(name),
            }
        }
        // Duplicates among the other names are looked for once all are known: sorting keeps
        // it O(n log n) whatever the payload.
        let duplicate = |names: &mut [Cow<'de, str>]| {
            names.sort_unstable();
            names.windows(2).any(|w| w[0] == w[1])
        };
        let found = if more.is_empty() {
            duplicate(&mut first[..count])
        } else {
            more.extend(first.into_iter().take(count));
            duplicate(&mut more)
        };
        if found {
            return Err(serde::de::Error::custom("duplicate member"));
        }
        Ok(fields)
    }
}

/// A member name, borrowed from the payload when it has no escapes.
pub(crate) struct Name<'de>(pub(crate) Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, checked exactly as parsing it into a [`Value`] would check it (strings
/// decoded, numbers in range, nesting limited), then dropped.
pub(crate) struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_none<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Skip, D::Error> {
        Skip::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Skip, A::Error> {
        while a.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Skip, A::Error> {
        while a.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_claims_error_names_a_missing_field_and_keeps_serdes_message() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Mine {
            org_id: String,
            n: u32,
        }
        let c = build_claims(
            obj(json!({"iss": "i", "exp": 1, "n": 1})),
            Algorithm::RS256,
            None,
            &[],
        )
        .expect("claims");
        let e = c.deserialize::<Mine>().expect_err("no org_id");
        assert_eq!(e.missing_claim(), Some("org_id"), "{e}");
        let c = build_claims(
            obj(json!({"iss": "i", "exp": 1, "org_id": "o", "n": "x"})),
            Algorithm::RS256,
            None,
            &[],
        )
        .expect("claims");
        let e = c.deserialize::<Mine>().expect_err("n is a string");
        assert_eq!(e.missing_claim(), None);
        assert!(e.to_string().contains("invalid type: string \"x\""), "{e}");
    }

    fn scope_claims() -> Vec<ScopeSource> {
        vec![
            ScopeSource::Claim("scope".into()),
            ScopeSource::Claim("scp".into()),
        ]
    }

    #[test]
    fn roles_are_read_by_path_and_odd_ones_skipped() {
        let c = build_claims(
            obj(json!({"iss": "i", "exp": 1,
                "realm_access": {"roles": ["admin", "two words"]},
                "resource_access": {"my.app": {"roles": ["maps:read"]}, "other": {"roles": ["x"]}},
                "https://example.com/roles": "a b",
                "roles": 7})),
            Algorithm::RS256,
            None,
            &[
                ScopeSource::Roles("realm_access.roles".into()),
                ScopeSource::Roles("resource_access.my.app.roles".into()),
                ScopeSource::Roles("https://example.com/roles".into()),
                ScopeSource::Roles("roles".into()),
                ScopeSource::Roles("absent.path".into()),
            ],
        )
        .expect("claims");
        assert_eq!(
            c.scopes().iter().collect::<Vec<_>>(),
            ["a", "admin", "b", "maps:read"]
        );
    }

    #[test]
    fn scope_string_and_scp_array_are_merged() {
        let c = build_claims(
            obj(json!({"iss": "i", "exp": 1, "scope": "a b", "scp": ["c"]})),
            Algorithm::RS256,
            None,
            &scope_claims(),
        )
        .expect("claims");
        assert_eq!(c.scopes().iter().collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    #[test]
    fn a_scope_array_with_a_space_is_invalid() {
        let r = build_claims(
            obj(json!({"iss": "i", "exp": 1, "scp": ["a b"]})),
            Algorithm::RS256,
            None,
            &scope_claims(),
        );
        assert_eq!(r.err(), Some(ClaimShape::Invalid("scope")));
    }

    #[test]
    fn exp_as_a_string_is_invalid() {
        let r = build_claims(
            obj(json!({"iss": "i", "exp": "1"})),
            Algorithm::RS256,
            None,
            &[],
        );
        assert_eq!(r.err(), Some(ClaimShape::Invalid("exp")));
    }

    #[test]
    fn exp_as_a_float_is_floored() {
        let c = build_claims(
            obj(json!({"iss": "i", "exp": 10.9})),
            Algorithm::RS256,
            None,
            &[],
        )
        .expect("claims");
        assert_eq!(c.expires_at(), 10);
    }

    #[test]
    fn a_huge_exp_is_invalid() {
        let r = build_claims(
            obj(json!({"iss": "i", "exp": 1e300})),
            Algorithm::RS256,
            None,
            &[],
        );
        assert_eq!(r.err(), Some(ClaimShape::Invalid("exp")));
    }

    #[test]
    fn aud_of_the_wrong_type_is_invalid() {
        let r = build_claims(
            obj(json!({"iss": "i", "exp": 1, "aud": [1]})),
            Algorithm::RS256,
            None,
            &[],
        );
        assert_eq!(r.err(), Some(ClaimShape::Invalid("aud")));
    }

    fn read(text: &str) -> Result<Claims, ReadError> {
        read_claims(text.to_owned(), Algorithm::RS256, None, &scope_claims())
    }

    #[test]
    fn one_pass_reading_gives_what_parsing_the_whole_payload_gives() {
        let v = json!({
            "iss": "i", "sub": "s", "aud": ["a", "b"], "exp": 10.5, "nbf": 1, "iat": 2,
            "jti": "j", "azp": "c", "scope": "x y", "scp": ["z"],
            "org": {"id": [1, "two", null, true]}, "note": "caf\u{e9}",
        });
        let one = read(&v.to_string()).expect("claims");
        let whole =
            build_claims(obj(v.clone()), Algorithm::RS256, None, &scope_claims()).expect("claims");
        assert_eq!(format!("{one:?}"), format!("{whole:?}"));
        assert_eq!(one.client_id(), Some("c"));
        assert_eq!(one.jwt_id(), Some("j"));
        assert_eq!(one.not_before(), Some(1));
        assert_eq!(one.as_json(), &v);
        assert_eq!(one.get("org"), Some(&json!({"id": [1, "two", null, true]})));
    }

    #[test]
    fn one_pass_reading_refuses_what_parsing_the_whole_payload_refuses() {
        for bad in [
            r#"{"iss":"i","exp":1,"x":1,"x":2}"#,
            r#"{"iss":"i","exp":1,"iss":"i"}"#,
            r#"{"iss":"i","exp":1,"scope":"a","scope":"a"}"#,
            r#"{"iss":"i","exp":1,"x":"\ud800"}"#,
            r#"{"iss":"i","exp":1,"x":1e400}"#,
            r#"{"iss":"i","exp":1} x"#,
            r#"["iss","i"]"#,
            r#"{"iss":"i","exp":1,"x":[1,}"#,
        ] {
            assert!(
                serde_json::from_str::<UniqueObject>(bad).is_err(),
                "{bad} parses whole"
            );
            assert_eq!(read(bad).err(), Some(ReadError::Malformed), "{bad}");
        }
        assert_eq!(
            read(r#"{"iss":"i","exp":"1"}"#).err(),
            Some(ReadError::Shape(ClaimShape::Invalid("exp")))
        );
        assert_eq!(
            read(r#"{"exp":1,"scope":"a b"}"#).err(),
            Some(ReadError::Shape(ClaimShape::Missing("iss")))
        );
        for (bad, claim) in [
            (r#"{"iss":"i","exp":1,"aud":["a",1]}"#, "aud"),
            (r#"{"iss":"i","exp":1,"scope":7}"#, "scope"),
            (r#"{"iss":"i","exp":1,"scp":["a b"]}"#, "scope"),
            (r#"{"iss":"i","exp":1e300}"#, "exp"),
            (r#"{"iss":["i"],"exp":1}"#, "iss"),
        ] {
            assert_eq!(
                read(bad).err(),
                Some(ReadError::Shape(ClaimShape::Invalid(claim))),
                "{bad}"
            );
        }
    }

    #[test]
    fn duplicates_are_found_among_many_other_members() {
        let names: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
        for count in [1, 8, 9, 20] {
            let members: String = names[..count]
                .iter()
                .map(|n| format!(r#","{n}":1"#))
                .collect();
            assert!(
                read(&format!(r#"{{"iss":"i","exp":1{members}}}"#)).is_ok(),
                "{count}"
            );
            for dup in [0, count - 1] {
                let text = format!(r#"{{"iss":"i","exp":1{members},"{}":2}}"#, names[dup]);
                assert_eq!(read(&text).err(), Some(ReadError::Malformed), "{text}");
            }
        }
    }

    #[test]
    fn registered_claims_have_their_own_slots() {
        let names = [
            "iss",
            "sub",
            "aud",
            "exp",
            "nbf",
            "iat",
            "jti",
            "client_id",
            "azp",
        ];
        for (i, name) in names.iter().enumerate() {
            assert_eq!(registered(name), Some(i), "{name}");
        }
        for other in [
            "",
            "is",
            "issx",
            "ISS",
            "scp",
            "client_i",
            "client_idx",
            "gty",
            "é",
        ] {
            assert_eq!(registered(other), None, "{other}");
        }
    }

    #[test]
    fn split_spaces_gives_what_split_gives_less_the_empty_parts() {
        for s in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "a  b",
            "  a b  c ",
            "é b",
            "x y\tz",
        ] {
            let want: Vec<&str> = s.split(' ').filter(|t| !t.is_empty()).collect();
            assert_eq!(split_spaces(s).collect::<Vec<_>>(), want, "{s:?}");
        }
    }

    #[test]
    fn scopes_are_sorted_and_unique() {
        let s = Scopes::parse("b a c a b").expect("scopes");
        assert_eq!(s.iter().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn claim_strings_with_and_without_escapes_read_back_whole() {
        let c = read(r#"{"iss":"i\u00e9\"","exp":1,"sub":"plain","jti":"","azp":"a\/b"}"#)
            .expect("claims");
        assert_eq!(c.issuer(), "i\u{e9}\"");
        assert_eq!(c.subject(), Some("plain"));
        assert_eq!(c.jwt_id(), Some(""));
        assert_eq!(c.client_id(), Some("a/b"));
    }

    #[test]
    fn one_pass_reading_finds_nested_roles() {
        let sources = [ScopeSource::Roles("resource_access.my.app.roles".into())];
        let text = r#"{"iss":"i","exp":1,"resource_access":{"my.app":{"roles":["r1"]}}}"#;
        let c = read_claims(text.to_owned(), Algorithm::RS256, None, &sources).expect("claims");
        assert!(c.scopes().contains("r1"));
    }

    #[test]
    fn duplicate_members_are_refused() {
        let r: Result<UniqueObject, _> = serde_json::from_str(r#"{"a":1,"a":2}"#);
        assert!(r.is_err());
        let r: Result<UniqueObject, _> = serde_json::from_str(r#"{"a":1,"b":2}"#);
        assert!(r.is_ok());
    }

    #[test]
    fn scope_tokens_follow_rfc6749() {
        assert!(ScopeToken::new("a\"b").is_err());
        assert!(ScopeToken::new("a\\b").is_err());
        assert!(ScopeToken::new("é").is_err());
        assert!(ScopeToken::new("read:maps").is_ok());
    }

    #[test]
    fn users_can_deserialize_their_own_claims() {
        #[derive(serde::Deserialize)]
        struct Mine {
            org_id: String,
        }
        let c = build_claims(
            obj(json!({"iss": "i", "exp": 1, "org_id": "org_1"})),
            Algorithm::RS256,
            None,
            &[],
        )
        .expect("claims");
        assert_eq!(c.deserialize::<Mine>().expect("mine").org_id, "org_1");
    }
}
