//! The explorer in a real browser: Debian's Chromium driven by playwright-core
//! (`web/e2e/driver.mjs`) against a real `spore run` serving a seeded store, with the real
//! Python 0.1.2 peer gossiping a record into it while the page is open.
//!
//! Screenshots go to `$CARGO_TARGET_TMPDIR/explorer/` (the README's picture is one of them).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spore_agent::research::noise::{NoiseBook, NoiseKey};
use spore_spec::{ExperimentRecord, Identity, JsonNumber};
use spore_tests::bins::workspace_bin;
use spore_tests::nodes::{PythonNode, PythonNodeOptions, SporeNode, free_port, wait_until};

const CHROMIUM: &str = "/usr/bin/chromium";

/// The browser driver: one JSON command per line in, one answer per line out.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Browser {
    fn start() -> Browser {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: install Debian's chromium (scripts/test does, as root)"
        );
        let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut child = Command::new("node")
            .arg(web.join("e2e/driver.mjs"))
            .current_dir(&web)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node (Node.js runs the browser driver)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut browser = Browser { child, stdin, stdout };
        let hello = browser.answer();
        assert_eq!(hello["ready"], true, "the driver did not start: {hello}");
        browser
    }

    fn answer(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read the driver");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("the driver said {line:?}"))
    }

    fn send(&mut self, command: Value) -> Value {
        writeln!(self.stdin, "{command}").expect("write to the driver");
        self.stdin.flush().expect("flush");
        let answer = self.answer();
        assert_eq!(answer["ok"], true, "{command} failed: {answer}");
        answer
    }

    fn wait(&mut self, selector: &str, timeout_ms: u64) -> Value {
        self.send(json!({"cmd": "wait", "selector": selector, "timeout_ms": timeout_ms}))
    }

    fn count(&mut self, selector: &str) -> u64 {
        self.send(json!({"cmd": "count", "selector": selector}))["count"].as_u64().unwrap_or(0)
    }

    fn text(&mut self, selector: &str) -> String {
        self.send(json!({"cmd": "text", "selector": selector}))["text"].as_str().unwrap_or_default().to_string()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "close"}));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explorer");
    std::fs::create_dir_all(&dir).expect("create the screenshot directory");
    dir
}

fn sign(identity: &Identity, mut record: ExperimentRecord) -> (String, String) {
    identity.sign_record(&mut record);
    let mut wire = Vec::new();
    record.write_wire_payload(&mut wire);
    (record.id.clone(), String::from_utf8(wire).expect("utf-8"))
}

/// A record whose every free-text field carries markup that would run if it were parsed.
fn hostile_record(identity: &Identity) -> (String, String, ExperimentRecord) {
    let mut record = spore_tests::records::record(90_000);
    record.gpu_model = "<img src=x onerror=\"window.__pwned=1;alert('gpu')\">".into();
    record.description = "<script>window.__pwned=1;alert('description')</script>".into();
    record.hypothesis = "<svg onload=\"window.__pwned=1\"></svg>".into();
    record.diff = "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-x = 1\n+<img src=x onerror=\"window.__pwned=1;alert('diff')\">\n"
        .into();
    record.agent_model = "<b onmouseover=alert(1)>agent</b>".into();
    record.val_bpb = JsonNumber::Float(0.5);
    let (id, line) = sign(identity, record.clone());
    (id, line, record)
}

