use super::*;

const ID: &str = "3f5a1c2b4d6e8f9012345678901234567890abcdefabcdefabcdef0123456789";
const UID: &str = "8c0d9a52-1f3e-4b7a-9c61-2d5e7f8a9b0c";
const UID_SYSTEMD: &str = "8c0d9a52_1f3e_4b7a_9c61_2d5e7f8a9b0c";

fn parsed(path: &str) -> Option<ContainerRef> {
    parse(path.as_bytes())
}

#[track_caller]
fn assert_container(path: &str, runtime: Runtime, cri: bool, pod_uid: Option<&str>) {
    let found = parsed(path).unwrap_or_else(|| panic!("no container in {path}"));
    assert_eq!(found.id.as_str(), ID, "{path}");
    assert_eq!(found.runtime, runtime, "{path}");
    assert_eq!(found.cri, cri, "{path}");
    assert_eq!(found.pod_uid.as_deref(), pod_uid, "{path}");
}

#[test]
fn kubelet_cgroupfs_driver_every_qos_class() {
    for qos in ["besteffort/", "burstable/", ""] {
        let path = format!("/kubepods/{qos}pod{UID}/{ID}");
        assert_container(&path, Runtime::Cri, true, Some(UID));
    }
    // Static pods have a 32-digit hash as uid.
    let hash = "6d0b5c2c1bd1cf9c6a3d4e5f60718293";
    let found = parsed(&format!("/kubepods/burstable/pod{hash}/{ID}")).expect("static pod");
    assert_eq!(found.pod_uid.as_deref(), Some(hash));
}

#[test]
fn crio_cgroupfs_and_systemd() {
    assert_container(
        &format!("/kubepods/besteffort/pod{UID}/crio-{ID}"),
        Runtime::CriO,
        true,
        Some(UID),
    );
    assert_container(
        &format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_SYSTEMD}.slice/crio-{ID}.scope"
        ),
        Runtime::CriO,
        true,
        Some(UID),
    );
    // The monitor runs beside the container, not in it.
    let conmon = format!("/kubepods.slice/kubepods-pod{UID_SYSTEMD}.slice/crio-conmon-{ID}.scope");
    assert_eq!(parsed(&conmon), None);
}

#[test]
fn containerd_systemd_driver_every_qos_class() {
    for (slices, _) in [
        (
            format!("kubepods-besteffort.slice/kubepods-besteffort-pod{UID_SYSTEMD}.slice"),
            "besteffort",
        ),
        (
            format!("kubepods-burstable.slice/kubepods-burstable-pod{UID_SYSTEMD}.slice"),
            "burstable",
        ),
        (format!("kubepods-pod{UID_SYSTEMD}.slice"), "guaranteed"),
    ] {
        let path = format!("/kubepods.slice/{slices}/cri-containerd-{ID}.scope");
        assert_container(&path, Runtime::Containerd, true, Some(UID));
    }
}

#[test]
fn plain_ctr_in_the_default_namespace() {
    assert_container(&format!("/default/{ID}"), Runtime::Containerd, false, None);
    let named = parsed("/default/my-box.1").expect("ctr takes any valid id");
    assert_eq!(named.id.as_str(), "my-box.1");
    assert_eq!(named.runtime, Runtime::Containerd);
    assert_eq!(parsed("/default/-bad"), None);
    assert_eq!(parsed("/default"), None);
    // Only at the top: a `default` folder deeper down is someone else's.
    assert_eq!(parsed("/system.slice/default/thing"), None);
}

#[test]
fn docker_cgroupfs_and_systemd() {
    assert_container(&format!("/docker/{ID}"), Runtime::Docker, false, None);
    assert_container(
        &format!("/system.slice/docker-{ID}.scope"),
        Runtime::Docker,
        false,
        None,
    );
}

