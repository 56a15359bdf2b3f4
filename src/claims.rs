//! Verified claims and scopes.

use std::borrow::Cow;
use std::collections::BTreeSet;
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
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<ScopeToken>);

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
        let mut set = BTreeSet::new();
        for t in s.split(' ').filter(|t| !t.is_empty()) {
            set.insert(ScopeToken::new(t)?);
        }
        Ok(Self(set))
    }

    /// Whether the scope is granted.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|t| t.as_str() == scope)
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
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(ScopeToken::as_str)
    }

    /// The number of scopes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no scope is granted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn insert(&mut self, t: ScopeToken) {
        self.0.insert(t);
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
        for role in roles {
            if let Ok(t) = ScopeToken::new(role) {
                self.insert(t);
            }
        }
    }

    /// Adds the scopes of a claim value: a space-separated string or an array of tokens.
    pub(crate) fn extend_from_claim(&mut self, v: &Value) -> Result<(), InvalidScope> {
        match v {
            Value::String(s) => {
                for t in s.split(' ').filter(|t| !t.is_empty()) {
                    self.insert(ScopeToken::new(t)?);
                }
                Ok(())
            }
            Value::Array(items) => {
                for item in items {
                    let s = item.as_str().ok_or(InvalidScope(()))?;
                    self.insert(ScopeToken::new(s)?);
                }
                Ok(())
            }
            _ => Err(InvalidScope(())),
        }
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a Scopes {
    type Item = &'a str;
    type IntoIter = std::iter::Map<
        std::collections::btree_set::Iter<'a, ScopeToken>,
        fn(&'a ScopeToken) -> &'a str,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(ScopeToken::as_str)
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
    issuer: String,
    subject: Option<String>,
    audience: Vec<String>,
    expires_at: i64,
    not_before: Option<i64>,
    issued_at: Option<i64>,
    jwt_id: Option<String>,
    client_id: Option<String>,
    scopes: Scopes,
    algorithm: Algorithm,
    key_id: Option<String>,
    raw: RawClaims,
}

/// Every claim as JSON: the payload's text, parsed into a [`Value`] the first time a claim
/// is asked for by name (most requests only need the registered claims and the scopes,
/// which are read in the verifier's single pass). Shared by every clone, so parsed at most
/// once per verified token.
struct RawClaims {
    text: Box<str>,
    value: OnceLock<Value>,
}

impl RawClaims {
    fn value(&self) -> &Value {
        // The text passed `read_claims` (a JSON object, every value parsed as `Value` would
        // parse it), so this cannot fail; `Null` is only a defensive answer.
        self.value
            .get_or_init(|| serde_json::from_str(&self.text).unwrap_or(Value::Null))
    }
}

/// The error of [`Claims::deserialize`].
#[derive(Debug)]
pub struct ClaimsError(serde_json::Error);

impl fmt::Display for ClaimsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the claims do not fit the requested type: {}", self.0)
    }
}

impl std::error::Error for ClaimsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl Claims {
    /// `iss`.
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    /// `sub`, when present.
    pub fn subject(&self) -> Option<&str> {
        self.0.subject.as_deref()
    }

    /// `aud`, as a list (a string `aud` is a list of one).
    pub fn audience(&self) -> &[String] {
        &self.0.audience
    }

    /// `exp`, in seconds since the Unix epoch.
    pub fn expires_at(&self) -> i64 {
        self.0.expires_at
    }

    /// `nbf`, in seconds since the Unix epoch.
    pub fn not_before(&self) -> Option<i64> {
        self.0.not_before
    }

    /// `iat`, in seconds since the Unix epoch.
    pub fn issued_at(&self) -> Option<i64> {
        self.0.issued_at
    }

    /// `jti`, when present.
    pub fn jwt_id(&self) -> Option<&str> {
        self.0.jwt_id.as_deref()
    }

    /// `client_id` (RFC 9068), or else `azp`, when present.
    pub fn client_id(&self) -> Option<&str> {
        self.0.client_id.as_deref()
    }