fn import(spore: &Path, data_dir: &Path, lines: &[String]) {
    let file = data_dir.with_extension("jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").expect("write the seed");
    let output = Command::new(spore)
        .args(["record", "import"])
        .arg(&file)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("spore record import");
    assert!(output.status.success(), "import failed: {}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("rejected 0"), "{output:?}");
}

#[test]
fn the_explorer_shows_the_dag_live_and_renders_hostile_records_as_text() {
    spore_tests::python::require_python();
    let spore = workspace_bin("spore-agent", "spore");
    let root = tempfile::tempdir().expect("tempdir");
    let data_dir = root.path().join("node");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let identity = Identity::from_seed([21; 32]);
    let mut lines = spore_tests::seed::research_dag(600, 4, 11);
    let (hostile_id, hostile_line, hostile) = hostile_record(&identity);
    lines.push(hostile_line);
    import(&spore, &data_dir, &lines);
    // The node's measured noise, as its research loop leaves it: σ 0.01 from three runs.
    let mut book = NoiseBook::open(&data_dir);
    let key = NoiseKey { gpu_class: "H100".into(), prepare_cid: "p".repeat(64), time_budget: 300 };
    for v in [0.99, 1.0, 1.01] {
        book.add(&key, &"c".repeat(64), v, spore_agent::node::unix_now());
    }

    let web_port = free_port().expect("a free port");
    let node = SporeNode::start_with_args(
        &spore,
        &data_dir,
        free_port().expect("a free port"),
        &[],
        &["--web-port".into(), web_port.to_string()],
    );
    let base = format!("http://127.0.0.1:{web_port}/");
    wait_until(Duration::from_secs(20), "the explorer to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", web_port)).is_ok()
    });

    let mut browser = Browser::start();
    // The page loads and draws the seeded DAG: the frontier's lineages, in layers.
    let opened = browser.send(json!({"cmd": "open", "url": base}));
    let drawn = opened["nodes"].as_u64().unwrap_or(0);
    assert!(drawn > 20, "only {drawn} nodes drawn: {opened}");
    assert_eq!(browser.text("[data-stat='experiments']"), "601");
    assert!(browser.count("#frontier tbody tr") > 5);
    assert_eq!(
        browser.count(&format!("#dag g.node[data-cid='{hostile_id}']")),
        1,
        "the hostile record is on the frontier"
    );
    // Scoped to one task: the hostile record is a root, so it names a legacy task of its own.
    let choose_task = |browser: &mut Browser, task: &str| {
        browser.send(json!({"cmd": "eval", "expression": format!(
            "(() => {{ const s = document.querySelector('#frontier-task'); s.value = '{task}'; \
             s.dispatchEvent(new Event('change')); }})()")}));
    };
    browser.wait(&format!("#frontier-task option[value='{hostile_id}']"), 5_000);
    choose_task(&mut browser, &hostile_id);
    browser.wait(&format!("#frontier tbody tr:only-child[data-cid='{hostile_id}']"), 5_000);
    choose_task(&mut browser, "");
    browser.wait("#frontier tbody tr:nth-child(6)", 5_000);
    browser.send(json!({"cmd": "screenshot", "path": artifacts().join("explorer-main.png")}));

    // Clicking a node opens its detail, with its lineage.
    let best = browser.text("#frontier tbody tr:nth-child(2) button.link");
    let best_id = browser.send(json!({"cmd": "eval",
        "expression": "document.querySelector('#frontier tbody tr:nth-child(2)').dataset.cid"}))["value"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(best_id.starts_with(&best), "{best} vs {best_id}");
    // The first view may show only the best result's region: show everything, then click.
    browser.send(json!({"cmd": "click", "selector": "#fit"}));
    browser.send(json!({"cmd": "click", "selector": format!("#dag g.node[data-cid='{best_id}']")}));
    browser.wait(&format!("#detail[data-cid='{best_id}']"), 5_000);
    assert_eq!(browser.text("#detail [data-field='id']"), best_id);
    assert!(browser.count("#detail ol.links li") >= 2, "the lineage is listed");
    let url = browser.send(json!({"cmd": "eval", "expression": "location.hash"}))["value"].clone();
    assert_eq!(url, format!("#/experiment/{best_id}"), "a deep link");
    browser.send(json!({"cmd": "screenshot", "path": artifacts().join("explorer-detail.png")}));

    // The best-val_bpb-over-time charts, one per GPU class of the seed (and the hostile one's).
    browser.send(json!({"cmd": "tab", "name": "progress"}));
    browser.wait("#progress svg[data-class='H100'] path.series", 5_000);
    assert_eq!(browser.count("#progress svg[data-class]"), 4);
    // Beside them, the node's noise and the keep margin it gives: t(0.95, 2)·√2·σ.
    browser.wait("#noise tbody tr[data-class='H100']", 5_000);
    assert_eq!(browser.text("#noise tbody tr[data-class='H100'] td:nth-child(3)"), "0.010000");
    assert_eq!(browser.text("#noise tbody tr[data-class='H100'] td:nth-child(5)"), "0.041295");
    // The leaderboard lists every publisher: the seed's four nodes and the hostile record's.
    assert_eq!(browser.count("#leaderboard tbody tr"), 5);

    // A record gossiped in by the real Python peer reaches the feed and the DAG within 2 s.
    browser.send(json!({"cmd": "tab", "name": "activity"}));
    browser.wait("body[data-feed='live']", 5_000);
    let python = PythonNode::start(
        &root.path().join("python"),
        free_port().expect("a free port"),
        &PythonNodeOptions {
            peers: vec![node.address()],
            publish: 1,
            publish_delay: Duration::from_secs(1),
            ..Default::default()
        },
    );
    let mut published = Vec::new();
    wait_until(Duration::from_secs(30), "the Python peer to publish", || {
        published = python.ids().into_iter().filter(|id| !lines.iter().any(|l| l.contains(id.as_str()))).collect();
        !published.is_empty()
    });
    let gossiped = published[0].clone();
    let in_feed = browser.wait(&format!("#activity li[data-cid='{gossiped}']"), 2_000);
    let in_dag = browser.wait(&format!("#dag g.node[data-cid='{gossiped}']"), 2_000);
    eprintln!(
        "gossiped record on the page after {} ms (feed), {} ms (DAG)",
        in_feed["elapsed_ms"], in_dag["elapsed_ms"]
    );
    browser.send(json!({"cmd": "screenshot", "path": artifacts().join("explorer-live.png")}));

    // The hostile record: every field shown as the text it is, nothing runs.
    browser.send(json!({"cmd": "open", "url": format!("{base}#/experiment/{hostile_id}")}));
    browser.wait(&format!("#detail[data-cid='{hostile_id}']"), 5_000);
    assert_eq!(browser.text("#detail [data-field='description']"), hostile.description);
    assert_eq!(browser.text("#detail [data-field='GPU']"), hostile.gpu_model);
    assert_eq!(browser.text("#detail [data-field='agent']"), hostile.agent_model);
    assert!(browser.text("#detail pre.diff").contains("+<img src=x onerror="));
    assert!(browser.text("#detail .hypothesis").contains("<svg onload="));
    assert_eq!(browser.count("#detail img, #detail script, #detail svg, #frontier img, #activity img"), 0);
    browser.send(json!({"cmd": "tab", "name": "activity"}));
    browser.send(json!({"cmd": "click", "selector": "#search"}));
    browser.send(json!({"cmd": "eval", "expression":
        "(() => { const s = document.querySelector('#search'); s.value = 'onerror'; s.dispatchEvent(new Event('input')); })()"}));
    browser.wait(&format!("#search-results button[data-cid='{hostile_id}']"), 3_000);
    browser.send(json!({"cmd": "screenshot", "path": artifacts().join("explorer-hostile.png")}));
    let report = browser.send(json!({"cmd": "report"}));
    assert_eq!(report["dialogs"], json!([]), "a dialog opened: {report}");
    assert_eq!(report["pwned"], false, "{report}");
    assert_eq!(report["csp"], json!([]), "the page broke its own CSP: {report}");
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(report["foreign"], json!([]), "requests left the node: {report}");
    drop(node);
}