#[test]
fn podman_rootful_rootless_and_cgroupfs() {
    assert_container(
        &format!("/libpod_parent/libpod-{ID}"),
        Runtime::Podman,
        false,
        None,
    );
    assert_container(
        &format!("/machine.slice/libpod-{ID}.scope"),
        Runtime::Podman,
        false,
        None,
    );
    assert_container(
        &format!("/machine.slice/libpod-{ID}.scope/container"),
        Runtime::Podman,
        false,
        None,
    );
    assert_container(
        &format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"),
        Runtime::Podman,
        false,
        None,
    );
    assert_eq!(
        parsed(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
        None
    );
}

#[test]
fn nested_paths_give_the_innermost_container() {
    // A kind node: a docker container that holds the kubelet's pods.
    let outer = "a".repeat(64);
    assert_container(
        &format!("/docker/{outer}/kubepods/besteffort/pod{UID}/{ID}"),
        Runtime::Cri,
        true,
        Some(UID),
    );
    // systemd inside a container adds slices under it.
    assert_container(
        &format!("/docker/{ID}/system.slice/cron.service"),
        Runtime::Docker,
        false,
        None,
    );
}

#[test]
fn v1_and_v2_lines_of_proc_pid_cgroup() {
    let v2 = format!("0::/kubepods/besteffort/pod{UID}/{ID}\n");
    assert_eq!(parse_proc_cgroup(&v2).map(|c| c.id.0), Some(ID.to_owned()));
    // Hybrid node whose runtime only set up the v1 hierarchies: v2 says the root.
    let hybrid = format!("12:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n0::/\n");
    let found = parse_proc_cgroup(&hybrid).expect("from the v1 lines");
    assert_eq!((found.id.as_str(), found.runtime), (ID, Runtime::Docker));
    assert_eq!(
        parse_proc_cgroup("0::/user.slice/user-0.slice/session-1.scope\n"),
        None
    );
    assert_eq!(parse_proc_cgroup(""), None);
    assert_eq!(parse_proc_cgroup("garbage\n::\n0:\n"), None);
}

#[test]
fn paths_of_no_container() {
    for path in [
        "/",
        "",
        "/init.scope",
        "/system.slice/containerd.service",
        "/user.slice/user-0.slice/session-3.scope",
        "/kubepods",
        "/kubepods/besteffort",
        "/kubepods.slice/kubepods-besteffort.slice",
        // The pod cgroup itself holds no process.
        &format!("/kubepods/besteffort/pod{UID}"),
        &format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_SYSTEMD}.slice"
        ),
        // A 64-hex name with no runtime context around it.
        &format!("/system.slice/{ID}"),
    ] {
        assert_eq!(parsed(path), None, "{path}");
    }
}

#[test]
fn garbage_never_panics_and_finds_nothing() {
    let short = &ID[..63];
    let upper = ID.to_uppercase();
    for path in [
        format!("/docker/{short}"),
        format!("/docker/{upper}"),
        format!("/docker/{ID}0"),
        format!("/system.slice/docker-{ID}"),
        "/system.slice/docker-.scope".to_owned(),
        format!("/kubepods/besteffort/podnot-a-uid/{ID}"),
        format!("/kubepods.slice/kubepods-weird-pod{UID_SYSTEMD}.slice/cri-containerd-zz.scope"),
        "////".to_owned(),
        ".scope".to_owned(),
        "/crio-".to_owned(),
        "/libpod-".to_owned(),
        "pod/".to_owned(),
    ] {
        assert_eq!(parsed(&path), None, "{path}");
    }
    // Bytes that are not UTF-8, and every prefix of a valid path.
    assert_eq!(parse(b"/docker/\xff\xfe"), None);
    let valid = format!(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_SYSTEMD}.slice/cri-containerd-{ID}.scope"
    );
    for end in 0..valid.len() {
        let _ = parse(&valid.as_bytes()[..end]);
    }
    let mut noisy = valid.into_bytes();
    for i in (0..noisy.len()).step_by(7) {
        noisy[i] ^= 0x80;
        let _ = parse(&noisy);
    }
}

#[test]
fn a_bad_pod_slice_drops_the_uid_not_the_container() {
    let found = parsed(&format!(
        "/kubepods.slice/kubepods-weird-pod{UID_SYSTEMD}.slice/cri-containerd-{ID}.scope"
    ))
    .expect("the container is still named");
    assert_eq!(found.runtime, Runtime::Containerd);
    assert_eq!(found.pod_uid, None);
}
