//! Prometheus against a real 3-node cluster: every node's `/metrics` passes
//! `promtool check metrics`, gives every family HELP text and the `dkv_`
//! prefix, counts a known workload, and a real `prometheus` (Debian's
//! package) scrapes all three nodes and answers queries over them with the
//! alert rules of `ops/prometheus/alerts.yml` loaded and evaluating. The
//! rules' own unit tests (`promtool test rules`) run here too, and every
//! family the Grafana dashboard and the rules query must be one the nodes
//! export.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use dkv_integration::cluster::Cluster;
use dkv_integration::external::{run_bounded, tool_missing, Spawned};
use dkv_integration::process::program_available;

const ELECTION_BUDGET: Duration = Duration::from_secs(20);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Prometheus gets to scrape every node and evaluate the rules.
const PROMETHEUS_BUDGET: Duration = Duration::from_secs(60);
/// SETs in the workload.
const SETS: usize = 25;

fn ops_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops")
}

/// Both Prometheus programs, or the reason they are missing.
fn prometheus_missing() -> Option<&'static str> {
    if !program_available("promtool", "--version") || !program_available("prometheus", "--version")
    {
        return Some("promtool and prometheus are not installed (apt-get install prometheus)");
    }
    None
}

/// `promtool check metrics` on `text` (its stdin): what it printed, and
/// whether it passed.
async fn promtool_check_metrics(text: &str) -> Result<(bool, String)> {
    use tokio::io::AsyncWriteExt;
    let mut command = Command::new("promtool");
    command.args(["check", "metrics"]);
    dkv_integration::process::die_with_parent(&mut command);
    let mut child = tokio::process::Command::from(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawn promtool")?;
    let mut stdin = child.stdin.take().context("promtool stdin")?;
    stdin.write_all(text.as_bytes()).await?;
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .context("promtool check metrics still running after 30 s")??;
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), printed))
}

/// The families of a `/metrics` text: name → TYPE, and which have HELP.
fn families(text: &str) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let mut types = BTreeMap::new();
    let mut helped = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                types.insert(name.to_string(), kind.to_string());
            }
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, help)) = rest.split_once(' ') {
                if !help.trim().is_empty() {
                    helped.insert(name.to_string());
                }
            }
        }
    }
    (types, helped)
}

/// The value of the sample `series` (name and labels exactly as rendered),
/// if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// Metric names (`dkv_*`, `process_*`) a PromQL-bearing text mentions.
fn mentioned_metrics(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let rest = &text[i..];
        if starts_word && (rest.starts_with("dkv_") || rest.starts_with("process_")) {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.insert(rest[..end].to_string());
            i += end;
        } else {
            i += 1;
        }
    }
    out
}

/// True if `name` is an exported family or one of a histogram's series.
fn exported(name: &str, types: &BTreeMap<String, String>) -> bool {
    if types.contains_key(name) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|base| types.get(base).is_some_and(|kind| kind == "histogram"))
    })
}

