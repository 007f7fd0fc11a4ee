//! The policy on repository URLs and data links, called directly: no job, no
//! connection (every internal spelling is refused before anything is resolved).

use super::*;

fn policy(hosts: &[&str]) -> PolicySettings {
    PolicySettings { repo_hosts: hosts.iter().map(|h| h.to_string()).collect(), ..Default::default() }
}

fn loopback_allowed() -> PolicySettings {
    PolicySettings {
        allowed_ranges: vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
        ..Default::default()
    }
}

#[test]
fn local_helper_option_and_credential_urls_are_refused() {
    let p = policy(&[]);
    assert_eq!(RepoUrl::parse("https://example.org/a.git", &p).unwrap().as_str(), "https://example.org/a.git");
    for bad in [
        "file:///etc",
        "ext::sh -c touch% /tmp/x",
        "--upload-pack=touch /tmp/x",
        "https://user:pw@example.org/r",
        "https://token@example.org/r",
        "ssh://example.org/r",
        "/srv/repo",
        "git:///no-host",
        "not a url",
    ] {
        assert!(matches!(RepoUrl::parse(bad, &p), Err(PolicyError::Repo(_))), "{bad}");
    }
}

#[test]
fn hosts_outside_the_allowlist_are_refused() {
    let p = policy(&["git.example.org"]);
    assert!(RepoUrl::parse("https://GIT.example.org/a", &p).is_ok());
    assert_eq!(
        RepoUrl::parse("https://evil.example.net/a", &p),
        Err(PolicyError::Repo("host `evil.example.net` is not in the allowlist".into()))
    );
}

#[test]
fn internal_addresses_in_every_spelling_are_refused_by_default() {
    let p = PolicySettings::default();
    for host in [
        "127.0.0.1",
        "127.0.0.2",
        "2130706433",
        "0x7f000001",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "169.254.169.254",
        "metadata.google.internal",
        "localhost",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.0.10",
        "[fc00::1]",
        "[fd00::1]",
        "[fe80::1]",
    ] {
        for scheme in ["https", "http", "git"] {
            let url = format!("{scheme}://{host}:6390/r");
            assert!(matches!(RepoUrl::parse(&url, &p), Err(PolicyError::Internal { .. })), "{url}");
        }
        let link = format!("http://{host}/x");
        assert!(check_link("in.csv", &link, None, false, &p).is_err(), "{link}");
    }
}

#[test]
fn git_receives_the_normalised_url_that_was_checked() {
    let p = loopback_allowed();
    for raw in ["git://2130706433:9418/r", "git://0x7f000001:9418/r", "git://127.1:9418/r"] {
        assert_eq!(RepoUrl::parse(raw, &p).unwrap().as_str(), "git://127.0.0.1:9418/r", "{raw}");
    }
    assert_eq!(RepoUrl::parse("http://0x7f000001/r", &p).unwrap().as_str(), "http://127.0.0.1/r");
    assert_eq!(RepoUrl::parse("git://[::1]/r", &p).unwrap().as_str(), "git://[::1]/r");
    let url = RepoUrl::parse("git://localhost:9432/r", &p).unwrap();
    assert_eq!(url.pinned_to("127.0.0.1".parse().unwrap()), "git://127.0.0.1:9432/r");
    assert_eq!((url.host(), url.port()), ("localhost", 9432));
}

#[test]
fn resolved_names_are_checked_address_by_address() {
    let p = PolicySettings::default();
    let err = resolve_checked("localhost", 9418, &p).unwrap_err();
    assert!(matches!(err, PolicyError::Internal { kind: "loopback", .. }), "{err}");
    assert!(resolve_checked("localhost", 9418, &loopback_allowed()).is_ok());
    let mixed: Vec<SocketAddr> = vec!["93.184.215.14:443".parse().unwrap(), "10.0.0.1:443".parse().unwrap()];
    assert!(check_resolved("mixed.example", &mixed, &p).is_err());
    assert!(check_resolved("public.example", &mixed[..1], &p).is_ok());
    assert_eq!(check_resolved("nothing.example", &[], &p), Err(PolicyError::Unresolved("nothing.example".into())));
}

#[test]
fn data_links_need_plain_names_http_and_the_right_method() {
    let p = PolicySettings::default();
    assert!(check_link("in.csv", "https://data.example/x", None, false, &p).is_ok());
    assert!(check_link("out.json", "https://h.example/x", Some("POST"), true, &p).is_ok());
    for (name, url, method, sink) in [
        ("../etc", "http://h.example/x", None, false),
        ("a/b", "http://h.example/x", None, false),
        (&*"n".repeat(256), "http://h.example/x", None, false),
        ("x", "file:///etc/passwd", None, false),
        ("x", "http://u:p@h.example/x", None, false),
        ("x", "http://h.example/x", Some("DELETE"), true),
        ("x", "http://h.example/x", Some("PUT"), false),
    ] {
        assert!(check_link(name, url, method, sink, &p).is_err(), "{name} {url}");
    }
    let hosts = PolicySettings { data_hosts: vec!["data.example".into()], ..Default::default() };
    assert!(check_link("x", "https://other.example/x", None, false, &hosts).is_err());
}

#[test]
fn ranges_come_as_a_list_or_one_comma_separated_string() {
    let from_list: PolicySettings = serde_json::from_str(r#"{"allowed_ranges": ["127.0.0.0/8", "::1"]}"#).unwrap();
    let from_text: PolicySettings = serde_json::from_str(r#"{"allowed_ranges": "127.0.0.0/8, ::1"}"#).unwrap();
    assert_eq!(from_list, from_text);
    assert_eq!(from_list.allowed_ranges.len(), 2);
    assert!(serde_json::from_str::<PolicySettings>(r#"{"allowed_ranges": ["nope"]}"#).is_err());
    let ssh = PolicySettings { repo_schemes: vec!["ssh".into()], ..Default::default() };
    assert!(ssh.validate().is_err());
}

#[test]
fn an_environment_variable_opts_in_to_ranges_over_the_files_empty_list() {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        policy: PolicySettings,
    }
    let dir = tempfile_dir();
    std::fs::write(dir.join("svc.yaml"), "policy:\n  allowed_ranges: []\n").unwrap();
    let blocked: Sample = crate::settings::load_from(&dir, "svc").unwrap();
    assert!(blocked.policy.allowed_ranges.is_empty());
    std::env::set_var("GITFAAS__POLICY__ALLOWED_RANGES", "127.0.0.0/8,::1");
    let opted_in = crate::settings::load_from::<Sample>(&dir, "svc");
    std::env::remove_var("GITFAAS__POLICY__ALLOWED_RANGES");
    assert_eq!(opted_in.unwrap().policy.allowed_ranges, loopback_allowed().allowed_ranges);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gitfaas-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn urls_with_whitespace_controls_port_zero_or_past_the_length_are_refused() {
    let p = policy(&[]);
    let long = format!("https://example.org/{}", "a".repeat(MAX_URL_CHARS));
    for bad in ["https://example.org/a b", "git://example.org/a\tb", "https://example.org:0/r", "git://h/\u{85}", &long]
    {
        assert!(RepoUrl::parse(bad, &p).is_err(), "{bad:?}");
        assert!(check_link("f", bad, None, false, &p).is_err(), "{bad:?}");
    }
    let longest = format!("https://example.org/{}", "a".repeat(MAX_URL_CHARS - 20));
    assert!(RepoUrl::parse(&longest, &p).is_ok());
}
