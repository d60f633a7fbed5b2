//! The `Response` service (`proto/vigil/v1/response.proto`): operators' containment requests
//! (and dumps of the flight recorder, in `dump`).
//! A request is checked here (a malformed field is `INVALID_ARGUMENT` naming it), then handed
//! to the responder thread, which carries it out with the agent's guard, rate limit and
//! enforcement layout; its errors come back naming the field at fault, with a status code
//! that says what kind of failure it was. Who asked is the peer of the connection: the unix
//! socket's credentials (`uid=0 pid=4242`), or the TLS client's address.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use tonic::{Request, Response, Status};

use super::{
    Shared, convert,
    proto::{self, response_server},
    rules,
};
use crate::{
    enforce::EnforceError,
    response::{
        OperatorHandle,
        operator::{CgroupSel, OperatorAction, OperatorError, OperatorRequest},
    },
};

/// The longest reason kept (bytes).
const REASON_MAX: usize = 1024;

#[derive(Clone)]
pub(super) struct Service {
    pub(super) shared: Arc<Shared>,
}

impl Service {
    fn operator(&self) -> Result<&OperatorHandle, Status> {
        self.shared
            .operator()
            .ok_or_else(|| Status::unavailable("the agent is starting: try again"))
    }

    async fn submit<T>(
        &self,
        request: &Request<T>,
        action: OperatorAction,
        reason: String,
    ) -> Result<Response<proto::ContainReply>, Status> {
        if reason.len() > REASON_MAX {
            return Err(Status::invalid_argument(format!(
                "reason: at most {REASON_MAX} bytes"
            )));
        }
        let applied = self
            .operator()?
            .submit(OperatorRequest {
                action,
                requested_by: peer(request),
                reason,
            })
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(proto::ContainReply {
            enforcement: Some(convert::enforcement(&applied.enforcement)),
            released: applied.released,
        }))
    }
}

#[tonic::async_trait]
impl response_server::Response for Service {
    async fn contain(
        &self,
        request: Request<proto::ContainRequest>,
    ) -> Result<Response<proto::ContainReply>, Status> {
        let message = request.get_ref().clone();
        let action = action_of(message.action)?;
        self.submit(&request, action, message.reason).await
    }

    async fn release(
        &self,
        request: Request<proto::ReleaseRequest>,
    ) -> Result<Response<proto::ContainReply>, Status> {
        let proto::ReleaseRequest { id, reason } = request.get_ref().clone();
        if id == 0 {
            return Err(Status::invalid_argument("release.id: required"));
        }
        self.submit(&request, OperatorAction::Release { id }, reason)
            .await
    }

    async fn list_actions(
        &self,
        _: Request<proto::ListActionsRequest>,
    ) -> Result<Response<proto::ListActionsReply>, Status> {
        let layout = self.operator()?.layout().clone();
        let listed = tokio::task::spawn_blocking(move || rules::listing(&layout))
            .await
            .map_err(|e| Status::internal(format!("listing enforcement: {e}")))?;
        listed
            .map(Response::new)
            .map_err(|e| Status::internal(super::server::chain(&e)))
    }

    async fn dump_recorder(
        &self,
        request: Request<proto::DumpRecorderRequest>,
    ) -> Result<Response<proto::DumpRecorderReply>, Status> {
        let peer = peer(&request);
        super::dump::dump(&self.shared, peer, request.into_inner())
            .await
            .map(Response::new)
    }
}

/// Who asked: the unix socket peer's credentials, or the TCP peer's address.
fn peer<T>(request: &Request<T>) -> String {
    use tonic::transport::server::UdsConnectInfo;
    if let Some(info) = request.extensions().get::<UdsConnectInfo>() {
        return match info.peer_cred {
            Some(cred) => match cred.pid() {
                Some(pid) => format!("uid={} pid={pid}", cred.uid()),
                None => format!("uid={}", cred.uid()),
            },
            None => "unix".into(),
        };
    }
    request
        .remote_addr()
        .map_or_else(|| "unknown".into(), |addr| format!("tls:{addr}"))
}

