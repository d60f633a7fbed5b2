//! `Response.DumpRecorder`: an operator's dump of the flight recorder. The request is checked
//! here (a malformed field is `INVALID_ARGUMENT` naming it), handed to the pipeline task's
//! recorder stage through a bounded queue, and answered when the dump writer's thread has
//! finished the file: the pipeline never waits for the client, nor for the disk.

use std::time::Duration;

use tokio::sync::{mpsc::error::TrySendError, oneshot};
use tonic::Status;

use super::{Shared, proto};
use crate::forensics::{
    DumpRequest, Scope,
    dump::Written,
    stage::{Ask, AskError},
};

/// The longest post-trigger window an operator may ask for.
const POST_MAX_S: u32 = 300;
/// The longest reason kept (bytes).
const REASON_MAX: usize = 1024;
/// Beyond the post-trigger window, how long writing the file may take before the client is
/// told (the dump is still written).
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Asks the recorder for the dump `message` describes, on behalf of `peer`.
pub(super) async fn dump(
    shared: &Shared,
    peer: String,
    message: proto::DumpRecorderRequest,
) -> Result<proto::DumpRecorderReply, Status> {
    let request = request_of(message, peer)?;
    let asks = match shared.recorder() {
        None => return Err(Status::unavailable("the agent is starting: try again")),
        Some(None) => {
            return Err(Status::failed_precondition(
                "the flight recorder is off ([recorder] enabled = false)",
            ));
        }
        Some(Some(asks)) => asks,
    };
    let wait = Duration::from_nanos(request.post_ns) + WRITE_TIMEOUT;
    let (tx, rx) = oneshot::channel();
    let ask = Ask {
        request,
        reply: Some(tx),
    };
    match asks.try_send(ask) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return Err(Status::resource_exhausted(
                "the flight recorder has too many dumps asked of it: try again",
            ));
        }
        Err(TrySendError::Closed(_)) => return Err(Status::unavailable("the agent is stopping")),
    }
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(Ok(written))) => Ok(reply(written)),
        Ok(Ok(Err(error @ AskError::Dropped))) => {
            Err(Status::resource_exhausted(error.to_string()))
        }
        Ok(Ok(Err(error @ AskError::Write(_)))) => Err(Status::internal(error.to_string())),
        Ok(Err(_)) => Err(Status::unavailable(
            "the agent stopped before the dump was written",
        )),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "the dump was not written within {} s; it may still appear in [recorder] dir",
            wait.as_secs()
        ))),
    }
}

fn invalid(field: &str, message: &str) -> Status {
    Status::invalid_argument(format!("{field}: {message}"))
}

/// The recorder's request for `message`, or `INVALID_ARGUMENT` naming the malformed field.
pub(super) fn request_of(
    message: proto::DumpRecorderRequest,
    peer: String,
) -> Result<DumpRequest, Status> {
    use proto::dump_recorder_request::Scope as S;
    let scope = match message.scope {
        None => Scope::All,
        Some(S::Pid(0)) => return Err(invalid("pid", "0 is not a process id")),
        Some(S::Pid(pid)) => Scope::tree_of_pid(pid),
        Some(S::ContainerId(id)) if id.is_empty() => {
            return Err(invalid("container_id", "empty"));
        }
        Some(S::ContainerId(id)) => Scope::Container(id),
        Some(S::Pod(pod)) if pod.namespace.is_empty() => {
            return Err(invalid("pod.namespace", "required"));
        }
        Some(S::Pod(pod)) if pod.name.is_empty() => return Err(invalid("pod.name", "required")),
        Some(S::Pod(pod)) => Scope::Pod {
            namespace: pod.namespace,
            name: pod.name,
        },
    };
    if message.post_seconds > POST_MAX_S {
        return Err(invalid(
            "post_seconds",
            &format!("at most {POST_MAX_S} (asked {})", message.post_seconds),
        ));
    }
    if message.reason.len() > REASON_MAX {
        return Err(invalid("reason", &format!("at most {REASON_MAX} bytes")));
    }
    let mut metadata = vec![("requested_by".to_owned(), peer)];
    if !message.reason.is_empty() {
        metadata.push(("reason".to_owned(), message.reason));
    }
    Ok(DumpRequest {
        // Set by the recorder stage.
        id: 0,
        reason: "api".into(),
        // All the ring holds, unless less is asked (the stage caps it to the ring's age).
        pre_ns: match message.pre_seconds {
            0 => u64::MAX,
            s => u64::from(s) * 1_000_000_000,
        },
        post_ns: u64::from(message.post_seconds) * 1_000_000_000,
        scope,
        metadata,
    })
}

