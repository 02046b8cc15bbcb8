//! The operator's in-cluster mirror on a real control plane and a real PostgreSQL: every
//! SporeNode's agent (a real `spore run`, reached through the SporeNode's URL annotation, which
//! the operator is told to follow) is streamed into one database with the token from the Secret
//! the SporeNode controller made, under a cursor of its SporeNode's; a wrong token writes
//! nothing; records two agents share are written once; a deleted SporeNode's mirror stops.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod support;

use std::path::Path;
use std::time::Duration;

use spore_operator::mirror::fleet::{AGENT_URL_ANNOTATION, FleetConfig};
use spore_spec::Identity;
use spore_tests::bins::workspace_bin;
use spore_tests::nodes::{SporeNode, free_port, wait_until};
use spore_tests::testenv::TestEnv;
use spore_tests::testenv::kubernetes::Kubectl;

const NS: &str = "lab";

fn token_of(kubectl: &Kubectl, node: &str) -> String {
    use base64::Engine as _;
    let secret = format!("{node}-grpc-token");
    let data = kubectl.run(&["get", "secret", "-n", NS, &secret, "-o", "jsonpath={.data.token}"], None).unwrap();
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(data.trim()).unwrap()).unwrap()
}

async fn wait_for(url: &str, sql: &str, want: i64, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        last = support::query_i64(url, sql).await;
        if last == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what}: `{sql}` is {last:?}, want {want}");
}