    /// The granted scopes, read from the configured scope claims.
    pub fn scopes(&self) -> &Scopes {
        &self.0.scopes
    }

    /// The algorithm the token was signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.0.algorithm
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
        C::deserialize(self.0.raw.value()).map_err(ClaimsError)
    }

    /// The time `exp` denotes.
    pub fn expiry(&self) -> SystemTime {
        to_system_time(self.0.expires_at)
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
            .field("iss", &self.0.issuer)
            .field("sub", &self.0.subject)
            .field("aud", &self.0.audience)
            .field("exp", &self.0.expires_at)
            .field("scopes", &self.0.scopes)
            .field("alg", &self.0.algorithm)
            .finish_non_exhaustive()
    }
}

/// A JSON object whose top level has no duplicate member names (a duplicate makes the
/// token ambiguous: parsers disagree on which value wins).
pub(crate) struct UniqueObject(pub(crate) Map<String, Value>);

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
const MAX_DATE: f64 = 253_402_300_799.0;

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
/// claims and the scope sources into [`Claims`], every other member checked as JSON and
/// skipped, its text kept for [`Claims::get`]. Refuses what [`UniqueObject`] refuses.
pub(crate) fn read_claims(
    payload: String,
    algorithm: Algorithm,
    key_id: Option<String>,
    scope_sources: &[ScopeSource],
) -> Result<Claims, ReadError> {
    let fields = {
        let mut de = serde_json::Deserializer::from_str(&payload);
        let fields = Wanted(scope_sources)
            .deserialize(&mut de)
            .map_err(|_| ReadError::Malformed)?;
        de.end().map_err(|_| ReadError::Malformed)?;
        fields
    };
    let raw = RawClaims {
        text: payload.into_boxed_str(),
        value: OnceLock::new(),
    };
    assemble(fields, raw, algorithm, key_id, scope_sources).map_err(ReadError::Shape)
}

/// Reads the registered claims and the scopes of a verified payload already parsed.
#[cfg(test)]
pub(crate) fn build_claims(
    raw: Map<String, Value>,
    algorithm: Algorithm,
    key_id: Option<String>,
    scope_sources: &[ScopeSource],
) -> Result<Claims, ClaimShape> {
    let wanted = Wanted(scope_sources);
    let mut fields = Fields::default();
    for (name, value) in &raw {
        fields.keep(&wanted, name, value.clone());
    }
    let parsed = RawClaims {
        text: Box::default(),
        value: OnceLock::from(Value::Object(raw)),
    };
    assemble(fields, parsed, algorithm, key_id, scope_sources)
}

/// The registered claims [`assemble`] reads, in the order of [`Fields::registered`].
const REGISTERED: [&str; 9] = [
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

/// The members of a payload that [`assemble`] reads.
#[derive(Default)]
struct Fields {
    /// The registered claims, by their index in [`REGISTERED`].
    registered: [Option<Value>; 9],
    /// The top-level members the scope sources may read.
    scope_members: Map<String, Value>,
}

impl Fields {
    fn keep(&mut self, wanted: &Wanted<'_>, name: &str, value: Value) {
        let registered = REGISTERED.iter().position(|r| *r == name);
        if wanted.for_scopes(name) {
            if let Some(i) = registered {
                self.registered[i] = Some(value.clone());
            }
            self.scope_members.insert(name.to_owned(), value);
        } else if let Some(i) = registered {
            self.registered[i] = Some(value);
        }
    }

    fn take(&mut self, name: &'static str) -> Option<Value> {
        let i = REGISTERED.iter().position(|r| *r == name)?;
        self.registered[i].take()
    }

    fn take_string(&mut self, name: &'static str) -> Result<Option<String>, ClaimShape> {
        match self.take(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ClaimShape::Invalid(name)),
        }
    }

    fn numeric_date(&mut self, name: &'static str) -> Result<Option<i64>, ClaimShape> {
        match self.take(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                let f = n.as_f64().ok_or(ClaimShape::Invalid(name))?;
                if !(-MAX_DATE..=MAX_DATE).contains(&f) {
                    return Err(ClaimShape::Invalid(name));
                }
                // `as` is exact here: the value is finite and within i64 range.
                #[allow(clippy::cast_possible_truncation)]
                Ok(Some(f.floor() as i64))
            }
            Some(_) => Err(ClaimShape::Invalid(name)),
        }
    }
}

