//! What `deploy/` ships is checked by the tools that read it: the systemd units by
//! `systemd-analyze verify` (no warning), the Kubernetes manifests by
//! `deploy/check_manifests.py` (fields, probes, grace period), the Dockerfile for
//! the settings the packaging promises.

mod common;

use common::have;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `systemd-analyze verify` of the units in `dir`: its warnings and errors.
fn verify_units(dir: &Path) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.join("wharf.socket"))
        .arg(dir.join("wharf.service"))
        .current_dir(dir)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn the_systemd_units_verify_without_a_warning() {
    if !have("systemd-analyze") {
        eprintln!("skipped: systemd-analyze is not installed (Debian: systemd)");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have systemd-analyze"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // The unit names the installed binary; here, the one just built.
    let service = std::fs::read_to_string(repo().join("deploy/wharf.service")).unwrap();
    assert!(service.contains("Type=notify") && service.contains("DynamicUser=yes"));
    std::fs::write(
        tmp.path().join("wharf.service"),
        service.replace("/usr/local/bin/wharf", env!("CARGO_BIN_EXE_wharf")),
    )
    .unwrap();
    std::fs::copy(
        repo().join("deploy/wharf.socket"),
        tmp.path().join("wharf.socket"),
    )
    .unwrap();
    let (ok, said) = verify_units(tmp.path());
    assert!(ok && said.trim().is_empty(), "{said}");
    // A misspelt key is caught.
    let broken = service
        .replace("/usr/local/bin/wharf", env!("CARGO_BIN_EXE_wharf"))
        .replace("NoNewPrivileges", "NoNewPrivilege");
    std::fs::write(tmp.path().join("wharf.service"), broken).unwrap();
    let (_, said) = verify_units(tmp.path());
    assert!(said.contains("NoNewPrivilege"), "{said}");
}

#[test]
fn the_kubernetes_manifests_hold_together() {
    let ready = have("python3")
        && Command::new("python3")
            .args(["-c", "import yaml"])
            .status()
            .is_ok_and(|s| s.success());
    if !ready {
        eprintln!("skipped: needs python3 with PyYAML (pip install pyyaml)");
        assert!(std::env::var_os("CI").is_none(), "CI must install PyYAML");
        return;
    }
    let check = |dir: &Path| {
        Command::new("python3")
            .arg(repo().join("deploy/check_manifests.py"))
            .arg(dir)
            .output()
            .unwrap()
    };
    let out = check(&repo().join("deploy/kubernetes"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The check can fail: a readiness probe on the wrong path.
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo().join("deploy/kubernetes")).unwrap() {
        let entry = entry.unwrap();
        let text = std::fs::read_to_string(entry.path()).unwrap();
        std::fs::write(
            tmp.path().join(entry.file_name()),
            text.replace("/readyz", "/ready"),
        )
        .unwrap();
    }
    let out = check(tmp.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("readinessProbe"));
}

#[test]
fn the_dockerfile_runs_unprivileged_with_a_health_check() {
    let text = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    for promise in [
        "FROM rust:1.88",
        "cargo build --release --locked",
        "USER 10001",
        "HEALTHCHECK",
        "/healthz",
        "STOPSIGNAL SIGTERM",
        "--admin",
    ] {
        assert!(text.contains(promise), "the Dockerfile lacks {promise}");
    }
    // The toolchain it builds with is the one Cargo.toml promises.
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    assert!(manifest.contains("rust-version = \"1.88\""));
}
