//! The Redis contracts between the processes, each crossed for real: the
//! API's outbox relay writes commands of every kind that the orchestrator's
//! consumer decodes; the orchestrator's event publisher reaches the API's
//! subscriber and its SSE streams; and the request id of a `POST
//! /deployments` follows the command into the orchestrator process, onto
//! its log lines and into the instance's action log.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::support::{Opts, Stack};
use futures_util::StreamExt;
use inventiv_common::messages::{Command, CommandKind};
use inventiv_common::InstanceStatus;
use serde_json::{json, Value};
use uuid::Uuid;

/// Every entry of the command stream, decoded by the orchestrator's consumer.
async fn commands(h: &Stack) -> Vec<Command> {
    let mut redis = h.redis.clone();
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(inventiv_common::messages::command_stream(&h.prefix))
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .unwrap();
    reply
        .ids
        .iter()
        .map(|e| inventiv_orchestrator::commands::decode(e).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_message_type_crosses_between_the_api_and_the_orchestrator() {
    let h = Stack::start().await;
    let token = h.team().await;

    // Commands: provision and terminate from HTTP requests, reinstall
    // queued as its handler does; the API's relay publishes them.
    let id = h.deploy(&token, Some("rid-provision")).await;
    let res = h
        .http
        .delete(format!("{}/instances/{id}", h.api))
        .bearer_auth(&token)
        .header("x-request-id", "rid-terminate")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);
    let org: Uuid = sqlx::query_scalar("SELECT organization_id FROM instances WHERE id = $1")
        .bind(id)
        .fetch_one(&h.db)
        .await
        .unwrap();
    let mut tx = h.db.begin().await.unwrap();
    inventiv_store::outbox::enqueue(&mut tx, org, id, CommandKind::Reinstall, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let decoded = h
        .until(
            "three commands on the stream",
            Duration::from_secs(10),
            || async {
                let c = commands(&h).await;
                (c.len() == 3).then_some(c)
            },
        )
        .await;
    let seen: Vec<(CommandKind, Uuid, Uuid, Option<&str>)> = decoded
        .iter()
        .map(|c| {
            (
                c.command,
                c.organization_id,
                c.instance_id,
                c.request_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (CommandKind::Provision, org, id, Some("rid-provision")),
            (CommandKind::Terminate, org, id, Some("rid-terminate")),
            (CommandKind::Reinstall, org, id, None),
        ]
    );

    // Events: the orchestrator's publisher, the API's subscriber, a member's
    // live stream (the API's own events round-trip in its tests).
    let res = h
        .http
        .get(format!("{}/events/stream", h.api))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let mut stream = res.bytes_stream();
    let mut text = String::new();
    let mut redis = h.redis.clone();
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    // Published until it arrives: the stream's subscription may not be live yet.
    loop {
        inventiv_orchestrator::events::instance_changed(
            &mut redis,
            &h.prefix,
            org,
            id,
            InstanceStatus::Installing,
            77,
        )
        .await;
        if let Ok(Some(Ok(chunk))) =
            tokio::time::timeout(Duration::from_millis(200), stream.next()).await
        {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        if text.contains("event: instance.updated") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "no instance.updated: {text}"
        );
    }
    let data = text
        .split("event: instance.updated\n")
        .nth(1)
        .and_then(|f| f.lines().find_map(|l| l.strip_prefix("data: ")))
        .unwrap();
    let event: Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        event,
        json!({ "type": "instance.updated", "organization_id": org, "instance_id": id,
                "status": "installing", "progress": 77 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deployment_s_request_id_reaches_the_orchestrator_s_log_lines_and_action_log() {
    let h = Stack::start().await;
    let orchestrator = h
        .spawn_up(&Opts::new("rid", Ipv4Addr::new(127, 0, 171, 1)))
        .await;
    let token = h.team().await;
    let rid = format!("deploy-{}", Uuid::new_v4().simple());
    let id = h.deploy(&token, Some(&rid)).await;
    h.wait_status(id, "ready", Duration::from_secs(90)).await;

    // Every step the orchestrator recorded carries the request id.
    let logged: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT action_type, request_id FROM action_logs WHERE instance_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&h.db)
    .await
    .unwrap();
    assert!(logged.len() >= 4, "{logged:?}");
    for (action, request_id) in &logged {
        assert_eq!(
            request_id.as_deref(),
            Some(rid.as_str()),
            "{action}: {logged:?}"
        );
    }
    // So does every status change it made.
    let changes: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT to_status, request_id FROM instance_state_history WHERE instance_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&h.db)
    .await
    .unwrap();
    assert!(changes.iter().any(|(s, _)| s == "ready"), "{changes:?}");
    for (status, request_id) in &changes {
        assert_eq!(
            request_id.as_deref(),
            Some(rid.as_str()),
            "{status}: {changes:?}"
        );
    }

    // The process's log lines about the instance carry it too: the command
    // it received and the steps it ran.
    let log = std::fs::read_to_string(&orchestrator.log).unwrap();
    let about: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&id.to_string()))
        .collect();
    assert!(
        about
            .iter()
            .any(|l| l.contains("command{") && l.contains("command received")),
        "no command logged:\n{log}"
    );
    assert!(
        about.iter().any(|l| l.contains("drive{")),
        "no step logged:\n{log}"
    );
    for line in &about {
        assert!(
            line.contains(&format!("request_id={rid}")),
            "a line without the request id: {line}\n{log}"
        );
    }
}
