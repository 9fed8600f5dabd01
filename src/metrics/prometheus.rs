//! Renders [`RouterMetrics`] in the Prometheus text exposition format (version 0.0.4).
//!
//! Every series is labelled with its `shard`; per-realm series add `realm`, per-type series add
//! `type` (the WAMP message name, e.g. `PUBLISH`). All series of a family are written even when
//! zero, so dashboards and alerts never see a series appear from nowhere.

use super::{Limit, RouterMetrics, ShardMetrics, ShardState, LATENCY_BOUNDS_US, MESSAGE_TYPES};
use crate::codec::name_of;
use std::fmt::Write;
use std::time::Instant;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value (`\`, `"` and newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One family with one value per shard.
fn per_shard(
    out: &mut String,
    m: &RouterMetrics,
    name: &str,
    kind: &str,
    help: &str,
    value: impl Fn(usize, &ShardMetrics) -> u64,
) {
    family(out, name, kind, help);
    for (i, s) in m.shards.iter().enumerate() {
        let _ = writeln!(out, "{name}{{shard=\"{}\"}} {}", s.shard, value(i, s));
    }
}

/// The whole scrape.
pub fn render(m: &RouterMetrics) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let now = Instant::now();

    family(
        &mut out,
        "switchyard_build_info",
        "gauge",
        "Build information; always 1.",
    );
    let _ = writeln!(
        out,
        "switchyard_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    family(
        &mut out,
        "switchyard_uptime_seconds",
        "gauge",
        "Seconds since the router started.",
    );
    let _ = writeln!(
        out,
        "switchyard_uptime_seconds {:.3}",
        now.duration_since(m.started).as_secs_f64()
    );
    per_shard(
        &mut out,
        m,
        "switchyard_shard_up",
        "gauge",
        "1 while the shard runs and its loop turns, else 0.",
        |_, s| {
            u64::from(
                s.state() == ShardState::Running && s.heartbeat_age(now) <= super::STALL_LIMIT,
            )
        },
    );
    per_shard(
        &mut out,
        m,
        "switchyard_connections",
        "gauge",
        "Open transports on the shard: in their TLS/transport handshake, before HELLO, or joined.",
        |_, s| s.connections.get(),
    );
    per_shard(
        &mut out,
        m,
        "switchyard_longpoll_transports",
        "gauge",
        "Open HTTP long-poll transports whose session runs on the shard (each also counts in switchyard_connections).",
        |_, s| s.longpoll_transports.get(),
    );

    family(
        &mut out,
        "switchyard_sessions",
        "gauge",
        "Sessions joined to a realm.",
    );
    for s in &m.shards {
        for r in s.realms.iter() {
            let _ = writeln!(
                out,
                "switchyard_sessions{{shard=\"{}\",realm=\"{}\"}} {}",
                s.shard,
                escape(&r.name),
                r.sessions.get()
            );
        }
    }
    type Pick = fn(&super::RealmMetrics) -> u64;
    let per_realm: [(&str, &str, &str, Pick); 4] = [
        (
            "switchyard_history_events",
            "gauge",
            "Events kept by event history ([[realm.history]]), on each rule's home shard.",
            |r| r.history_events.get(),
        ),
        (
            "switchyard_retained_events",
            "gauge",
            "Retained events in the shard's replica of the realm's (every shard holds them all).",
            |r| r.retained_events.get(),
        ),
        (
            "switchyard_realm_messages_received_total",
            "counter",
            "Messages from a realm's sessions handed to its broker or dealer.",
            |r| r.messages_in.get(),
        ),
        (
            "switchyard_realm_messages_sent_total",
            "counter",
            "Messages a realm's broker or dealer queued for sessions.",
            |r| r.messages_out.get(),
        ),
    ];
    for (name, kind, help, pick) in per_realm {
        family(&mut out, name, kind, help);
        for s in &m.shards {
            for r in s.realms.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{shard=\"{}\",realm=\"{}\"}} {}",
                    s.shard,
                    escape(&r.name),
                    pick(r)
                );
            }
        }
    }

    for (name, help, inbound) in [
        (
            "switchyard_messages_received_total",
            "WAMP messages received from sessions and decoded, by type.",
            true,
        ),
        (
            "switchyard_messages_sent_total",
            "WAMP messages queued for sessions, by type.",
            false,
        ),
    ] {
        family(&mut out, name, "counter", help);
        for s in &m.shards {
            let by = if inbound {
                &s.messages_in
            } else {
                &s.messages_out
            };
            for c in MESSAGE_TYPES {
                let _ = writeln!(
                    out,
                    "{name}{{shard=\"{}\",type=\"{}\"}} {}",
                    s.shard,
                    name_of(c),
                    by.get(c)
                );
            }
        }
    }

    per_shard(
        &mut out,
        m,
        "switchyard_received_bytes_total",
        "counter",
        "Transport bytes read.",
        |_, s| s.bytes_in.get(),
    );
    per_shard(
        &mut out,
        m,
        "switchyard_sent_bytes_total",
        "counter",
        "Transport bytes written.",
        |_, s| s.bytes_out.get(),
    );
    per_shard(
        &mut out,
        m,
        "switchyard_events_dropped_total",
        "counter",
        "Events dropped because the subscriber's outbound queue was full (slow-consumer policy drop).",
        |_, s| s.events_dropped.get(),
    );
    per_shard(
        &mut out,
        m,
        "switchyard_slow_consumer_disconnects_total",
        "counter",
        "Sessions closed because their outbound queue was full.",
        |_, s| s.slow_consumer_disconnects.get(),
    );
    per_shard(
        &mut out,
        m,
        "switchyard_outbound_queue_bytes",
        "gauge",
        "Bytes waiting in the outbound queues of the shard's sessions.",
        |_, s| s.outbound_queue_bytes.get(),
    );
    per_shard(
        &mut out,
        m,
        "switchyard_mesh_messages_sent_total",
        "counter",
        "Messages the shard sent to other shards.",
        |_, s| s.mesh_sent.get(),
    );
    per_shard(
        &mut out,
        m,
        "switchyard_mesh_messages_received_total",
        "counter",
        "Messages the shard took from its inbox.",
        |_, s| s.mesh_received.get(),
    );
    per_shard(
        &mut out,
        m,
        "switchyard_mesh_backlog",
        "gauge",
        "Messages waiting in the shard's inbox.",
        |i, _| (m.mesh_backlog)(i),
    );
    per_shard(
        &mut out,
        m,
        "switchyard_backpressure_pauses_total",
        "counter",
        "Times a session's input paused because another shard's inbox was backlogged.",
        |_, s| s.backpressure_pauses.get(),
    );
    let name = "switchyard_auth_failures_total";
    family(
        &mut out,
        name,
        "counter",
        "Failed logins by method (none: no offered method available) and reason \
         (no_matching_method, unknown_authid, bad_signature, rejected by the dynamic authenticator).",
    );
    for s in &m.shards {
        for (method, reason, n) in s.auth_failures.series() {
            let _ = writeln!(
                out,
                "{name}{{shard=\"{}\",method=\"{method}\",reason=\"{}\"}} {n}",
                s.shard,
                reason.label(),
            );
        }
    }
    per_shard(
        &mut out,
        m,
        "switchyard_authz_denials_total",
        "counter",
        "Messages refused by authorization (wamp.error.not_authorized).",
        |_, s| s.authz_denials.get(),
    );

    let name = "switchyard_limit_exceeded_total";
    family(
        &mut out,
        name,
        "counter",
        "Times a peer hit a limit: message_size and decompressed_size (transport closed), \
         peer_message_size (not sent; a waiting request gets wamp.error.payload_size_exceeded), \
         handshake_timeout, hello_timeout, frame_timeout and idle_timeout (session closed), \
         connections (refused), pending_calls, subscriptions \
         and registrations (request answered with ERROR switchyard.error.limit_exceeded).",
    );
    for s in &m.shards {
        for l in Limit::ALL {
            let _ = writeln!(
                out,
                "{name}{{shard=\"{}\",limit=\"{}\"}} {}",
                s.shard,
                l.label(),
                s.limit_exceeded.get(l)
            );
        }
    }

    let name = "switchyard_call_latency_seconds";
    family(
        &mut out,
        name,
        "histogram",
        "Time from a session's CALL routed to a callee to the final RESULT or ERROR for it.",
    );
    for s in &m.shards {
        let cum = s.call_latency.cumulative();
        for (b, c) in LATENCY_BOUNDS_US.iter().zip(cum.iter()) {
            let le = *b as f64 / 1e6;
            let _ = writeln!(
                out,
                "{name}_bucket{{shard=\"{}\",le=\"{le}\"}} {c}",
                s.shard
            );
        }
        let total = cum[LATENCY_BOUNDS_US.len()];
        let _ = writeln!(
            out,
            "{name}_bucket{{shard=\"{}\",le=\"+Inf\"}} {total}",
            s.shard
        );
        let _ = writeln!(
            out,
            "{name}_sum{{shard=\"{}\"}} {}",
            s.shard,
            s.call_latency.sum_seconds()
        );
        let _ = writeln!(out, "{name}_count{{shard=\"{}\"}} {total}", s.shard);
    }
    if let Some(c) = &m.cluster {
        render_cluster(&mut out, c);
    }
    super::process::render(&mut out);
    out
}

