//! Scale-out on a NATS cluster: two `portcullis run` processes connected to
//! different nodes of a 3-node cluster, in one queue group. Clients on any
//! node are served; SIGTERM on one host under load loses no login; SIGKILL
//! loses at most the logins in flight on it, and the survivor carries on.

use portcullis_tests::{Deployment, HostProcess, LoginLoad, NatsServer, WAIT, login};
use std::time::{Duration, Instant};

/// Concurrent clients of the load: also the most logins that can be in
/// flight at once, so the most a killed host can lose.
const CLIENTS: usize = 6;

struct Cluster {
    deployment: Deployment,
    nodes: Vec<NatsServer>,
}

impl Cluster {
    async fn start() -> anyhow::Result<Cluster> {
        let deployment = Deployment::new(true)?;
        let base = deployment.server_config();
        let seed = NatsServer::start(&format!(
            "{base}\ncluster {{ name: portcullis, listen: \"127.0.0.1:-1\" }}\n"
        ))?;
        let route = seed.route_port.expect("the seed node listens for routes");
        let mut nodes = vec![seed];
        for _ in 0..2 {
            nodes.push(NatsServer::start(&format!(
                "{base}\ncluster {{ name: portcullis, listen: \"127.0.0.1:-1\", routes: [\"nats-route://127.0.0.1:{route}\"] }}\n"
            ))?);
        }
        // Each joining node has its route to the seed before clients come.
        for node in &nodes[1..] {
            node.wait_for_log("Route connection created").await?;
        }
        Ok(Cluster { deployment, nodes })
    }

    fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }

    /// `portcullis run` connected to node `node`, with `[runtime] workers`
    /// threads if given.
    fn host(&self, node: usize, workers: Option<usize>) -> anyhow::Result<HostProcess> {
        let path = self.deployment.dir.path().join(format!("host-{node}.toml"));
        let mut text = self
            .deployment
            .host_config(&self.nodes[node].url(), &self.deployment.static_users());
        if let Some(n) = workers {
            text = text.replace("[runtime]\n", &format!("[runtime]\nworkers = {n}\n"));
        }
        std::fs::write(&path, text)?;
        HostProcess::start(&path)
    }

    /// Wait until a login on every node succeeds: the hosts' queue
    /// subscriptions have reached the whole cluster.
    async fn wait_until_served_everywhere(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT;
        for url in self.urls() {
            loop {
                let attempt =
                    tokio::time::timeout(Duration::from_secs(5), login(&url, "alice", "alice"));
                if let Ok(Ok(client)) = attempt.await
                    && client.flush().await.is_ok()
                {
                    break;
                }
                anyhow::ensure!(Instant::now() < deadline, "{url} is not served");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_a_cluster_share_the_load_and_survive_losing_one() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    // The first host runs everything on one thread ([runtime] workers = 1),
    // the second on the default pool: both serve, and both drain.
    let mut first = cluster.host(1, Some(1))?;
    assert!(first.log().contains("workers=1"), "{}", first.log());
    let second = cluster.host(2, None)?;
    cluster.wait_until_served_everywhere().await?;

    // SIGTERM under load: the host drains, no login fails.
    let load = LoginLoad::start(&cluster.urls(), CLIENTS);
    load.wait_for_logins(50).await?;
    first.signal("TERM")?;
    let status = first.wait().await?;
    assert!(
        status.success(),
        "drained and exited cleanly: {status}\n{}",
        first.log()
    );
    load.wait_for_logins(100).await?;
    let (ok, failed, errors) = load.finish().await;
    assert_eq!(
        failed,
        0,
        "SIGTERM lost {failed} of {} logins: {errors:?}",
        ok + failed
    );
    assert!(
        second.log().contains("login allowed"),
        "the survivor served logins"
    );

    // SIGKILL under load: at most the logins in flight on it are lost.
    let replacement = cluster.host(1, None)?;
    cluster.wait_until_served_everywhere().await?;
    let load = LoginLoad::start(&cluster.urls(), CLIENTS);
    load.wait_for_logins(50).await?;
    second.signal("KILL")?;
    let after_kill = load.ok();
    load.wait_for_logins(100).await?;
    let (ok, failed, errors) = load.finish().await;
    eprintln!(
        "SIGKILL of one host under {CLIENTS} clients: {failed} logins lost, {} served after the kill ({ok} in all); errors: {errors:?}",
        ok - after_kill
    );
    assert!(
        failed as usize <= CLIENTS,
        "lost {failed}, more than the {CLIENTS} that can be in flight: {errors:?}"
    );
    assert!(replacement.log().contains("login allowed"));
    Ok(())
}