/// Builds [`Claims`] from the members read, taking their strings rather than copying them.
fn assemble(
    mut fields: Fields,
    raw: RawClaims,
    algorithm: Algorithm,
    key_id: Option<String>,
    scope_sources: &[ScopeSource],
) -> Result<Claims, ClaimShape> {
    // Scopes are read first, but their error is reported after those of the registered
    // claims (the order in which the claims were always checked).
    let scopes = read_scopes(&fields.scope_members, scope_sources);
    let issuer = fields
        .take_string("iss")?
        .ok_or(ClaimShape::Missing("iss"))?;
    let expires_at = fields
        .numeric_date("exp")?
        .ok_or(ClaimShape::Missing("exp"))?;
    let not_before = fields.numeric_date("nbf")?;
    let issued_at = fields.numeric_date("iat")?;
    let subject = fields.take_string("sub")?;
    let jwt_id = fields.take_string("jti")?;
    let client_id = match fields.take_string("client_id")? {
        Some(c) => Some(c),
        None => fields.take_string("azp")?,
    };
    let audience = match fields.take("aud") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or(ClaimShape::Invalid("aud"))?,
        Some(_) => return Err(ClaimShape::Invalid("aud")),
    };
    let scopes = scopes?;
    Ok(Claims(Arc::new(ClaimsInner {
        issuer,
        subject,
        audience,
        expires_at,
        not_before,
        issued_at,
        jwt_id,
        client_id,
        scopes,
        algorithm,
        key_id,
        raw,
    })))
}

fn read_scopes(
    members: &Map<String, Value>,
    sources: &[ScopeSource],
) -> Result<Scopes, ClaimShape> {
    let mut scopes = Scopes::default();
    for source in sources {
        match source {
            ScopeSource::Claim(name) => {
                if let Some(v) = members.get(name.as_str()) {
                    if v.is_null() {
                        continue;
                    }
                    scopes
                        .extend_from_claim(v)
                        .map_err(|_| ClaimShape::Invalid("scope"))?;
                }
            }
            ScopeSource::Roles(path) => {
                if let Some(v) = claim_at(members, path) {
                    scopes.extend_from_roles(v);
                }
            }
        }
    }
    Ok(scopes)
}

/// The one pass of [`read_claims`]: a JSON object whose registered claims and the members
/// the scope sources may read are parsed as [`Value`]s, every other member parsed and
/// dropped as it goes; no member name may appear twice.
struct Wanted<'s>(&'s [ScopeSource]);

impl Wanted<'_> {
    /// Whether a scope source may read the top-level member `name`.
    fn for_scopes(&self, name: &str) -> bool {
        self.0.iter().any(|source| match source {
            ScopeSource::Claim(claim) => claim == name,
            // `claim_at` looks up the whole path, then every part before a dot.
            ScopeSource::Roles(path) => {
                path == name || path.match_indices('.').any(|(i, _)| &path[..i] == name)
            }
        })
    }
}

impl<'de> DeserializeSeed<'de> for Wanted<'_> {
    type Value = Fields;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Fields, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Wanted<'_> {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Fields, A::Error> {
        let mut fields = Fields::default();
        let mut names = Vec::new();
        while let Some(Name(name)) = a.next_key()? {
            if REGISTERED.contains(&&*name) || self.for_scopes(&name) {
                fields.keep(&self, &name, a.next_value::<Value>()?);
            } else {
                a.next_value::<Skip>()?;
            }
            names.push(name);
        }
        // Duplicates are looked for once all names are known: sorting keeps it O(n log n)
        // whatever the payload.
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
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
