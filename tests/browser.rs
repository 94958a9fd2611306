//! The listing page in a real browser: headless Chromium driven over WebDriver by
//! `tests/browser/listing_test.py` (Selenium) — rendering, sorting, filter and
//! keyboard, themes, uploads through the file input and by drop with progress
//! events, cancel leaving nothing behind, new folder, rename, delete, a folder's
//! ZIP download, an accessibility audit (axe-core), and `--dev` reloading an open
//! page. Screenshots go to `target/browser/`.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn tools_present() -> bool {
    let selenium = Command::new("python3")
        .args(["-c", "import selenium"])
        .output()
        .is_ok_and(|o| o.status.success());
    let axe = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser/node_modules/axe-core/axe.min.js")
        .exists();
    (have("chromium") || have("chromium-browser")) && have("chromedriver") && selenium && axe
}

#[test]
fn listing_page_in_chromium() {
    if !tools_present() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium, chromium-driver, selenium and axe-core"
        );
        eprintln!("skipped: chromium, chromedriver, selenium or axe-core missing");
        return;
    }
    let (_tmp, root) = temp_root();
    write_file(&root, "notes.txt", "notes\n");
    write_file(&root, "a-small.txt", "a");
    write_file(&root, "b-large.bin", vec![7u8; 50_000]);
    write_file(&root, "c-medium.css", "p { margin: 0 }\n".repeat(100));
    write_file(&root, "docs/readme.md", "# docs\n");
    write_file(&root, "photos/cat.jpg", vec![1u8; 30_000]);
    write_file(&root, "photos/2024/dog.png", vec![2u8; 40_000]);
    write_file(&root, "photos/.thumbs/cat.jpg", "hidden");
    let site = Server::start(&root, &["--upload", "--delete"]);
    let (_dev_tmp, dev_root) = temp_root();
    let dev = Server::start(&dev_root, &["--dev", "--no-open"]);

    let artefacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser");
    // Screenshots of an earlier run must not stand in for this one's.
    let _ = std::fs::remove_dir_all(&artefacts);
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/listing_test.py"))
        .arg(format!("http://{}", site.addr()))
        .arg(&root)
        .arg(format!("http://{}", dev.addr()))
        .arg(&dev_root)
        .arg(&artefacts)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed (screenshot in {}):\n{stdout}\n{stderr}",
        artefacts.display()
    );
    eprintln!("{stdout}");
    for shot in [
        "listing-light.png",
        "listing-dark.png",
        "upload-in-progress.png",
    ] {
        assert!(artefacts.join(shot).exists(), "{shot} saved");
    }
}
