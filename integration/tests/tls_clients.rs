//! RESP over TLS (`tls_resp_addr` + `client_tls`) on a one-node cluster, with
//! real clients: redis-cli `--tls`, redis-py `ssl=True` and ioredis `tls`.
//! The server certificate is the node's harness certificate (valid for
//! 127.0.0.1, signed by the cluster CA); client certificates are made here
//! with `dkv::tls`. With `auth_clients: yes` a client without a certificate,
//! or with one from another CA, is refused while a CA-signed one works. A
//! client that is not installed is skipped with a printed reason.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use dkv::raft::NodeId;
use dkv_integration::{
    program_available, run_until_exit, server_binary, ClientTlsPaths, Cluster, NodeConfig,
};

/// A one-node cluster whose TLS listener uses the node's certificate and
/// asks clients for certificates as `auth_clients` says.
async fn tls_cluster(auth_clients: &str) -> Result<Cluster> {
    let auth = auth_clients.to_string();
    Cluster::start_with(1, move |config| {
        let certs = config
            .data_dir
            .parent()
            .map(|p| p.join("certs"))
            .unwrap_or_default();
        config.client_tls = Some(ClientTlsPaths {
            cert_path: certs.join(dkv::tls::node_cert_file(NodeId(config.id))),
            key_path: certs.join(dkv::tls::node_key_file(NodeId(config.id))),
            ca_cert_path: Some(certs.join(dkv::tls::CA_CERT_FILE)),
            auth_clients: auth.clone(),
        });
    })
    .await
}

fn ca_path(cluster: &Cluster) -> PathBuf {
    cluster.certs_dir().join(dkv::tls::CA_CERT_FILE)
}

/// Writes a client certificate (id 100) signed by the CA in `ca_dir` into
/// `out`; returns (cert, key) paths.
fn client_cert(ca: &dkv::tls::PemPair, out: &Path) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(out)?;
    let pair = dkv::tls::generate_node_cert(ca, NodeId(100), &[], 30)?;
    let cert = out.join("client.pem");
    let key = out.join("client-key.pem");
    dkv::tls::write_file(&cert, &pair.cert_pem, 0o644, true)?;
    dkv::tls::write_file(&key, &pair.key_pem, 0o600, true)?;
    Ok((cert, key))
}

/// redis-cli over TLS; returns (success, stdout+stderr).
fn tls_cli(
    addr: SocketAddr,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    args: &[&str],
) -> Result<(bool, String)> {
    let mut c = Command::new("redis-cli");
    c.args(["--tls", "--cacert"]).arg(ca).args([
        "-h",
        &addr.ip().to_string(),
        "-p",
        &addr.port().to_string(),
    ]);
    if let Some((cert, key)) = identity {
        c.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    let output = c
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("spawn redis-cli")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), text))
}