fn invalid(field: &str, message: &str) -> Status {
    Status::invalid_argument(format!("{field}: {message}"))
}

fn cgroup(target: Option<proto::CgroupTarget>, field: &str) -> Result<CgroupSel, Status> {
    use proto::cgroup_target::Target;
    match target.and_then(|t| t.target) {
        Some(Target::Cgroup(path)) if path.is_empty() => {
            Err(invalid(&format!("{field}.cgroup"), "empty"))
        }
        Some(Target::Cgroup(path)) => Ok(CgroupSel::Path(path)),
        Some(Target::ContainerId(id)) if id.len() < 12 => Err(invalid(
            &format!("{field}.container_id"),
            &format!("`{id}`: give at least 12 characters of the container id"),
        )),
        Some(Target::ContainerId(id)) => Ok(CgroupSel::Container(id)),
        None => Err(invalid(field, "`cgroup` or `container_id` is required")),
    }
}

/// The path (absolute) and optional scope of a deny_exec or deny_open request (`action`).
fn file_rule(
    path: &str,
    scope: Option<proto::CgroupTarget>,
    action: &str,
) -> Result<(PathBuf, Option<CgroupSel>), Status> {
    if !Path::new(path).is_absolute() {
        return Err(invalid(
            &format!("{action}.path"),
            &format!("`{path}` is not an absolute path"),
        ));
    }
    let scope = match scope {
        Some(scope) => Some(cgroup(Some(scope), &format!("{action}.scope"))?),
        None => None,
    };
    Ok((PathBuf::from(path), scope))
}

/// The domain action of a request, or `INVALID_ARGUMENT` naming the malformed field.
fn action_of(action: Option<proto::contain_request::Action>) -> Result<OperatorAction, Status> {
    use proto::contain_request::Action;
    Ok(match action {
        None => {
            return Err(invalid(
                "action",
                "one of deny_exec, deny_open, deny_connect, isolate, freeze, thaw, kill is required",
            ));
        }
        Some(Action::DenyExec(d)) => {
            let (path, scope) = file_rule(&d.path, d.scope, "deny_exec")?;
            OperatorAction::DenyExec {
                path,
                dir: d.dir,
                scope,
            }
        }
        Some(Action::DenyOpen(d)) => {
            let (path, scope) = file_rule(&d.path, d.scope, "deny_open")?;
            OperatorAction::DenyOpen {
                path,
                dir: d.dir,
                scope,
            }
        }
        Some(Action::DenyConnect(d)) => {
            if d.cidr.is_empty() {
                return Err(invalid("deny_connect.cidr", "required"));
            }
            let ports =
                d.ports
                    .iter()
                    .map(|&p| {
                        u16::try_from(p).ok().filter(|&p| p != 0).ok_or_else(|| {
                            invalid("deny_connect.ports", &format!("{p} is not a port"))
                        })
                    })
                    .collect::<Result<_, _>>()?;
            OperatorAction::DenyConnect {
                scope: cgroup(d.scope, "deny_connect.scope")?,
                cidr: d.cidr,
                ports,
            }
        }
        Some(Action::Isolate(t)) => OperatorAction::Isolate(cgroup(Some(t), "isolate")?),
        Some(Action::Freeze(t)) => OperatorAction::Freeze(cgroup(Some(t), "freeze")?),
        Some(Action::Thaw(t)) => OperatorAction::Thaw(cgroup(Some(t), "thaw")?),
        Some(Action::Kill(k)) => OperatorAction::Kill {
            pid: i32::try_from(k.pid)
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| invalid("kill.pid", &format!("{} is not a process id", k.pid)))?,
            tree: k.tree,
            start_time_ns: (k.start_time_ns != 0).then_some(k.start_time_ns),
        },
    })
}

