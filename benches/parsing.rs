//! The cheap steps around verification: scope parsing and checks, and finding the bearer
//! token in a request's headers. See BENCHMARKS.md for the command and the figures.

use std::hint::black_box;

use bearer_guard::{ScopePolicy, Scopes, TokenSource, bearer_token, parse_authorization};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};

/// The scope string of a World Mappers token.
const SCOPE: &str = "geocode:location reverse-geocode:location directions";

/// A token of typical size (an RS256 access token is about 800 characters).
fn token() -> String {
    format!(
        "{}.{}.{}",
        "h".repeat(100),
        "p".repeat(350),
        "s".repeat(342)
    )
}

fn scopes(c: &mut Criterion) {
    let mut group = c.benchmark_group("scopes");
    group.bench_function("parse (3 scopes)", |b| {
        b.iter(|| Scopes::parse(black_box(SCOPE)).expect("valid"));
    });
    let granted = Scopes::parse(SCOPE).expect("valid");
    let all = ScopePolicy::all_of(["geocode:location", "directions"]);
    group.bench_function("policy all_of(2) allows", |b| {
        b.iter(|| black_box(&all).allows(black_box(&granted)));
    });
    let any = ScopePolicy::any_of(["write:maps", "directions"]);
    group.bench_function("policy any_of(2) allows", |b| {
        b.iter(|| black_box(&any).allows(black_box(&granted)));
    });
    group.finish();
}

fn authorization(c: &mut Criterion) {
    let mut group = c.benchmark_group("authorization");
    let value = format!("Bearer {}", token());
    group.bench_function("parse_authorization (800-byte token)", |b| {
        b.iter(|| parse_authorization(black_box(value.as_bytes())).expect("well-formed"));
    });
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&value).expect("header value"),
    );
    headers.insert("accept", HeaderValue::from_static("application/json"));
    headers.insert(
        "user-agent",
        HeaderValue::from_static("gift-deliveries/1.0"),
    );
    let source = TokenSource::AuthorizationHeader;
    group.bench_function("bearer_token (3 headers)", |b| {
        b.iter(|| bearer_token(black_box(&headers), &source).expect("a token"));
    });
    group.finish();
}

criterion_group!(benches, scopes, authorization);
criterion_main!(benches);
