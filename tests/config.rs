//! `VerifierBuilder::build()`: every configuration mistake is a `ConfigError` whose message
//! names the bad value.

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
#[test]
fn build_fails_without_a_crypto_backend() {
    let err = bearer_guard::Verifier::builder()
        .issuer("https://issuer.test/")
        .audience("urn:api")
        .build()
        .expect_err("no backend");
    assert_eq!(err, bearer_guard::ConfigError::NoCryptoBackend);
    assert!(err.to_string().contains("rust-crypto"), "{err}");
}

#[cfg(all(
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]
mod with_a_crypto_backend {
    use std::time::Duration;

    use bearer_guard::dev_issuer::{SigningKey, jwk_set};
    use bearer_guard::{Algorithm, ConfigError, Verifier, VerifierBuilder};
    use serde_json::json;

    const ISSUER: &str = "https://issuer.test/";
    const AUD: &str = "urn:api";
    const SECRET: &[u8] = b"a shared secret of at least 32 bytes, for HS256";

    fn base() -> VerifierBuilder {
        Verifier::builder().issuer(ISSUER).audience(AUD)
    }

    /// Builds, expecting an error whose message contains every one of `names`.
    fn refused(b: VerifierBuilder, names: &[&str]) -> ConfigError {
        let err = b.build().expect_err("the configuration was accepted");
        let msg = err.to_string();
        for name in names {
            assert!(msg.contains(name), "{msg:?} does not name {name:?}");
        }
        err
    }

    fn rsa_jwks() -> String {
        let k = SigningKey::from_pool(Algorithm::RS256, 0, "rsa-1").expect("pool key");
        jwk_set([&k]).to_string()
    }

    #[test]
    fn the_defaults_build() {
        let v = base().build().expect("verifier");
        assert_eq!(v.issuer(), ISSUER);
        assert_eq!(v.audiences(), [AUD]);
    }

    #[test]
    fn an_issuer_is_required() {
        let err = refused(Verifier::builder().audience(AUD), &["issuer"]);
        assert_eq!(err, ConfigError::MissingIssuer);
    }

    #[test]
    fn an_empty_issuer_is_refused() {
        let err = refused(Verifier::builder().issuer("").audience(AUD), &["issuer"]);
        assert_eq!(err, ConfigError::MissingIssuer);
    }

    #[test]
    fn an_audience_is_required() {
        let err = refused(Verifier::builder().issuer(ISSUER), &["audience"]);
        assert_eq!(err, ConfigError::MissingAudience);
    }

    #[test]
    fn an_empty_audience_is_refused() {
        let err = refused(base().audience(""), &["audience"]);
        assert_eq!(err, ConfigError::EmptyAudience);
    }

