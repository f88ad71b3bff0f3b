//! Redis loses everything while an instance is provisioning: every key of
//! the test's prefix — the command stream with its consumer group and
//! pending entries — is deleted. The orchestrator re-creates its consumer
//! group, the reconcile loop re-derives the work from the database, the
//! instance still reaches `ready`, and later commands (terminate) flow
//! through the new stream and are acknowledged.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::support::{Opts, Stack};

/// Deletes every key under the test's prefix (a FLUSHALL limited to it).
async fn flush_prefix(s: &Stack) -> usize {
    let mut redis = s.redis.clone();
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{}*", s.prefix))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut redis)
            .await
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    keys.len()
}

/// The names of the stream's consumer groups (none when it is gone).
async fn groups(s: &Stack) -> Vec<String> {
    let mut redis = s.redis.clone();
    let reply: redis::RedisResult<Vec<std::collections::HashMap<String, redis::Value>>> =
        redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(format!("{}commands", s.prefix))
            .query_async(&mut redis)
            .await;
    reply
        .unwrap_or_default()
        .iter()
        .filter_map(|g| g.get("name"))
        .filter_map(|v| redis::from_redis_value::<String>(v).ok())
        .collect()
}

/// Entries read by the group and not acknowledged yet.
async fn pending(s: &Stack) -> i64 {
    let mut redis = s.redis.clone();
    let reply: redis::RedisResult<redis::streams::StreamPendingReply> = redis::cmd("XPENDING")
        .arg(format!("{}commands", s.prefix))
        .arg("orchestrators")
        .query_async(&mut redis)
        .await;
    reply.map(|p| p.count() as i64).unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_flushed_during_provisioning() {
    let s = Stack::start().await;
    let token = s.team().await;
    let mut opts = Opts::new("orch-a", Ipv4Addr::new(127, 0, 81, 1));
    // A slow boot keeps the instance provisioning while Redis is emptied.
    opts.boot_delay_ms = 3000;
    let _a = s.spawn_up(&opts).await;

    let id = s.deploy(&token, None).await;
    s.until("the command read", Duration::from_secs(30), || async {
        let has_server = sqlx::query_scalar::<_, Option<String>>(
            "SELECT provider_server_id FROM instances WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&s.db)
        .await
        .unwrap()
        .is_some();
        has_server.then_some(())
    })
    .await;
    assert_eq!(groups(&s).await, ["orchestrators"]);
    let deleted = flush_prefix(&s).await;
    assert!(deleted >= 1, "the command stream existed");
    assert!(groups(&s).await.is_empty());
    let status = s.status(id).await;
    assert!(
        ["provisioning", "booting"].contains(&status.as_str()),
        "flushed too late: {status}"
    );

    s.until(
        "the consumer group re-created",
        Duration::from_secs(30),
        || async { (groups(&s).await == ["orchestrators"]).then_some(()) },
    )
    .await;
    s.wait_status(id, "ready", Duration::from_secs(120)).await;
    s.assert_ready_once(id).await;
    assert_eq!(s.vms().len(), 1);

    // The terminate command goes through the re-created stream and is acked.
    s.terminate_and_check(&token, id).await;
    s.until(
        "the terminate command acked",
        Duration::from_secs(30),
        || async { (pending(&s).await == 0).then_some(()) },
    )
    .await;
    let mut redis = s.redis.clone();
    let entries: i64 = redis::cmd("XLEN")
        .arg(format!("{}commands", s.prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(
        entries >= 1,
        "the terminate command went through the stream"
    );
    assert!(s.vms().is_empty());
}
