//! TLS (rustls, `--ca-file`) and basic auth against a real Pushgateway configured with an
//! exporter-toolkit web config: a CA and a server certificate made at test time, a bcrypt
//! password hash, and the credentials never appearing in any output.

mod support;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use support::{cli, free_port, pushgateway_bin};

struct Gateway {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    ca: std::path::PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tls_gateway(user: &str, password: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    std::fs::write(d.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(d.join("server.pem"), leaf.pem()).unwrap();
    std::fs::write(d.join("server.key"), leaf_key.serialize_pem()).unwrap();
    let hash = bcrypt::hash(password, 4).unwrap();
    std::fs::write(
        d.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: {0}/server.pem\n  key_file: {0}/server.key\nbasic_auth_users:\n  {user}: {hash}\n",
            d.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(pushgateway_bin())
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--web.config.file={}", d.join("web.yml").display()))
        .arg(format!(
            "--persistence.file={}",
            d.join("persist").display()
        ))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("server.log")).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "pushgateway did not listen: {}",
            std::fs::read_to_string(d.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Gateway {
        child,
        port,
        ca: d.join("ca.pem"),
        _dir: dir,
    }
}

fn fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/pytest-9.2/junit-xunit2.xml")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn https_with_ca_file_and_basic_auth() {
    let gw = start_tls_gateway("ci", "Sup3r-secret");
    let url = format!("https://127.0.0.1:{}", gw.port);
    let ca = gw.ca.to_string_lossy().into_owned();
    let f = fixture();
    let o = cli()
        .args([
            "push",
            &f,
            "--gateway",
            &url,
            "--project",
            "tls",
            "--ca-file",
            &ca,
            "--basic-auth-user",
            "ci",
        ])
        .env("PTC_METRICS_BASIC_AUTH_PASSWORD", "Sup3r-secret")
        .env_remove("GITHUB_ACTIONS")
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{e}");
    assert!(
        e.ends_with(&format!(
            "pushed 90 tests (15 families) to {url}/metrics/job/pytest/project/tls\n"
        )),
        "{e}"
    );
    // A second push reads the group back over TLS with auth and accumulates.
    let o = cli()
        .args([
            "push",
            &f,
            "--gateway",
            &url,
            "--project",
            "tls",
            "--ca-file",
            &ca,
            "--basic-auth-user",
            "ci",
        ])
        .env("PTC_METRICS_BASIC_AUTH_PASSWORD", "Sup3r-secret")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let pem = std::fs::read(&gw.ca).unwrap();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let text = client
        .get(format!("{url}/metrics"))
        .basic_auth("ci", Some("Sup3r-secret"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        text.contains("pytest_runs_total{instance=\"\",job=\"pytest\",project=\"tls\"} 2\n"),
        "{text}"
    );
}

#[test]
fn untrusted_certificate_and_wrong_password_fail_clearly() {
    let gw = start_tls_gateway("ci", "right-password");
    let url = format!("https://127.0.0.1:{}", gw.port);
    let f = fixture();
    // Without --ca-file the self-made CA is not trusted.
    let o = cli()
        .args([
            "push",
            &f,
            "--gateway",
            &url,
            "--retries",
            "0",
            "--basic-auth-user",
            "ci",
            "--basic-auth-password",
            "right-password",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains(&format!("error: GET {url}/metrics: ")), "{e}");
    assert!(e.contains("certificate"), "{e}");
    assert!(!e.contains("right-password"), "{e}");
    // A wrong password: 401, not retried, not shown.
    let ca = gw.ca.to_string_lossy().into_owned();
    let o = cli()
        .args([
            "push",
            &f,
            "--gateway",
            &url,
            "--ca-file",
            &ca,
            "--basic-auth-user",
            "ci",
            "--retries",
            "4",
        ])
        .env("PTC_METRICS_BASIC_AUTH_PASSWORD", "wr0ng-password")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!(
            "error: GET {url}/metrics: the server answered 401 Unauthorized"
        )),
        "{e}"
    );
    assert!(!e.contains("wr0ng-password"), "{e}");
    // A CA file that is not PEM.
    let o = cli()
        .args([
            "push",
            &f,
            "--gateway",
            &url,
            "--ca-file",
            &f,
            "--soft-fail",
        ])
        .output()
        .unwrap();
    // A configuration mistake: exit 2 even with --soft-fail.
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("holds no PEM certificate") || e.contains("not a PEM certificate file"),
        "{e}"
    );
}

/// An https:// URL for a gateway that speaks plain HTTP: the message says so.
#[test]
fn https_to_a_plain_http_gateway_says_to_use_http() {
    let gw = support::Pushgateway::start();
    let url = gw.url.replacen("http://", "https://", 1);
    let o = cli()
        .args(["push", &fixture(), "--gateway", &url, "--retries", "0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!(
            "\nerror: GET {url}/metrics: cannot connect (received corrupt message of type \
             InvalidContentType: the server speaks plain HTTP; give its http:// URL) after 1 \
             attempt(s); check the URL and that the server is up\n"
        )),
        "{e}"
    );
}