fn plain_cli(addr: SocketAddr, args: &[&str]) -> Result<String> {
    let output = Command::new("redis-cli")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("spawn redis-cli")?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_redis_py_and_ioredis_over_tls() -> Result<()> {
    if !program_available("redis-cli", "--version") {
        println!("SKIPPED: redis-cli is not installed");
        return Ok(());
    }
    let cluster = tls_cluster("no").await?;
    let tls = cluster.tls_resp_addr(0);
    let plain = cluster.resp_addr(0);
    let ca = ca_path(&cluster);

    // redis-cli: a write over TLS is visible on the plain port and back.
    let (ok, out) = tls_cli(tls, &ca, None, &["SET", "tls:cli", "v1"])?;
    assert!(ok && out.trim() == "OK", "{out}");
    assert_eq!(plain_cli(plain, &["GET", "tls:cli"])?.trim(), "v1");
    assert_eq!(plain_cli(plain, &["SET", "plain:k", "p"])?.trim(), "OK");
    let (ok, out) = tls_cli(tls, &ca, None, &["GET", "plain:k"])?;
    assert!(ok && out.trim() == "p", "{out}");
    // CLIENT LIST over TLS lists the TLS connection, laddr = the TLS port.
    let (ok, out) = tls_cli(tls, &ca, None, &["CLIENT", "LIST"])?;
    assert!(ok && out.contains(&format!("laddr={tls}")), "{out}");

    // A client speaking plain RESP to the TLS port fails its handshake and
    // is closed; TLS clients keep working.
    let out = plain_cli(tls, &["PING"])?;
    assert!(
        !out.contains("PONG"),
        "plain RESP answered on the TLS port: {out}"
    );
    let (ok, out) = tls_cli(tls, &ca, None, &["PING"])?;
    assert!(ok && out.trim() == "PONG", "{out}");

    // redis-py with ssl=True, verifying the server against the cluster CA.
    let redis_py = Command::new("/usr/bin/python3")
        .args(["-c", "import redis"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if redis_py {
        let script = "import sys, redis\n\
            r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]), ssl=True, ssl_ca_certs=sys.argv[2])\n\
            assert r.set('tls:py', 'x' * 1000)\n\
            assert r.get('tls:py') == b'x' * 1000\n\
            p = r.pipeline(transaction=False)\n\
            for i in range(100): p.incr('tls:py:n')\n\
            assert p.execute()[-1] == 100\n\
            print('redis-py ok')\n";
        let out = Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .arg(tls.port().to_string())
            .arg(&ca)
            .output()
            .context("spawn python3")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("redis-py ok"),
            "{text}"
        );
        assert_eq!(plain_cli(plain, &["GET", "tls:py:n"])?.trim(), "100");
    } else {
        println!("SKIPPED redis-py part: python3-redis is not installed");
    }

    // ioredis with tls: { ca }.
    let compat = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat");
    if program_available("node", "--version") && compat.join("node_modules/ioredis").exists() {
        let script = "const fs = require('fs'); const Redis = require('ioredis');\n\
            const r = new Redis({ host: '127.0.0.1', port: Number(process.argv[1]),\n\
              tls: { ca: fs.readFileSync(process.argv[2]) }, maxRetriesPerRequest: 1 });\n\
            (async () => {\n\
              await r.set('tls:node', 'hello');\n\
              const v = await r.get('tls:node');\n\
              if (v !== 'hello') throw new Error('got ' + v);\n\
              console.log('ioredis ok'); r.disconnect();\n\
            })().catch((e) => { console.error(e); process.exit(1); });\n";
        let out = Command::new("node")
            .current_dir(&compat)
            .arg("-e")
            .arg(script)
            .arg(tls.port().to_string())
            .arg(&ca)
            .output()
            .context("spawn node")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("ioredis ok"),
            "{text}"
        );
        assert_eq!(plain_cli(plain, &["GET", "tls:node"])?.trim(), "hello");
    } else {
        println!(
            "SKIPPED ioredis part: node or ioredis is not installed \
             (cd integration/compat && npm install ioredis)"
        );
    }
    cluster.shutdown();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_clients_yes_requires_a_ca_signed_certificate() -> Result<()> {
    if !program_available("redis-cli", "--version") {
        println!("SKIPPED: redis-cli is not installed");
        return Ok(());
    }
    let cluster = tls_cluster("yes").await?;
    let tls = cluster.tls_resp_addr(0);
    let ca = ca_path(&cluster);
    let work = cluster.dir().join("clients");
    let cluster_ca = dkv::tls::read_ca(&cluster.certs_dir())?;
    let (cert, key) = client_cert(&cluster_ca, &work.join("good"))?;
    let stranger_ca = dkv::tls::generate_ca("stranger", 30)?;
    let (bad_cert, bad_key) = client_cert(&stranger_ca, &work.join("bad"))?;

    let (ok, out) = tls_cli(tls, &ca, None, &["SET", "k", "no-cert"])?;
    if ok && out.trim() == "OK" {
        bail!("a client without a certificate was served: {out}");
    }
    let (ok, out) = tls_cli(tls, &ca, Some((&bad_cert, &bad_key)), &["SET", "k", "bad"])?;
    if ok && out.trim() == "OK" {
        bail!("a client with another CA's certificate was served: {out}");
    }
    let (ok, out) = tls_cli(tls, &ca, Some((&cert, &key)), &["SET", "k", "good"])?;
    assert!(ok && out.trim() == "OK", "{out}");
    let (ok, out) = tls_cli(tls, &ca, Some((&cert, &key)), &["GET", "k"])?;
    assert!(ok && out.trim() == "good", "{out}");
    // The plain port is unaffected by client_tls.
    assert_eq!(
        plain_cli(cluster.resp_addr(0), &["GET", "k"])?.trim(),
        "good"
    );
    cluster.shutdown();
    Ok(())
}

/// A `client_tls` file that does not exist stops the start, and the error
/// names that file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_client_tls_file_stops_the_start_naming_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let addr = |l: &std::net::TcpListener| l.local_addr();
    let ports = [
        std::net::TcpListener::bind("127.0.0.1:0")?,
        std::net::TcpListener::bind("127.0.0.1:0")?,
        std::net::TcpListener::bind("127.0.0.1:0")?,
    ];
    let missing = dir.path().join("no-such-server.pem");
    let config = NodeConfig {
        id: 1,
        cluster_id: "test".into(),
        resp_addr: addr(&ports[0])?,
        http_addr: addr(&ports[1])?,
        data_dir: dir.path().join("data"),
        peers: Vec::new(),
        tick_ms: 10,
        request_timeout_ms: 5000,
        max_bulk_len_bytes: 1 << 20,
        extra_yaml: String::new(),
        raft_extra: String::new(),
        metrics_addr: None,
        peer_tls: None,
        admin_token_path: None,
        limits_extra: String::new(),
        tls_resp_addr: addr(&ports[2])?,
        client_tls: Some(ClientTlsPaths {
            cert_path: missing.clone(),
            key_path: dir.path().join("key.pem"),
            ca_cert_path: None,
            auth_clients: "no".into(),
        }),
    };
    drop(ports);
    let path = dir.path().join("node.yaml");
    std::fs::write(&path, config.to_yaml())?;
    let report = run_until_exit(
        &server_binary()?,
        &path,
        dir.path(),
        std::time::Duration::from_secs(20),
    )
    .await?;
    assert!(!report.status.success(), "started without its certificate");
    assert!(
        report.stderr.contains(&missing.display().to_string()),
        "stderr does not name {}:\n{}",
        missing.display(),
        report.stderr
    );
    Ok(())
}