fn reply(written: Written) -> proto::DumpRecorderReply {
    proto::DumpRecorderReply {
        path: written.path.display().to_string(),
        events: written.events,
        processes: written.processes,
        bytes: written.bytes,
        kinds: written.kinds.into_iter().collect(),
        scope: written.scope,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(scope: Option<proto::dump_recorder_request::Scope>) -> proto::DumpRecorderRequest {
        proto::DumpRecorderRequest {
            scope,
            ..Default::default()
        }
    }

    #[test]
    fn malformed_requests_name_their_field() {
        use proto::dump_recorder_request::Scope as S;
        let message = |m| request_of(m, "uid=0".into()).expect_err("malformed");
        assert_eq!(
            message(request(Some(S::Pid(0)))).message(),
            "pid: 0 is not a process id"
        );
        assert_eq!(
            message(request(Some(S::ContainerId(String::new())))).message(),
            "container_id: empty"
        );
        let pod = |namespace: &str, name: &str| {
            request(Some(S::Pod(proto::PodName {
                namespace: namespace.into(),
                name: name.into(),
            })))
        };
        assert_eq!(message(pod("", "web")).message(), "pod.namespace: required");
        assert_eq!(message(pod("prod", "")).message(), "pod.name: required");
        let long = proto::DumpRecorderRequest {
            post_seconds: 301,
            ..Default::default()
        };
        let status = message(long);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "post_seconds: at most 300 (asked 301)");
    }

    /// The RPC against a recorder that is starting, off, and answering (a written dump,
    /// then a dropped one), as the pipeline task would answer.
    #[test]
    fn the_recorders_state_and_answer_become_the_reply_or_its_status() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let shared = || {
            Shared::new(
                &crate::api::ApiConfig::default(),
                "n".into(),
                vec![],
                vec![],
            )
        };
        rt.block_on(async {
            let asked = proto::DumpRecorderRequest::default;
            let starting = dump(&shared(), String::new(), asked()).await;
            assert_eq!(
                starting.expect_err("starting").code(),
                tonic::Code::Unavailable
            );
            let off = shared();
            off.set_recorder(None);
            let status = dump(&off, String::new(), asked()).await.expect_err("off");
            assert_eq!(status.code(), tonic::Code::FailedPrecondition);
            assert!(status.message().contains("[recorder] enabled = false"));

            let on = shared();
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Ask>(1);
            on.set_recorder(Some(tx));
            let pipeline = tokio::spawn(async move {
                let first = rx.recv().await.expect("an ask");
                assert_eq!(first.request.metadata[0].1, "uid=0 pid=9");
                let written = Written {
                    path: "/captures/a.vcap".into(),
                    events: 3,
                    processes: 1,
                    bytes: 99,
                    kinds: [("exec".to_owned(), 3)].into(),
                    scope: "all".into(),
                };
                let _ = first.reply.expect("a reply").send(Ok(written));
                let second = rx.recv().await.expect("a second ask");
                let _ = second.reply.expect("a reply").send(Err(AskError::Dropped));
            });
            let reply = dump(&on, "uid=0 pid=9".into(), asked())
                .await
                .expect("written");
            assert_eq!(reply.path, "/captures/a.vcap");
            assert_eq!((reply.events, reply.processes, reply.bytes), (3, 1, 99));
            assert_eq!(reply.kinds.get("exec"), Some(&3));
            let dropped = dump(&on, String::new(), asked())
                .await
                .expect_err("dropped");
            assert_eq!(dropped.code(), tonic::Code::ResourceExhausted);
            pipeline.await.expect("the fake pipeline");
        });
    }

    #[test]
    fn a_request_becomes_the_recorders() {
        use proto::dump_recorder_request::Scope as S;
        let all = request_of(request(None), "uid=0 pid=7".into()).expect("valid");
        assert_eq!(all.scope, Scope::All);
        assert_eq!(all.pre_ns, u64::MAX);
        assert_eq!(all.post_ns, 0);
        assert_eq!(
            all.metadata,
            vec![("requested_by".to_owned(), "uid=0 pid=7".to_owned())]
        );
        let tree = request_of(
            proto::DumpRecorderRequest {
                scope: Some(S::Pid(42)),
                reason: "INC-7".into(),
                pre_seconds: 5,
                post_seconds: 2,
            },
            "uid=0".into(),
        )
        .expect("valid");
        assert_eq!(tree.scope.describe(), "tree:42");
        assert_eq!((tree.pre_ns, tree.post_ns), (5_000_000_000, 2_000_000_000));
        assert_eq!(tree.metadata[1], ("reason".to_owned(), "INC-7".to_owned()));
        let pod = request_of(
            request(Some(S::Pod(proto::PodName {
                namespace: "prod".into(),
                name: "web-0".into(),
            }))),
            String::new(),
        )
        .expect("valid");
        assert_eq!(pod.scope.describe(), "pod:prod/web-0");
    }
}