/// The `switchyard_cluster_*` families (only on a cluster node).
fn render_cluster(out: &mut String, c: &super::ClusterMetrics) {
    use super::ClusterKind;
    use std::sync::atomic::Ordering::Relaxed;
    let node = c.node;
    let series: [(&str, &str, &str, u64); 16] = [
        (
            "switchyard_cluster_registry_granted_total",
            "counter",
            "Claims of a procedure in the cluster's registry that were granted.",
            c.registry_granted.load(Relaxed),
        ),
        (
            "switchyard_cluster_registry_refused_total",
            "counter",
            "Claims refused: another node holds the procedure (single, or another policy), or the registry was unreachable.",
            c.registry_refused.load(Relaxed),
        ),
        (
            "switchyard_cluster_registry_released_total",
            "counter",
            "Claims released (this node's last callee of a procedure left, or a dead node's claims cleaned up).",
            c.registry_released.load(Relaxed),
        ),
        (
            "switchyard_cluster_registry_errors_total",
            "counter",
            "Registry operations that failed (JetStream unreachable, timeout, unreadable entry).",
            c.registry_errors.load(Relaxed),
        ),
        (
            "switchyard_cluster_registry_copies",
            "gauge",
            "Copies of the registry bucket (JetStream) in sync as this node last saw them; below --cluster-replicas while too few NATS servers are up.",
            c.registry_copies.load(Relaxed),
        ),
        (
            "switchyard_cluster_calls_failed_total",
            "counter",
            "Calls failed because the callee's node could not be reached (queue full, NATS cut off, node gone).",
            c.calls_failed.load(Relaxed),
        ),
        (
            "switchyard_cluster_remote_testaments",
            "gauge",
            "Other nodes' sessions whose testaments and on_leave this node keeps (published if their node dies).",
            c.remote_testaments.load(Relaxed),
        ),
        (
            "switchyard_cluster_up",
            "gauge",
            "Always 1 on a cluster node (the node label names it).",
            1,
        ),
        (
            "switchyard_cluster_connected",
            "gauge",
            "1 while the node is connected to NATS.",
            c.connected.load(Relaxed),
        ),
        (
            "switchyard_cluster_degraded",
            "gauge",
            "1 while the node is cut off from NATS (it keeps serving its local sessions).",
            u64::from(c.degraded()),
        ),
        (
            "switchyard_cluster_nodes",
            "gauge",
            "Other nodes of the cluster seen alive.",
            c.nodes.load(Relaxed),
        ),
        (
            "switchyard_cluster_interest_changes_total",
            "counter",
            "Interest changes this node announced to the cluster (registry operations).",
            c.interest_changes.load(Relaxed),
        ),
        (
            "switchyard_cluster_node_joins_total",
            "counter",
            "Nodes seen joining (first heartbeat or a new incarnation).",
            c.node_joins.load(Relaxed),
        ),
        (
            "switchyard_cluster_node_leaves_total",
            "counter",
            "Nodes seen leaving (goodbye, or no heartbeat within the node timeout).",
            c.node_leaves.load(Relaxed),
        ),
        (
            "switchyard_cluster_dropped_total",
            "counter",
            "Publications not sent to the cluster: bridge queue full, NATS refused or unreachable.",
            c.dropped.load(Relaxed),
        ),
        (
            "switchyard_cluster_bad_messages_total",
            "counter",
            "Messages from the cluster that could not be read.",
            c.bad_messages.load(Relaxed),
        ),
    ];
    for (name, kind, help, v) in series {
        family(out, name, kind, help);
        let _ = writeln!(out, "{name}{{node=\"{node}\"}} {v}");
    }
    type Pick = fn(&super::ClusterMetrics) -> &[std::sync::atomic::AtomicU64; ClusterKind::COUNT];
    let traffic: [(&str, &str, Pick); 4] = [
        (
            "switchyard_cluster_messages_sent_total",
            "Messages this node published to NATS, by kind.",
            |c| &c.messages_out,
        ),
        (
            "switchyard_cluster_bytes_sent_total",
            "Payload bytes this node published to NATS, by kind.",
            |c| &c.bytes_out,
        ),
        (
            "switchyard_cluster_messages_received_total",
            "Messages this node received from NATS, by kind.",
            |c| &c.messages_in,
        ),
        (
            "switchyard_cluster_bytes_received_total",
            "Payload bytes this node received from NATS, by kind.",
            |c| &c.bytes_in,
        ),
    ];
    for (name, help, pick) in traffic {
        family(out, name, "counter", help);
        for k in ClusterKind::ALL {
            let _ = writeln!(
                out,
                "{name}{{node=\"{node}\",kind=\"{}\"}} {}",
                k.label(),
                pick(c)[k as usize].load(Relaxed)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::code;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn renders_every_family_with_labels() {
        let epoch = Instant::now();
        let s = Arc::new(ShardMetrics::new(0, &["realm\"1"], epoch));
        s.messages_in.inc(code::PUBLISH);
        s.bytes_in.add(42);
        s.call_latency.observe(Duration::from_millis(3));
        s.limit_exceeded.inc(Limit::PendingCalls);
        let m = RouterMetrics {
            shards: vec![s],
            started: epoch,
            mesh_backlog: Box::new(|_| 7),
            cluster: None,
        };
        let text = render(&m);
        assert!(text.contains("switchyard_messages_received_total{shard=\"0\",type=\"PUBLISH\"} 1"));
        assert!(text.contains("switchyard_received_bytes_total{shard=\"0\"} 42"));
        assert!(text.contains("switchyard_sessions{shard=\"0\",realm=\"realm\\\"1\"} 0"));
        assert!(text.contains("switchyard_mesh_backlog{shard=\"0\"} 7"));
        assert!(
            text.contains("switchyard_limit_exceeded_total{shard=\"0\",limit=\"pending_calls\"} 1")
        );
        assert!(
            text.contains("switchyard_limit_exceeded_total{shard=\"0\",limit=\"hello_timeout\"} 0")
        );
        assert!(
            text.contains("switchyard_call_latency_seconds_bucket{shard=\"0\",le=\"0.0025\"} 0")
        );
        assert!(text.contains("switchyard_call_latency_seconds_bucket{shard=\"0\",le=\"0.005\"} 1"));
        assert!(text.contains("switchyard_call_latency_seconds_count{shard=\"0\"} 1"));
        // Every sample line belongs to a family declared by a TYPE line.
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let metric = l.split(['{', ' ']).next().unwrap();
            assert!(
                families.iter().any(|f| metric == *f
                    || metric
                        .strip_prefix(f)
                        .is_some_and(|rest| { ["_bucket", "_sum", "_count"].contains(&rest) })),
                "{l}"
            );
        }
    }
}
