//! What a dump keeps: everything, a process tree (and whoever talked to it over the network
//! on this node), a container, or a pod.

use std::{collections::HashSet, net::SocketAddr};

use crate::{
    event::{Detail, Event},
    process::ProcessKey,
};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    All,
    /// A process and its descendants, the events of its ancestors, and the network events
    /// of other processes of this node whose address is one of the tree's socket ends.
    Tree(Tree),
    /// A container id, or a prefix of it.
    Container(String),
    Pod {
        namespace: String,
        name: String,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    root: u32,
    members: HashSet<ProcessKey>,
    /// Processes above the root, as the trigger's event carried them.
    ancestors: HashSet<ProcessKey>,
    endpoints: HashSet<SocketAddr>,
}

impl Scope {
    /// The tree the trigger belongs to: its parent (the shell or service that ran it) and
    /// all that parent's descendants, so that what the trigger's siblings did before it is
    /// kept; the events of the processes above; and their local network peers.
    pub fn tree_of(event: &Event) -> Self {
        let Some(process) = event.process.as_deref() else {
            return Self::All;
        };
        let mut chain = event.parent.iter().chain(&event.ancestors).map(|p| p.key);
        let root = chain.next().unwrap_or(process.key);
        Self::Tree(Tree {
            root: root.tgid,
            members: HashSet::from([root, process.key]),
            ancestors: chain.collect(),
            endpoints: HashSet::new(),
        })
    }

    /// The tree rooted at the process with thread-group id `tgid` (from the CLI or the API,
    /// where only the pid is known): its first event names it.
    pub fn tree_of_pid(tgid: u32) -> Self {
        Self::Tree(Tree {
            root: tgid,
            ..Tree::default()
        })
    }

    /// How a capture file's header names this scope.
    pub fn describe(&self) -> String {
        match self {
            Self::All => "all".into(),
            Self::Tree(tree) => format!("tree:{}", tree.root),
            Self::Container(id) => format!("container:{id}"),
            Self::Pod { namespace, name } => format!("pod:{namespace}/{name}"),
        }
    }

    /// Whether `event` belongs to the dump; a tree learns its members and socket ends from
    /// the events it keeps, so feed events in order.
    pub fn learn_and_keep(&mut self, event: &Event) -> bool {
        match self {
            Self::All => true,
            Self::Container(id) => event
                .container
                .as_deref()
                .is_some_and(|c| c.id.as_str().starts_with(id.as_str())),
            Self::Pod { namespace, name } => event.pod.as_deref().is_some_and(|p| {
                p.namespace.as_deref() == Some(namespace.as_str())
                    && p.name.as_deref() == Some(name.as_str())
            }),
            Self::Tree(tree) => tree.learn_and_keep(event),
        }
    }
}

impl Tree {
    fn learn_and_keep(&mut self, event: &Event) -> bool {
        let Some(process) = event.process.as_deref() else {
            return false;
        };
        let key = process.key;
        let chain = || event.parent.iter().chain(&event.ancestors);
        // Before the root's own event is seen, it is known by its pid only.
        let unseen_root = self.members.is_empty()
            && (key.tgid == self.root || chain().any(|p| p.key.tgid == self.root));
        let member = unseen_root
            || self.members.contains(&key)
            || process.parent.is_some_and(|p| self.members.contains(&p))
            || chain().any(|p| self.members.contains(&p.key));
        if member {
            self.members.insert(key);
            if let Some(ends) = endpoints(event) {
                self.endpoints
                    .extend(ends.into_iter().filter(|a| !a.ip().is_unspecified()));
            }
            return true;
        }
        if self.ancestors.contains(&key) {
            return true;
        }
        // Someone else on this node talking to one of the tree's sockets.
        endpoints(event).is_some_and(|ends| ends.iter().any(|a| self.endpoints.contains(a)))
    }
}

/// The socket addresses a network event names: the address argument and the socket's ends.
fn endpoints(event: &Event) -> Option<Vec<SocketAddr>> {
    let Detail::Network(network) = &event.detail else {
        return None;
    };
    let mut out = Vec::new();
    if let Some(Ok(addr)) = &network.addr {
        match *addr {
            crate::network::Sockaddr::Inet { ip, port } => out.push(SocketAddr::from((ip, port))),
            crate::network::Sockaddr::Inet6 { ip, port } => out.push(SocketAddr::from((ip, port))),
            _ => {}
        }
    }
    if let Some(ends) = &network.socket {
        out.push(ends.local);
        out.extend(ends.remote);
    }
    Some(out)
}