    #[test]
    fn an_issuer_that_is_not_a_url_is_refused() {
        let err = refused(
            Verifier::builder().issuer("not a url").audience(AUD),
            &["issuer", "not a url"],
        );
        assert!(
            matches!(err, ConfigError::InvalidUrl { what: "issuer", .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_jwks_uri_with_another_scheme_is_refused() {
        let err = refused(
            base().jwks_uri("ftp://issuer.test/jwks"),
            &["jwks_uri", "ftp://issuer.test/jwks"],
        );
        assert!(
            matches!(
                err,
                ConfigError::InvalidUrl {
                    what: "jwks_uri",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_jwks_uri_with_a_fragment_is_refused() {
        let err = refused(
            base().jwks_uri("https://issuer.test/jwks#keys"),
            &["jwks_uri", "https://issuer.test/jwks#keys", "fragment"],
        );
        assert!(
            matches!(
                err,
                ConfigError::InvalidUrl {
                    what: "jwks_uri",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn an_http_issuer_on_a_remote_host_is_refused() {
        let err = refused(
            Verifier::builder()
                .issuer("http://idp.example.com/")
                .audience(AUD),
            &[
                "issuer",
                "http://idp.example.com/",
                "dangerous_allow_insecure_http",
            ],
        );
        assert!(
            matches!(err, ConfigError::InsecureUrl { what: "issuer", .. }),
            "{err:?}"
        );
    }

    #[test]
    fn an_http_jwks_uri_on_a_remote_host_is_refused() {
        let err = refused(
            base().jwks_uri("http://idp.example.com/jwks"),
            &["jwks_uri", "http://idp.example.com/jwks"],
        );
        assert!(
            matches!(
                err,
                ConfigError::InsecureUrl {
                    what: "jwks_uri",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn http_to_a_loopback_host_is_allowed() {
        for url in [
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "http://[::1]:9000/realms/x",
        ] {
            Verifier::builder()
                .issuer(url)
                .audience(AUD)
                .build()
                .unwrap_or_else(|e| panic!("issuer {url}: {e}"));
            base()
                .jwks_uri(format!("{url}jwks"))
                .build()
                .unwrap_or_else(|e| panic!("jwks_uri {url}: {e}"));
        }
    }

    #[test]
    fn http_to_any_host_is_allowed_with_dangerous_allow_insecure_http() {
        Verifier::builder()
            .issuer("http://idp.example.com/")
            .audience(AUD)
            .dangerous_allow_insecure_http()
            .build()
            .expect("issuer");
        base()
            .jwks_uri("http://idp.example.com/jwks")
            .dangerous_allow_insecure_http()
            .build()
            .expect("jwks_uri");
    }

    #[test]
    fn a_jwks_uri_and_a_static_jwks_conflict() {
        let err = refused(
            base()
                .jwks_uri("https://issuer.test/jwks")
                .jwks_json(rsa_jwks()),
            &["JWKS URI", "static JWKS"],
        );
        assert!(
            matches!(err, ConfigError::ConflictingKeySources { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn an_hmac_secret_beside_a_jwks_uri_conflicts() {
        let err = refused(
            base()
                .hmac_secret(SECRET)
                .jwks_uri("https://issuer.test/jwks"),
            &["HMAC secret", "JWKS URI"],
        );
        assert!(
            matches!(err, ConfigError::ConflictingKeySources { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn discovery_beside_static_keys_conflicts() {
        let err = refused(base().discovery().jwks_json(rsa_jwks()), &["discovery"]);
        assert!(
            matches!(err, ConfigError::ConflictingKeySources { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn an_hmac_algorithm_with_a_jwks_is_refused() {
        let err = refused(
            base()
                .jwks_uri("https://issuer.test/jwks")
                .algorithms([Algorithm::RS256, Algorithm::HS256]),
            &["HS256", "hmac_secret"],
        );
        assert!(
            matches!(
                err,
                ConfigError::AlgorithmNotUsable {
                    algorithm: Algorithm::HS256,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn an_rsa_algorithm_with_an_hmac_secret_is_refused() {
        let err = refused(
            base()
                .hmac_secret(SECRET)
                .algorithms([Algorithm::HS256, Algorithm::RS256]),
            &["RS256"],
        );
        assert!(
            matches!(
                err,
                ConfigError::AlgorithmNotUsable {
                    algorithm: Algorithm::RS256,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[cfg(not(feature = "aws-lc-rs"))]
    #[test]
    fn es512_without_aws_lc_rs_is_refused() {
        let err = refused(
            base().algorithms([Algorithm::ES512]),
            &["ES512", "aws-lc-rs"],
        );
        assert!(
            matches!(err, ConfigError::AlgorithmNotUsable { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_weak_hmac_secret_is_refused() {
        let err = refused(
            base().hmac_secret(b"too short"),
            &["9 bytes", "HS256", "32"],
        );
        assert_eq!(
            err,
            ConfigError::WeakSecret {
                algorithm: Algorithm::HS256,
                min_len: 32,
                len: 9
            }
        );
    }

    #[test]
    fn an_hs512_secret_must_have_64_bytes() {
        let err = refused(
            base().hmac_secret(SECRET).algorithms([Algorithm::HS512]),
            &["HS512", "64"],
        );
        assert!(
            matches!(err, ConfigError::WeakSecret { min_len: 64, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn the_secret_is_never_in_the_message() {
        let err = base()
            .hmac_secret(b"hunter2-secret")
            .build()
            .expect_err("weak");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    }

    #[test]
    fn an_empty_algorithm_list_is_refused() {
        let err = refused(base().algorithms([]), &["allow-list"]);
        assert_eq!(err, ConfigError::NoAlgorithms);
    }

    #[test]
    fn an_invalid_pem_is_refused() {
        let err = refused(
            base().pem_key(Algorithm::RS256, "-----BEGIN PUBLIC KEY-----\nnot base64\n"),
            &["PEM #0"],
        );
        assert!(matches!(err, ConfigError::InvalidKey { .. }), "{err:?}");
    }

    #[test]
    fn a_pem_key_for_an_algorithm_outside_the_allow_list_is_refused() {
        let err = refused(
            base()
                .algorithms([Algorithm::ES256])
                .pem_key(Algorithm::RS256, "irrelevant"),
            &["PEM #0", "RS256"],
        );
        assert!(matches!(err, ConfigError::InvalidKey { .. }), "{err:?}");
    }

    #[test]
    fn a_static_jwks_that_is_not_json_is_refused() {
        let err = refused(base().jwks_json("{not json"), &["JSON"]);
        assert!(matches!(err, ConfigError::InvalidKey { .. }), "{err:?}");
    }

    #[test]
    fn a_static_jwks_with_no_usable_key_is_refused() {
        let doc = json!({"keys": [
            {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
            {"kty": "XYZ", "kid": "odd-one"},
        ]});
        let err = refused(
            base().jwks_json(doc.to_string()),
            &["sym", "odd-one", "XYZ"],
        );
        assert!(matches!(err, ConfigError::NoUsableKeys { .. }), "{err:?}");
    }

    #[test]
    fn a_static_jwks_whose_keys_are_not_allowed_is_refused() {
        let err = refused(
            base().algorithms([Algorithm::ES256]).jwks_json(rsa_jwks()),
            &["RS256"],
        );
        assert!(matches!(err, ConfigError::NoUsableKeys { .. }), "{err:?}");
    }

    #[test]
    fn an_empty_scope_claim_name_is_refused() {
        let err = refused(base().scope_claims(["scope", ""]), &["scope claim"]);
        assert!(matches!(err, ConfigError::InvalidValue { .. }), "{err:?}");
    }

    #[test]
    fn an_empty_required_claim_name_is_refused() {
        let err = refused(base().require_claim(""), &["required claim"]);
        assert!(matches!(err, ConfigError::InvalidValue { .. }), "{err:?}");
    }

    /// `build()` refuses the setting, naming it and its value.
    fn out_of_range(b: VerifierBuilder, what: &str, value: &str) {
        let err = refused(b, &[what, value]);
        assert!(matches!(err, ConfigError::OutOfRange { .. }), "{err:?}");
    }

    #[test]
    fn a_leeway_over_five_minutes_is_refused() {
        out_of_range(base().leeway(Duration::from_secs(301)), "leeway", "301s");
    }

    #[test]
    fn a_leeway_of_five_minutes_is_allowed() {
        base()
            .leeway(Duration::from_secs(300))
            .build()
            .expect("verifier");
    }

    #[test]
    fn a_fetch_timeout_out_of_range_is_refused() {
        out_of_range(
            base().fetch_timeout(Duration::from_millis(1)),
            "fetch_timeout",
            "1ms",
        );
        out_of_range(
            base().fetch_timeout(Duration::from_secs(600)),
            "fetch_timeout",
            "600s",
        );
    }

    #[test]
    fn a_max_token_bytes_out_of_range_is_refused() {
        out_of_range(base().max_token_bytes(10), "max_token_bytes", "10");
    }

    #[test]
    fn a_max_jwks_bytes_out_of_range_is_refused() {
        out_of_range(base().max_jwks_bytes(100), "max_jwks_bytes", "100");
    }

    #[test]
    fn zero_max_keys_is_refused() {
        out_of_range(base().max_keys(0), "max_keys", "0");
    }

    #[test]
    fn a_jwks_ttl_with_min_above_max_is_refused() {
        let b = base().jwks_ttl(
            Duration::from_secs(60),
            Duration::from_secs(120),
            Duration::from_secs(90),
        );
        out_of_range(b, "jwks_ttl", "120s");
    }

    #[test]
    fn a_zero_minimum_jwks_ttl_is_refused() {
        let b = base().jwks_ttl(
            Duration::from_secs(60),
            Duration::ZERO,
            Duration::from_secs(90),
        );
        out_of_range(b, "jwks_ttl", "0ns");
    }

    #[test]
    fn a_zero_unknown_kid_cooldown_is_refused() {
        out_of_range(
            base().unknown_kid_refresh(2, Duration::ZERO),
            "unknown_kid_cooldown",
            "0",
        );
    }

    #[test]
    fn a_fetch_backoff_with_initial_above_max_is_refused() {
        let b = base().fetch_backoff(Duration::from_secs(10), Duration::from_secs(1));
        out_of_range(b, "fetch_backoff", "10s");
    }

    #[test]
    fn an_absurd_maximum_jwks_ttl_is_refused() {
        let b = base().jwks_ttl(
            Duration::from_secs(600),
            Duration::from_secs(300),
            Duration::MAX,
        );
        out_of_range(b, "jwks_ttl max", &format!("{:?}", Duration::MAX));
    }

    #[test]
    fn an_absurd_default_jwks_ttl_is_refused() {
        let b = base().jwks_ttl(
            Duration::from_secs(365 * 24 * 3600),
            Duration::from_secs(300),
            Duration::from_secs(600),
        );
        out_of_range(b, "jwks_ttl default", "31536000s");
    }

    #[test]
    fn a_jwks_ttl_of_seven_days_is_allowed() {
        let week = bearer_guard::MAX_JWKS_TTL_BOUND;
        base().jwks_ttl(week, week, week).build().expect("verifier");
    }

    #[test]
    fn a_max_stale_age_out_of_range_is_refused() {
        out_of_range(base().max_stale_age(Duration::ZERO), "max_stale_age", "0ns");
        out_of_range(
            base().max_stale_age(Duration::MAX),
            "max_stale_age",
            &format!("{:?}", Duration::MAX),
        );
    }

    /// A 1024-bit RSA key, SPKI (`PUBLIC KEY`).
    const RSA_1024_SPKI: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDZTCIA15eRXrEl6s7BHmisekkM
+thK9jybm4C+36VZI/ngYZ/ThLKD/Xz3lzMQ5wz09VU7tnMoJhnRZlfi1U6Ej3xr
IT8++6iwHwPDHs8ploDXlEVZBwqZnTsWy5LaoZS1q7Uml5D4QGh5awiaJ9esKrD2
omQBsuLc3lwZQ/IJmwIDAQAB
-----END PUBLIC KEY-----
";

    /// The same key, PKCS#1 (`RSA PUBLIC KEY`).
    const RSA_1024_PKCS1: &str = "-----BEGIN RSA PUBLIC KEY-----
MIGJAoGBANlMIgDXl5FesSXqzsEeaKx6SQz62Er2PJubgL7fpVkj+eBhn9OEsoP9
fPeXMxDnDPT1VTu2cygmGdFmV+LVToSPfGshPz77qLAfA8MezymWgNeURVkHCpmd
OxbLktqhlLWrtSaXkPhAaHlrCJon16wqsPaiZAGy4tzeXBlD8gmbAgMBAAE=
-----END RSA PUBLIC KEY-----
";

    /// A sound 2048-bit RSA key, SPKI.
    const RSA_2048_SPKI: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtM66l8S0QfkcWLNJjAgn
ESZvEtM+WmiAHxSeXalB/75QdeRIbtOE4JmV0yYRGK/Wg7Xv05H8I0vmS/PSHwSU
OgbfAlKwlWyT4luOksW4tjYcFE+T+vJ9k3yzenyTeTiclLvY4JumGhDbbyRMYfYl
od6/FYPcDSI8xBKOtT0DEXu7bwa72ROkKVkv7LJY1NmaSFkFCXvbzyGUh4Zrmj3k
Mi0nSrR2R7XEVaanIBpePyxfT3kxk6a8Tzug9sQYxIRnawom5ryqB7ba/pbVFYU8
I919h9irNGS6BHJ2ukWHukVCXJkDAhIRCLPj2resuMEgWPuHbVhM5ydGwPivqGbZ
0QIDAQAB
-----END PUBLIC KEY-----
";

    #[test]
    fn a_sound_2048_bit_pem_rsa_key_builds() {
        base()
            .pem_key(Algorithm::RS256, RSA_2048_SPKI)
            .build()
            .expect("verifier");
    }

    /// A 2048-bit modulus with the exponent 1.
    const RSA_EXPONENT_1: &str = "-----BEGIN RSA PUBLIC KEY-----
MIIBCAKCAQEAtM66l8S0QfkcWLNJjAgnESZvEtM+WmiAHxSeXalB/75QdeRIbtOE
4JmV0yYRGK/Wg7Xv05H8I0vmS/PSHwSUOgbfAlKwlWyT4luOksW4tjYcFE+T+vJ9
k3yzenyTeTiclLvY4JumGhDbbyRMYfYlod6/FYPcDSI8xBKOtT0DEXu7bwa72ROk
KVkv7LJY1NmaSFkFCXvbzyGUh4Zrmj3kMi0nSrR2R7XEVaanIBpePyxfT3kxk6a8
Tzug9sQYxIRnawom5ryqB7ba/pbVFYU8I919h9irNGS6BHJ2ukWHukVCXJkDAhIR
CLPj2resuMEgWPuHbVhM5ydGwPivqGbZ0QIBAQ==
-----END RSA PUBLIC KEY-----
";

    #[test]
    fn a_1024_bit_pem_rsa_key_is_refused_naming_the_key() {
        for pem in [RSA_1024_SPKI, RSA_1024_PKCS1] {
            let err = refused(
                base().pem_key(Algorithm::RS256, pem),
                &["PEM #0", "shorter than 2048 bits"],
            );
            assert!(matches!(err, ConfigError::InvalidKey { .. }), "{err:?}");
        }
    }

    #[test]
    fn a_weak_pem_rsa_key_after_a_good_one_is_named_by_its_position() {
        let err = refused(
            base()
                .algorithms([Algorithm::RS256, Algorithm::PS256])
                .pem_key(Algorithm::RS256, RSA_2048_SPKI)
                .pem_key(Algorithm::PS256, RSA_1024_SPKI),
            &["PEM #1", "2048"],
        );
        assert!(matches!(err, ConfigError::InvalidKey { .. }), "{err:?}");
    }

    #[test]
    fn a_pem_rsa_key_with_the_exponent_1_is_refused() {
        let err = refused(
            base().pem_key(Algorithm::RS256, RSA_EXPONENT_1),
            &["PEM #0", "exponent"],
        );
        assert!(matches!(err, ConfigError::InvalidKey { .. }), "{err:?}");
    }

    #[test]
    fn an_issuer_with_surrounding_whitespace_is_refused() {
        for issuer in [
            "https://issuer.test/ ",
            " https://issuer.test/",
            "https://issuer.test/\n",
        ] {
            let err = refused(
                Verifier::builder().issuer(issuer).audience(AUD),
                &["issuer", "whitespace", issuer.trim()],
            );
            assert!(matches!(err, ConfigError::InvalidValue { .. }), "{err:?}");
        }
    }

    #[test]
    fn an_issuer_from_discovery_needs_discovery_as_the_key_source() {
        let err = refused(
            Verifier::builder()
                .issuer_from_discovery("https://issuer.test")
                .audience(AUD)
                .jwks_uri("https://issuer.test/jwks"),
            &["issuer_from_discovery", "JWKS URI"],
        );
        assert!(
            matches!(err, ConfigError::ConflictingKeySources { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn an_issuer_from_discovery_over_plain_http_is_refused_even_when_allowed() {
        let err = refused(
            Verifier::builder()
                .issuer_from_discovery("http://idp.example.com")
                .audience(AUD)
                .dangerous_allow_insecure_http(),
            &["http://idp.example.com"],
        );
        assert!(matches!(err, ConfigError::InsecureUrl { .. }), "{err:?}");
    }
}