/// Percent-encodes a PromQL query for a URL.
fn encode(query: &str) -> String {
    let mut out = String::new();
    for b in query.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /api/v1/<path>` on Prometheus, as JSON with `status: success`.
async fn prometheus_api(addr: SocketAddr, path: &str) -> Result<serde_json::Value> {
    let resp = dkv_integration::http::get(addr, &format!("/api/v1/{path}"), HTTP_TIMEOUT).await?;
    let json: serde_json::Value =
        serde_json::from_slice(&resp.body).with_context(|| format!("{path}: {}", resp.text()))?;
    ensure!(
        json["status"] == "success",
        "{path}: HTTP {} {json}",
        resp.status
    );
    Ok(json)
}

/// The vector result of an instant query.
async fn query(addr: SocketAddr, promql: &str) -> Result<Vec<serde_json::Value>> {
    let json = prometheus_api(addr, &format!("query?query={}", encode(promql))).await?;
    Ok(json["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_rules_pass_their_unit_tests() -> Result<()> {
    if let Some(reason) = prometheus_missing() {
        return tool_missing(reason);
    }
    let ops = ops_dir().join("prometheus");
    let mut check = Command::new("promtool");
    check.arg("check").arg("rules").arg(ops.join("alerts.yml"));
    run_bounded(check, "promtool check rules", Duration::from_secs(60)).await?;
    let mut test = Command::new("promtool");
    test.arg("test")
        .arg("rules")
        .arg(ops.join("alerts_test.yml"));
    let out = run_bounded(test, "promtool test rules", Duration::from_secs(60)).await?;
    ensure!(out.contains("SUCCESS"), "promtool test rules:\n{out}");
    let mut config = Command::new("promtool");
    config
        .arg("check")
        .arg("config")
        .arg(ops.join("prometheus.yml"));
    run_bounded(config, "promtool check config", Duration::from_secs(60)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_node_and_reads_the_series_back() -> Result<()> {
    if let Some(reason) = prometheus_missing() {
        return tool_missing(reason);
    }
    let mut c = Cluster::start(3).await?;
    let leader = c.wait_for_leader(ELECTION_BUDGET).await?;
    let follower = (0..3).find(|&i| i != leader).context("a follower")?;
    let result = scrape_and_query(&c, leader, follower).await;
    if let Err(e) = result {
        bail!("{e:#}\n{}", c.log_report());
    }
    c.shutdown();
    Ok(())
}

async fn scrape_and_query(c: &Cluster, leader: usize, follower: usize) -> Result<()> {
    // A known workload: SETs and a hit and a miss on the leader, a
    // WRONGTYPE error, and reads on a follower.
    let mut conn = c.client(leader).await?;
    for i in 0..SETS {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query_async(&mut conn)
            .await?;
    }
    let _: Option<String> = redis::cmd("GET").arg("k1").query_async(&mut conn).await?;
    let _: Option<String> = redis::cmd("GET")
        .arg("missing")
        .query_async(&mut conn)
        .await?;
    let wrong: redis::RedisResult<i64> = redis::cmd("HLEN").arg("k1").query_async(&mut conn).await;
    ensure!(wrong.is_err(), "HLEN on a string -> {wrong:?}");
    let mut on_follower = c.client(follower).await?;
    let _: Option<String> = redis::cmd("GET")
        .arg("k2")
        .query_async(&mut on_follower)
        .await?;

    let mut exported_types = BTreeMap::new();
    for i in 0..3 {
        let resp = c.http_get(i, "/metrics").await?;
        ensure!(
            resp.status == 200,
            "node {i} /metrics: HTTP {}",
            resp.status
        );
        let text = resp.text();
        let (ok, printed) = promtool_check_metrics(&text).await?;
        ensure!(
            ok && printed.trim().is_empty(),
            "promtool check metrics on node {i}:\n{printed}"
        );
        let (types, helped) = families(&text);
        for name in types.keys() {
            ensure!(
                name.starts_with("dkv_") || name.starts_with("process_"),
                "node {i}: family {name} has neither the dkv_ nor the process_ prefix"
            );
            ensure!(helped.contains(name), "node {i}: family {name} has no HELP");
        }
        for &(name, _, _) in dkv::metrics::FAMILIES {
            // Refusals are labelled by reason and appear with the first one.
            if name == dkv::metrics::RAFT_PEER_INPUT_REFUSED_TOTAL {
                continue;
            }
            ensure!(types.contains_key(name), "node {i}: no {name} family");
        }
        for name in [
            "dkv_command_duration_seconds",
            "dkv_keyspace_hits_total",
            "dkv_used_memory_bytes",
            "dkv_raft_apply_lag_entries",
            "dkv_net_input_bytes_total",
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
        ] {
            ensure!(types.contains_key(name), "node {i}: no {name} family");
        }
        exported_types.extend(types);
    }

    // The workload, counted where it ran.
    let text = c.http_get(leader, "/metrics").await?.text();
    let sets = sample(&text, r#"dkv_commands_total{cmd="set",result="ok"}"#);
    ensure!(
        sets == Some(SETS as f64),
        "leader: dkv_commands_total for SET = {sets:?}, want {SETS}"
    );
    let timed = sample(&text, r#"dkv_command_duration_seconds_count{cmd="set"}"#);
    ensure!(
        timed == Some(SETS as f64),
        "leader: SET latency count = {timed:?}, want {SETS}"
    );
    let inf = sample(
        &text,
        r#"dkv_command_duration_seconds_bucket{cmd="set",le="+Inf"}"#,
    );
    ensure!(
        inf == Some(SETS as f64),
        "leader: SET +Inf bucket = {inf:?}"
    );
    let wrongtype = sample(&text, r#"dkv_error_replies_total{code="WRONGTYPE"}"#);
    ensure!(
        wrongtype == Some(1.0),
        "leader: WRONGTYPE errors = {wrongtype:?}"
    );
    let misses = sample(&text, "dkv_keyspace_misses_total");
    ensure!(misses == Some(1.0), "leader: keyspace misses = {misses:?}");
    let is_leader = sample(&text, "dkv_raft_is_leader");
    ensure!(
        is_leader == Some(1.0),
        "leader: dkv_raft_is_leader = {is_leader:?}"
    );
    let followers = text
        .lines()
        .filter(|l| l.starts_with("dkv_raft_follower_match_index{"))
        .count();
    ensure!(
        followers == 2,
        "leader: {followers} follower match series, want 2"
    );
    let on_follower_text = c.http_get(follower, "/metrics").await?.text();
    let gets = sample(
        &on_follower_text,
        r#"dkv_commands_total{cmd="get",result="ok"}"#,
    );
    ensure!(gets == Some(1.0), "follower: GETs = {gets:?}, want 1");
    ensure!(
        sample(
            &on_follower_text,
            r#"dkv_commands_total{cmd="set",result="ok"}"#
        )
        .is_none(),
        "follower: a SET series although no SET ran there"
    );

    // The dashboard and the alert rules query only families the nodes export.
    let dashboard_path = ops_dir().join("grafana/dkv.json");
    let dashboard = std::fs::read_to_string(&dashboard_path)
        .with_context(|| format!("read {}", dashboard_path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&dashboard).context("dashboard JSON")?;
    let exprs: Vec<String> = json["panels"]
        .as_array()
        .context("dashboard panels")?
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    ensure!(
        exprs.len() >= 20,
        "dashboard has only {} queries",
        exprs.len()
    );
    let rules = std::fs::read_to_string(ops_dir().join("prometheus/alerts.yml"))?;
    for (what, text) in [("dashboard", exprs.join("\n")), ("alerts.yml", rules)] {
        for name in mentioned_metrics(&text) {
            ensure!(
                exported(&name, &exported_types),
                "{what} queries {name}, which no node exports"
            );
        }
    }

    // A real Prometheus scrapes all three nodes, with the alert rules.
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let web: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let targets: Vec<String> = (0..3)
        .map(|i| format!("\"{}\"", c.operator_addr(i)))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: dkv\n    static_configs:\n      - targets: [{}]\n",
        ops_dir().join("prometheus/alerts.yml").display(),
        targets.join(", ")
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config)?;
    let mut command = Command::new("prometheus");
    command
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"));
    let mut prometheus = Spawned::start(command, "prometheus", &dir.path().join("prometheus.log"))?;
    let outcome = read_back(web, leader, c).await;
    let _ = prometheus.stop(Duration::from_secs(10)).await;
    outcome.map_err(|e| anyhow::anyhow!("{e:#}\n{}", prometheus.log_tail(30)))
}

/// Waits (bounded) until Prometheus has every node's series and has
/// evaluated every rule, then checks what it read.
async fn read_back(web: SocketAddr, leader: usize, c: &Cluster) -> Result<()> {
    let deadline = tokio::time::Instant::now() + PROMETHEUS_BUDGET;
    let mut last = String::new();
    loop {
        if tokio::time::Instant::now() >= deadline {
            bail!("Prometheus did not read back the cluster within {PROMETHEUS_BUDGET:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let terms = match query(web, "dkv_raft_term").await {
            Ok(terms) => terms,
            Err(e) => {
                last = format!("{e:#}");
                continue;
            }
        };
        if terms.len() < 3 {
            last = format!("{} of 3 nodes' dkv_raft_term", terms.len());
            continue;
        }
        let rules = prometheus_api(web, "rules").await?;
        let all: Vec<serde_json::Value> = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let evaluated = all
            .iter()
            .filter(|r| r["health"] == "ok" && r["lastEvaluation"] != "0001-01-01T00:00:00Z")
            .count();
        if all.len() < 9 || evaluated < all.len() {
            last = format!("{evaluated} of {} rules evaluated: {rules}", all.len());
            continue;
        }
        break;
    }
    let leaders = query(web, "sum(dkv_raft_is_leader)").await?;
    let total = leaders
        .first()
        .and_then(|r| r["value"][1].as_str())
        .context("sum(dkv_raft_is_leader)")?;
    ensure!(total == "1", "sum(dkv_raft_is_leader) = {total}, want 1");
    let leader_addr = c.operator_addr(leader).to_string();
    let sets = query(
        web,
        &format!(r#"dkv_commands_total{{cmd="set",result="ok",instance="{leader_addr}"}}"#),
    )
    .await?;
    let value = sets
        .first()
        .and_then(|r| r["value"][1].as_str())
        .context("SETs on the leader")?;
    ensure!(
        value == SETS.to_string(),
        "Prometheus: leader SETs = {value}"
    );
    let up = query(web, r#"sum(up{job="dkv"})"#).await?;
    let up = up
        .first()
        .and_then(|r| r["value"][1].as_str())
        .context("up")?;
    ensure!(up == "3", "Prometheus: {up} of 3 targets up");
    let firing = prometheus_api(web, "alerts").await?;
    let alerts = firing["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(alerts.is_empty(), "alerts on a healthy cluster: {alerts:?}");
    Ok(())
}

#[test]
fn metric_names_are_found_in_promql() {
    let found = mentioned_metrics(
        r#"rate(dkv_commands_total{cmd="x"}[1m]) / on(instance) process_cpu_seconds_total + my_dkv_x"#,
    );
    let want: BTreeSet<String> = ["dkv_commands_total", "process_cpu_seconds_total"]
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(found, want);
    let types: BTreeMap<String, String> = [("dkv_h".to_string(), "histogram".to_string())].into();
    assert!(exported("dkv_h_bucket", &types));
    assert!(!exported("dkv_x_bucket", &types));
    assert_eq!(encode("a{b=\"c\"}"), "a%7Bb%3D%22c%22%7D");
}