/// The status of a request that failed, naming the field at fault.
fn status(error: &OperatorError) -> Status {
    use tonic::Code;
    let OperatorError::Enforce { source, .. } = error else {
        let code = match error {
            OperatorError::Disabled => Code::FailedPrecondition,
            OperatorError::QueueFull => Code::ResourceExhausted,
            _ => Code::Unavailable,
        };
        return Status::new(code, error.to_string());
    };
    let os = |e: &std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => Code::NotFound,
        std::io::ErrorKind::PermissionDenied => Code::PermissionDenied,
        _ if e.raw_os_error() == Some(libc::ESRCH) => Code::NotFound,
        _ => Code::Internal,
    };
    let code = match source.as_ref() {
        EnforceError::Refused { .. }
        | EnforceError::PidReused { .. }
        | EnforceError::Freeze { .. }
        | EnforceError::NoCgroup2 => Code::FailedPrecondition,
        EnforceError::RateLimited { .. } => Code::ResourceExhausted,
        EnforceError::NoSuchCgroup { .. }
        | EnforceError::NoSuchContainer { .. }
        | EnforceError::NoSuchRule { .. } => Code::NotFound,
        EnforceError::AmbiguousContainer { .. }
        | EnforceError::Cidr { .. }
        | EnforceError::TooMany { .. } => Code::InvalidArgument,
        EnforceError::Io { source, .. } | EnforceError::Process { source, .. } => os(source),
        _ => Code::Internal,
    };
    Status::new(code, error.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_requests_name_their_field() {
        use proto::contain_request::Action;
        let message = |action| action_of(action).expect_err("malformed");
        let deny = |path: &str| {
            Action::DenyExec(proto::DenyExec {
                path: path.into(),
                ..Default::default()
            })
        };
        assert_eq!(
            message(None).message(),
            "action: one of deny_exec, deny_open, deny_connect, isolate, freeze, thaw, kill is required"
        );
        assert_eq!(
            message(Some(deny("tmp/x"))).message(),
            "deny_exec.path: `tmp/x` is not an absolute path"
        );
        let short = Action::Freeze(proto::CgroupTarget {
            target: Some(proto::cgroup_target::Target::ContainerId("abc".into())),
        });
        assert_eq!(
            message(Some(short)).message(),
            "freeze.container_id: `abc`: give at least 12 characters of the container id"
        );
        assert_eq!(
            message(Some(Action::Isolate(proto::CgroupTarget::default()))).message(),
            "isolate: `cgroup` or `container_id` is required"
        );
        let kill = Action::Kill(proto::Kill {
            pid: 0,
            ..Default::default()
        });
        let status = message(Some(kill));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "kill.pid: 0 is not a process id");
        let ports = Action::DenyConnect(proto::DenyConnect {
            scope: None,
            cidr: "10.0.0.0/8".into(),
            ports: vec![70_000],
        });
        assert_eq!(
            message(Some(ports)).message(),
            "deny_connect.ports: 70000 is not a port"
        );
        assert!(matches!(
            action_of(Some(deny("/bin/x"))),
            Ok(OperatorAction::DenyExec { scope: None, .. })
        ));
    }

    #[test]
    fn failures_map_to_codes_and_name_the_field() {
        let refused = OperatorError::Enforce {
            field: "kill.pid".into(),
            source: Box::new(EnforceError::Refused {
                reason: "that is the agent itself".into(),
            }),
        };
        let s = status(&refused);
        assert_eq!(s.code(), tonic::Code::FailedPrecondition);
        assert_eq!(s.message(), "kill.pid: refused: that is the agent itself");
        let missing = OperatorError::Enforce {
            field: "isolate.container_id".into(),
            source: Box::new(EnforceError::NoSuchContainer {
                id: "0123456789ab".into(),
            }),
        };
        assert_eq!(status(&missing).code(), tonic::Code::NotFound);
        let file = OperatorError::Enforce {
            field: "deny_exec.path".into(),
            source: Box::new(EnforceError::io("reading", "/nope")(std::io::Error::from(
                std::io::ErrorKind::NotFound,
            ))),
        };
        assert_eq!(status(&file).code(), tonic::Code::NotFound);
        assert!(
            status(&file)
                .message()
                .starts_with("deny_exec.path: reading /nope")
        );
        assert_eq!(
            status(&OperatorError::QueueFull).code(),
            tonic::Code::ResourceExhausted
        );
    }
}