fn agent(tmp: &Path, name: &str, token: &Path) -> SporeNode {
    let extra = ["--grpc-token-file".to_string(), token.display().to_string()];
    SporeNode::start_with_args(
        &workspace_bin("spore-agent", "spore"),
        &tmp.join(name),
        free_port().unwrap(),
        &[],
        &extra,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sporenodes_agent_is_mirrored_once_with_its_token_until_the_sporenode_goes() {
    let env = TestEnv::kubernetes_with_crds_and_postgres("cluster-mirror", 1).expect("control plane and Postgres");
    let url = env.database_url().unwrap().to_string();
    let kubectl = env.kubectl().unwrap();
    kubectl.run(&["create", "namespace", NS], None).unwrap();
    let ctx = support::operator_context(&env).await;
    let metrics = ctx.metrics.clone();
    let controllers = tokio::spawn(spore_operator::run_controllers(ctx.clone()));
    let fleet = FleetConfig {
        database_url: url.clone(),
        agent_url_template: spore_operator::mirror::fleet::default_agent_url_template(),
        batch: 100,
        max_backoff: Duration::from_secs(1),
        resync: Duration::from_millis(500),
        namespaces: vec![NS.to_string()],
        // The agents run outside the cluster: the operator lets their SporeNodes say where.
        url_annotation: true,
        database_ca: None,
        lean_backfill_min: 0,
    };
    let mirrors = tokio::spawn(spore_operator::mirror::fleet::run(ctx.client.clone(), fleet, metrics.clone()));

    // Two SporeNodes; the controller makes each a token.
    let nodes = "apiVersion: sporemesh.io/v1alpha1\nkind: SporeNode\nmetadata: {name: a}\nspec: {}\n---\n\
                 apiVersion: sporemesh.io/v1alpha1\nkind: SporeNode\nmetadata: {name: b}\nspec: {}\n";
    kubectl.run(&["apply", "-n", NS, "-f", "-"], Some(nodes)).unwrap();
    let k = kubectl.clone();
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(60), "both gRPC token Secrets", || {
            ["a", "b"].iter().all(|n| k.run(&["get", "secret", "-n", NS, &format!("{n}-grpc-token")], None).is_ok())
        })
    })
    .await
    .unwrap();

    // Their agents: a holds its token, b a wrong one.
    let tmp = tempfile::tempdir().unwrap();
    let (token_a, token_b) = (tmp.path().join("token-a"), tmp.path().join("token-b"));
    std::fs::write(&token_a, token_of(&kubectl, "a")).unwrap();
    std::fs::write(&token_b, "not-the-token").unwrap();
    let a = agent(tmp.path(), "a", &token_a);
    let b = agent(tmp.path(), "b", &token_b);
    for (name, node) in [("a", &a), ("b", &b)] {
        let annotation = format!("{AGENT_URL_ANNOTATION}=http://127.0.0.1:{}", node.grpc_port);
        kubectl.run(&["annotate", "sporenode", "-n", NS, name, &annotation], None).unwrap();
    }
    // The same records reach both agents in part: 0..300 to a, 200..500 to b.
    let identity = Identity::generate();
    let (a, b, identity) = tokio::task::spawn_blocking(move || {
        a.push_records(&identity, 0..300, 300);
        b.push_records(&identity, 200..500, 300);
        (a, b, identity)
    })
    .await
    .unwrap();
    let mut b = b;

    wait_for(&url, "SELECT count(*) FROM experiments", 300, "a's records arrive").await;
    wait_for(&url, "SELECT last_seq FROM mirror_cursors", 300, "a's cursor").await;
    let b_errors = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("spore_mirror_errors_total{agent=\"lab/b\"} ")?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let refused_before = b_errors(&metrics.mirrors.render());
    let m = metrics.clone();
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(30), "b's mirror to be refused again", || {
            b_errors(&m.mirrors.render()) >= refused_before + 2
        })
    })
    .await
    .unwrap();
    assert_eq!(
        support::query_i64(&url, "SELECT count(*) FROM experiments").await,
        Some(300),
        "a wrong token reads nothing"
    );
    assert_eq!(support::query_i64(&url, "SELECT count(*) FROM mirror_cursors").await, Some(1));

    // b gets its real token: its records arrive, the shared ones once.
    std::fs::write(&token_b, token_of(&kubectl, "b")).unwrap();
    b.stop();
    b.restart();
    wait_for(&url, "SELECT count(*) FROM experiments", 500, "b's records arrive").await;
    wait_for(&url, "SELECT count(*) FROM mirror_cursors WHERE last_seq = 300", 2, "both cursors").await;
    assert_eq!(support::query_i64(&url, "SELECT count(DISTINCT id) FROM experiments").await, Some(500));
    assert_eq!(
        support::query_i64(&url, "SELECT sum(records)::bigint FROM nodes").await,
        Some(500),
        "no double counting"
    );
    // Each cursor is its SporeNode's, not the node id its agent reports.
    let by_sporenode = "SELECT count(*) FROM mirror_cursors WHERE agent LIKE 'sporenode/%'";
    assert_eq!(support::query_i64(&url, by_sporenode).await, Some(2));
    let text = metrics.mirrors.render();
    assert!(text.contains("spore_mirror_cursor{agent=\"lab/a\"} 300"), "{text}");
    assert!(text.contains("spore_mirror_cursor{agent=\"lab/b\"} 300"), "{text}");

    // b's SporeNode is deleted: its mirror stops; a's goes on.
    kubectl.run(&["delete", "sporenode", "-n", NS, "b"], None).unwrap();
    let m = metrics.clone();
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(30), "b's mirror to stop", || !m.mirrors.render().contains("lab/b"))
    })
    .await
    .unwrap();
    let (a, b) = tokio::task::spawn_blocking(move || {
        b.push_records(&identity, 500..550, 350);
        a.push_records(&identity, 600..610, 310);
        (a, b)
    })
    .await
    .unwrap();
    wait_for(&url, "SELECT count(*) FROM experiments", 510, "a's new records arrive").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(support::query_i64(&url, "SELECT count(*) FROM experiments").await, Some(510), "nothing more from b");
    assert_eq!(support::query_i64(&url, "SELECT max(last_seq) FROM mirror_cursors").await, Some(310));
    mirrors.abort();
    controllers.abort();
    drop((a, b));
    drop(env);
}
