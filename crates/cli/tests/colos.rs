//! Colos as `edgetrace agent`s over a real `nats-server`, each agent in a network namespace of
//! its own reaching one target over its own path; `serve --nats` dispatches to them. Every
//! process runs inside namespaces these tests create and is killed with them. Needs root and
//! the Debian package nats-server.

mod common;

use common::*;
use edgetrace_fleet::nats::{Job, JobOptions, JobReply, async_nats, job_subject};
use edgetrace_testnet::{ColoPaths, ColoPathsSpec, Lab, colo_paths};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// NATS, `serve --nats` in the hub and one agent per colo; returns the token and account.
struct Fleet {
    net: ColoPaths,
    dir: tempfile::TempDir,
    account: String,
    token: String,
    agents: Vec<u32>,
    nats: u32,
}

impl Fleet {
    fn start(tag: &str, spec: &ColoPathsSpec, serve_extra: &[&str]) -> Fleet {
        let mut net = colo_paths(tag, spec).expect("topology");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (account, token) = credentials(&data);
        let hub = net.hub.clone();
        let nats = start_nats(
            &mut net.lab,
            &hub,
            "0.0.0.0",
            4222,
            &dir.path().join("nats.log"),
        );
        let mut argv = vec!["--nats", "nats://127.0.0.1:4222"];
        argv.extend_from_slice(serve_extra);
        start_serve_logged(
            &mut net.lab,
            &hub,
            &data,
            &argv,
            &dir.path().join("serve.log"),
        );
        let mut fleet = Fleet {
            net,
            dir,
            account,
            token,
            agents: Vec::new(),
            nats,
        };
        for i in 1..=spec.routers.len() {
            let pid = fleet.agent(i, "a");
            fleet.agents.push(pid);
        }
        fleet
    }

    /// Starts one more agent for colo `i` (1-based); its log is `agent-c{i}-{suffix}.log`.
    fn agent(&mut self, i: usize, suffix: &str) -> u32 {
        let ns = self.net.colos[i - 1].ns.clone();
        let url = format!("nats://{}:4222", self.net.hub_v4(i));
        let (colo, city) = (format!("c{i}"), format!("City {i}"));
        let log = self.log(&format!("agent-c{i}-{suffix}"));
        self.net
            .lab
            .spawn_logged(
                &ns,
                &[
                    BIN, "agent", "--colo", &colo, "--city", &city, "--nats", &url, "--no-dns",
                ],
                &log,
            )
            .unwrap()
    }

    fn log(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    fn logs(&self) -> String {
        let mut all = String::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "log") {
                all += &format!(
                    "--- {}\n{}\n",
                    e.path().display(),
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                );
            }
        }
        all
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let path = format!("/accounts/{}{path}", self.account);
        api(
            &self.net.lab,
            &self.net.hub,
            "GET",
            &path,
            &self.token,
            None,
        )
    }

    fn trace(&self, body: Value) -> (u16, Value) {
        let path = format!("/accounts/{}/diagnostics/traceroute", self.account);
        api(
            &self.net.lab,
            &self.net.hub,
            "POST",
            &path,
            &self.token,
            Some(&body),
        )
    }

    /// The colos route's `[(name, city, agents)]`.
    fn colos(&self) -> Vec<(String, String, u64)> {
        let (status, body) = self.get("/diagnostics/colos");
        assert_eq!(status, 200, "{body}");
        body["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["city"].as_str().unwrap().to_string(),
                    c["agents"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// Waits until the colos route lists exactly `want` as `(name, agents)`.
    fn wait_colos(&self, want: &[(&str, u64)], timeout: Duration) {
        let start = Instant::now();
        loop {
            let got = self.colos();
            let got: Vec<(&str, u64)> = got.iter().map(|(n, _, a)| (n.as_str(), *a)).collect();
            if got == want {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "colos {got:?}, want {want:?} within {timeout:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn ips(hops: &[std::net::Ipv4Addr]) -> Vec<Vec<String>> {
    hops.iter().map(|ip| vec![ip.to_string()]).collect()
}

/// The colo entry named `name` in a traceroute result entry.
fn entry<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["colos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["colo"]["name"] == name)
        .unwrap_or_else(|| panic!("no colo {name} in {result}"))
}

#[test]
fn three_colos_trace_one_target_over_three_exact_paths() {
    let spec = ColoPathsSpec {
        routers: vec![1, 2, 3],
        ..Default::default()
    };
    let mut fleet = Fleet::start("colos3", &spec, &[]);
    fleet.wait_colos(&[("c1", 1), ("c2", 1), ("c3", 1)], Duration::from_secs(15));
    assert_eq!(fleet.colos()[1].1, "City 2");
    // A second process for c1 shares its work; the route counts it.
    fleet.agent(1, "b");
    fleet.wait_colos(&[("c1", 2), ("c2", 1), ("c3", 1)], Duration::from_secs(15));

    let target = fleet.net.targets_v4[0].to_string();
    let body = json!({"targets": [target], "options": {"max_ttl": 8, "packets_per_ttl": 1}});
    for _ in 0..2 {
        // Twice: each time a different c1 agent may take the job; both trace the same path.
        let (status, body) = fleet.trace(body.clone());
        assert_eq!(status, 200, "{body}\n{}", fleet.logs());
        let result = &body["result"][0];
        assert_eq!(result["target"], target.as_str());
        assert_eq!(result["colos"].as_array().unwrap().len(), 3);
        let mut paths = Vec::new();
        for (i, colo) in fleet.net.colos.iter().enumerate() {
            let name = format!("c{}", i + 1);
            let e = entry(result, &name);
            assert_eq!(e["error"], "", "{e}");
            assert_eq!(e["colo"]["city"], format!("City {}", i + 1));
            assert_eq!(hop_ips(e), ips(&colo.hops_v4), "colo {name}: {e}");
            paths.push(hop_ips(e));
        }
        assert!(paths[0] != paths[1] && paths[1] != paths[2] && paths[0] != paths[2]);
    }

    // Named colos, by name or site code; an unknown one names the known ones.
    let (status, body) = fleet.trace(json!({"targets": [target], "colos": ["c2"]}));
    assert_eq!(status, 200, "{body}");
    let only: Vec<&Value> = body["result"][0]["colos"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(only.len(), 1);
    assert_eq!(hop_ips(only[0]), ips(&fleet.net.colos[1].hops_v4));
    let (status, body) = fleet.trace(json!({"targets": [target], "colos": ["c2", "sin"]}));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["code"], 1005);
    assert_eq!(body["errors"][0]["source"]["pointer"], "/colos/1");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("c1, c2, c3"), "{message}");
}

#[test]
fn agents_that_cannot_do_what_is_asked_answer_the_documented_code_at_once() {
    let spec = ColoPathsSpec {
        routers: vec![1, 1],
        ..Default::default()
    };
    let mut fleet = Fleet::start("colocap", &spec, &[]);
    fleet.wait_colos(&[("c1", 1), ("c2", 1)], Duration::from_secs(15));
    // Colo 2's agent is replaced by one without CAP_NET_RAW (dropped from the bounding set
    // before exec, as an operator running it unprivileged would have it).
    let old = fleet.agents[1];
    fleet.net.lab.kill(old).unwrap();
    let ns = fleet.net.colos[1].ns.clone();
    let url = format!("nats://{}:4222", fleet.net.hub_v4(2));
    let log = fleet.log("agent-c2-nocap");
    let command = format!("exec {BIN} agent --colo c2 --city 'City 2' --nats {url} --no-dns");
    fleet
        .net
        .lab
        .spawn_logged(
            &ns,
            &["capsh", "--drop=cap_net_raw", "--", "-c", &command],
            &log,
        )
        .unwrap();
    let started = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("no CAP_NET_RAW")
    {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{}",
            fleet.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the killed agent's registration lapse so the job reaches the new one.
    std::thread::sleep(Duration::from_secs(4));
    fleet.wait_colos(&[("c1", 1), ("c2", 1)], Duration::from_secs(15));

    let target = fleet.net.targets_v4[0].to_string();
    let started = Instant::now();
    let (status, body) = fleet.trace(json!({"targets": [target],
        "options": {"packet_type": "tcp", "max_ttl": 8, "packets_per_ttl": 1, "wait_time": 5}}));
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    let result = &body["result"][0];
    assert_eq!(entry(result, "c1")["error"], "", "{result}");
    assert_eq!(
        hop_ips(entry(result, "c1")),
        ips(&fleet.net.colos[0].hops_v4)
    );
    assert_eq!(
        entry(result, "c2")["error"],
        "Could not gather traceroute data: Code 4",
        "{result}"
    );
    // The deadline of these options is 40 s: the answer is immediate, not a timeout.
    assert!(took < Duration::from_secs(5), "{took:?}");

    // No IPv6 route in the colos' namespaces: an IPv6 target cannot be probed there (the
    // kernel refuses to send; nothing leaves the namespace), and that is Code 2 at once.
    let started = Instant::now();
    let (status, body) = fleet.trace(json!({"targets": ["2001:db8::1"], "colos": ["c1"],
        "options": {"max_ttl": 8, "packets_per_ttl": 1, "wait_time": 5}}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        entry(&body["result"][0], "c1")["error"],
        "Could not gather traceroute data: Code 2",
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_killed_agent_is_code_3_in_bounded_time_and_the_others_complete() {
    // Colo 3's first link is slow (0.6 s each way), so its trace is still running when its
    // only agent is killed.
    let spec = ColoPathsSpec {
        routers: vec![1, 2, 1],
        delay: Some((3, Duration::from_millis(600))),
        ..Default::default()
    };
    let fleet = Fleet::start("colokill", &spec, &[]);
    fleet.wait_colos(&[("c1", 1), ("c2", 1), ("c3", 1)], Duration::from_secs(15));
    let target = fleet.net.targets_v4[0].to_string();
    // deadline = max_ttl × wait_time + 5 s of resolution = 9 s; the server adds 1 s.
    let bound = Duration::from_secs(4 + 5 + 1);
    let body = json!({"targets": [target], "options": {"max_ttl": 4, "wait_time": 1, "packets_per_ttl": 1}});
    let started = Instant::now();
    let (status, response) = std::thread::scope(|s| {
        let request = s.spawn(|| fleet.trace(body.clone()));
        std::thread::sleep(Duration::from_millis(500));
        let victim = fleet.agents[2];
        // SIGKILL by pid (the lab is borrowed by the request; it reaps the process on drop).
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &victim.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        request.join().unwrap()
    });
    let took = started.elapsed();
    assert_eq!(status, 200, "{response}");
    let result = &response["result"][0];
    let dead = entry(result, "c3");
    assert_eq!(
        dead["error"], "Could not gather traceroute data: Code 3",
        "{dead}"
    );
    assert!(
        took <= bound + Duration::from_millis(1500),
        "answered after {took:?}; bound {bound:?}"
    );
    assert!(
        took >= Duration::from_secs(9),
        "Code 3 before the deadline? {took:?}"
    );
    for i in [1, 2] {
        let e = entry(result, &format!("c{i}"));
        assert_eq!(e["error"], "", "{e}");
        assert_eq!(hop_ips(e), ips(&fleet.net.colos[i - 1].hops_v4));
    }
    // Heartbeats stop: c3 leaves the list; asked for by name, it answers Code 3 at once
    // (no agent is subscribed, NATS says so).
    fleet.wait_colos(&[("c1", 1), ("c2", 1)], Duration::from_secs(10));
    let started = Instant::now();
    let (status, response) = fleet.trace(json!({"targets": [target], "colos": ["c3", "c1"]}));
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        entry(&response["result"][0], "c3")["error"],
        "Could not gather traceroute data: Code 3"
    );
    assert_eq!(entry(&response["result"][0], "c1")["error"], "");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_nats_outage_fails_requests_fast_and_everyone_reconnects() {
    let spec = ColoPathsSpec {
        routers: vec![1],
        ..Default::default()
    };
    let mut fleet = Fleet::start("colonats", &spec, &[]);
    fleet.wait_colos(&[("c1", 1)], Duration::from_secs(15));
    let target = fleet.net.targets_v4[0].to_string();
    let body = json!({"targets": [target], "options": {"max_ttl": 4}});
    let (status, response) = fleet.trace(body.clone());
    assert_eq!(status, 200, "{response}\n{}", fleet.logs());

    fleet.net.lab.kill(fleet.nats).unwrap();
    wait_for_log(
        &fleet.log("serve"),
        "disconnected; reconnecting",
        Duration::from_secs(10),
    );
    let started = Instant::now();
    let (status, response) = fleet.trace(body.clone());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status, 503, "{response}");
    assert_eq!(response["errors"][0]["code"], 1007, "{response}");
    let message = response["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("NATS server nats://127.0.0.1:4222"),
        "{message}"
    );

    // Without heartbeats the agent expires (3 heartbeats + 0.5 s), so seeing it again below
    // proves that both the agent and the server are back on the new server.
    fleet.wait_colos(&[], Duration::from_secs(10));
    let hub = fleet.net.hub.clone();
    let log = fleet.log("nats2");
    fleet.nats = start_nats(&mut fleet.net.lab, &hub, "0.0.0.0", 4222, &log);
    // Backoff is at most 5 s (+25 % jitter); the server asks agents to announce on reconnect.
    fleet.wait_colos(&[("c1", 1)], Duration::from_secs(15));
    let (status, response) = fleet.trace(body);
    assert_eq!(status, 200, "{response}");
    let e = entry(&response["result"][0], "c1");
    assert_eq!(hop_ips(e), ips(&fleet.net.colos[0].hops_v4));
}

/// Publishes `payload` as a job on `subject` and returns the agent's reply.
async fn ask(client: &async_nats::Client, subject: &str, payload: Vec<u8>) -> JobReply {
    let reply = tokio::time::timeout(
        Duration::from_secs(20),
        client.request(subject.to_string(), payload.into()),
    )
    .await
    .expect("the agent answers")
    .expect("request");
    serde_json::from_slice(&reply.payload).unwrap()
}

fn job(colo: &str, target: &str, max_ttl: u64) -> Job {
    Job {
        id: "t1".into(),
        colo: colo.into(),
        target: target.into(),
        options: JobOptions {
            packet_type: "icmp".into(),
            port: 0,
            max_ttl,
            packets_per_ttl: 1,
            wait_time: 1,
            paths: 1,
            mda_confidence: None,
        },
        deadline_ms: 5000,
    }
}

#[test]
fn agents_reject_malformed_and_misaddressed_jobs_and_old_agents_are_refused() {
    let mut lab = Lab::new("coloagent").unwrap();
    let ns = lab.add_ns("solo").unwrap();
    let dir = tempfile::tempdir().unwrap();
    start_nats(
        &mut lab,
        &ns,
        "127.0.0.1",
        4222,
        &dir.path().join("nats.log"),
    );
    let agent_log = dir.path().join("agent.log");
    let url = "nats://127.0.0.1:4222";
    let agent = lab
        .spawn_logged(
            &ns,
            &[BIN, "agent", "--colo", "sin01", "--nats", url, "--no-dns"],
            &agent_log,
        )
        .unwrap();
    wait_for_log(&agent_log, "taking jobs", Duration::from_secs(10));

    let replies = lab
        .in_ns(&ns, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = async_nats::connect(url).await.unwrap();
                let subject = job_subject("sin01");
                let bytes = |j: &Job| serde_json::to_vec(j).unwrap();
                let mut with_extra = serde_json::to_value(job("sin01", "127.0.0.1", 4)).unwrap();
                with_extra["command"] = "rm -rf /".into();
                vec![
                    ask(&client, &subject, b"{not json".to_vec()).await,
                    ask(&client, &subject, serde_json::to_vec(&with_extra).unwrap()).await,
                    ask(&client, &subject, bytes(&job("den01", "127.0.0.1", 4))).await,
                    ask(&client, &subject, bytes(&job("sin01", "127.0.0.1", 99))).await,
                    ask(&client, &subject, bytes(&job("sin01", "-bad-.example", 4))).await,
                    ask(&client, &subject, bytes(&job("sin01", "127.0.0.1", 4))).await,
                ]
            })
        })
        .unwrap();
    let fields: Vec<String> = replies[..5]
        .iter()
        .map(|r| match r {
            JobReply::Rejected { field, .. } => field.clone(),
            other => panic!("executed a bad job: {other:?}"),
        })
        .collect();
    assert_eq!(fields, ["job", "job", "colo", "options.max_ttl", "target"]);
    match &replies[5] {
        JobReply::Done { trace, .. } => {
            assert_eq!(trace.error, "");
            assert_eq!(trace.colo.name, "sin01");
            assert_eq!(trace.hops[0].nodes[0].ip, "127.0.0.1");
        }
        other => panic!("a valid job was not run: {other:?}"),
    }
    let log = std::fs::read_to_string(&agent_log).unwrap();
    assert!(
        log.contains("rejected job: colo: job for colo \"den01\" sent to colo \"sin01\""),
        "{log}"
    );
    assert!(
        log.contains("rejected job: options.max_ttl: options.max_ttl: 99 is out of range"),
        "{log}"
    );

    // A server that wants newer agents refuses this one, which stops; no colo is listed.
    let data = dir.path().join("data");
    let (account, token) = credentials(&data);
    start_serve_logged(
        &mut lab,
        &ns,
        &data,
        &["--nats", url, "--min-agent-version", "99.0.0"],
        &dir.path().join("serve.log"),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = lab.try_wait(agent).unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the old agent still runs"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1));
    let log = std::fs::read_to_string(&agent_log).unwrap();
    assert!(
        log.contains(&format!(
            "refused by the server: this agent's version {} is older than the minimum 99.0.0",
            env!("CARGO_PKG_VERSION")
        )),
        "{log}"
    );
    let serve_log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(
        serve_log.contains("older than --min-agent-version 99.0.0"),
        "{serve_log}"
    );
    let (status, body) = api(
        &lab,
        &ns,
        "GET",
        &format!("/accounts/{account}/diagnostics/colos"),
        &token,
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(body["result"], json!([]));
    let (status, body) = api(
        &lab,
        &ns,
        "POST",
        &format!("/accounts/{account}/diagnostics/traceroute"),
        &token,
        Some(&json!({"targets": ["127.0.0.1"], "colos": ["sin01"]})),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["code"], 1005);
}

#[test]
fn bad_flags_name_the_flag() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(BIN).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = run(&["agent", "--colo", "Sin 01", "--nats", "nats://127.0.0.1:1"]);
    assert!(
        e.contains("--colo \"Sin 01\": must be 1-32 characters"),
        "{e}"
    );
    let e = run(&["agent", "--colo", "sin01", "--nats", "http://127.0.0.1:1"]);
    assert!(
        e.contains("--nats \"http://127.0.0.1:1\": expected nats://HOST:PORT"),
        "{e}"
    );
    let e = run(&[
        "serve",
        "--nats",
        "nats://127.0.0.1:1",
        "--min-agent-version",
        "1.x",
    ]);
    assert!(
        e.contains("--min-agent-version") && e.contains("MAJOR.MINOR.PATCH"),
        "{e}"
    );
    let e = run(&["serve", "--database", "mysql://x/y"]);
    assert!(e.contains("--database: expected postgres://"), "{e}");
}

/// Figures for the dispatch overhead (`bench/dispatch.sh`): a 10-target request to N colos
/// against the slowest single trace in it.
#[test]
#[ignore = "benchmark: bench/dispatch.sh"]
fn dispatch_overhead_figures() {
    let counts: Vec<usize> = std::env::var("COLOS")
        .unwrap_or_else(|_| "1,3,5,20".into())
        .split(',')
        .map(|n| n.trim().parse().unwrap())
        .collect();
    let runs = 7;
    println!("colos  targets  request_ms(median)  slowest_trace_ms  overhead_ms(median, min..max)");
    for n in counts {
        let spec = ColoPathsSpec {
            routers: vec![1; n],
            extra_targets: 9,
            ..Default::default()
        };
        let fleet = Fleet::start(&format!("bench{n}"), &spec, &["--rate-limit", "0"]);
        let want: Vec<(String, u64)> = (1..=n).map(|i| (format!("c{i}"), 1)).collect();
        let want: Vec<(&str, u64)> = want.iter().map(|(s, a)| (s.as_str(), *a)).collect();
        let mut sorted = want.clone();
        sorted.sort();
        fleet.wait_colos(&sorted, Duration::from_secs(30));
        let targets: Vec<String> = fleet.net.targets_v4.iter().map(|t| t.to_string()).collect();
        let body = json!({"targets": targets, "options": {"max_ttl": 4, "packets_per_ttl": 1}});
        fleet.trace(body.clone()); // warm-up: connections, caches
        let mut overheads = Vec::new();
        let mut walls = Vec::new();
        let mut slowest_all = 0;
        for _ in 0..runs {
            let started = Instant::now();
            let (status, response) = fleet.trace(body.clone());
            let wall = started.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(status, 200, "{response}");
            let mut slowest = 0u64;
            for t in response["result"].as_array().unwrap() {
                for c in t["colos"].as_array().unwrap() {
                    assert_eq!(c["error"], "", "{c}");
                    slowest = slowest.max(c["traceroute_time_ms"].as_u64().unwrap());
                }
            }
            slowest_all = slowest_all.max(slowest);
            overheads.push(wall - slowest as f64);
            walls.push(wall);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        };
        let (lo, hi) = (
            overheads.iter().cloned().fold(f64::MAX, f64::min),
            overheads.iter().cloned().fold(f64::MIN, f64::max),
        );
        println!(
            "{n:>5}  {:>7}  {:>18.1}  {slowest_all:>16}  {:>8.1} ({lo:.1}..{hi:.1})",
            targets.len(),
            median(&mut walls),
            median(&mut overheads),
        );
    }
}
