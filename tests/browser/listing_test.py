"""The listing page in a real headless Chromium, driven over WebDriver (Selenium).

Run by tests/browser.rs with two wharf instances already started:

    listing_test.py SITE_URL SITE_ROOT DEV_URL DEV_ROOT ARTEFACTS

SITE serves SITE_ROOT with uploads and deletes allowed; DEV serves DEV_ROOT with
--dev. Screenshots (listing light and dark, an upload in progress) are written to
ARTEFACTS. Every check raises on failure; the exit status is the verdict.
"""

import hashlib
import json
import os
import sys
import tempfile
import time
import zipfile

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.common.exceptions import (NoAlertPresentException, NoSuchElementException,
                                        StaleElementReferenceException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

SITE, ROOT, DEV, DEV_ROOT, ARTEFACTS = sys.argv[1:6]
HERE = os.path.dirname(os.path.abspath(__file__))
AXE = os.path.join(HERE, "node_modules", "axe-core", "axe.min.js")


def chromium(downloads):
    opts = Options()
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"):
        if os.path.exists(candidate):
            opts.binary_location = candidate
            break
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1100,760", "--disable-gpu", "--lang=en-US"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver_path = next(p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
                       if os.path.exists(p))
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": downloads})
    return driver


def wait(driver, what, timeout=20):
    """Polls `what` until it is true; elements replaced by a reload meanwhile are
    looked up again on the next poll."""
    return WebDriverWait(driver, timeout, poll_frequency=0.05,
                         ignored_exceptions=(StaleElementReferenceException,
                                             NoSuchElementException)).until(lambda d: what(d))


def alert_text(driver):
    """The text of the dialog open on the page; empty when none is."""
    try:
        return driver.switch_to.alert.text
    except NoAlertPresentException:
        return ""


def open_listing(driver, url):
    """Loads a listing page and waits until its script has run (the filter box,
    hidden without script, is shown)."""
    driver.get(url)
    wait(driver, lambda d: d.find_element(By.ID, "filter").is_displayed())


def names(driver):
    """The entries shown (not filtered out), read in one step."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#list tbody tr:not(.up) td.n a'))"
        ".filter(a => !a.closest('tr').hidden).map(a => a.textContent)")


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def no_policy_errors(driver):
    """The page's own script and style ran under its Content-Security-Policy."""
    for entry in driver.get_log("browser"):
        msg = entry.get("message", "")
        if "Content Security Policy" in msg or entry.get("level") == "SEVERE" and "favicon" not in msg:
            raise AssertionError("browser console: " + msg)


def theme(driver, scheme):
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                           {"features": [{"name": "prefers-color-scheme", "value": scheme}]})


def check_listing(driver):
    open_listing(driver, SITE + "/")
    assert driver.title == "Index of /", driver.title
    shown = names(driver)
    assert shown[:2] == ["docs/", "photos/"], shown  # folders first
    no_policy_errors(driver)
    # Themes follow the system.
    theme(driver, "light")
    light = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
    driver.save_screenshot(os.path.join(ARTEFACTS, "listing-light.png"))
    theme(driver, "dark")
    dark = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
    driver.save_screenshot(os.path.join(ARTEFACTS, "listing-dark.png"))
    assert light != dark, (light, dark)
    theme(driver, "light")

    # On a phone-sized screen nothing overflows sideways.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    open_listing(driver, SITE + "/")
    wide = driver.execute_script("return document.documentElement.scrollWidth")
    assert wide <= 390, f"{wide} px wide on a 390 px screen"
    driver.save_screenshot(os.path.join(ARTEFACTS, "listing-phone.png"))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    # Sorting by size: the header link, then again for the other direction.
    driver.find_element(By.CSS_SELECTOR, "th.s a").click()
    wait(driver, lambda d: "sort=size" in d.current_url)
    files = [n for n in names(driver) if not n.endswith("/")]
    sizes = [os.path.getsize(os.path.join(ROOT, n)) for n in files]
    assert sizes == sorted(sizes), (files, sizes)
    assert driver.find_element(By.CSS_SELECTOR, "th.s").get_attribute("aria-sort") == "ascending"
    driver.find_element(By.CSS_SELECTOR, "th.s a").click()
    wait(driver, lambda d: "order=desc" in d.current_url)
    files = [n for n in names(driver) if not n.endswith("/")]
    sizes = [os.path.getsize(os.path.join(ROOT, n)) for n in files]
    assert sizes == sorted(sizes, reverse=True), (files, sizes)

    # The filter box, and the keyboard: "/" focuses it, arrows move into the list.
    open_listing(driver, SITE + "/")
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys("/")
    box = driver.switch_to.active_element
    assert box.get_attribute("id") == "filter"
    box.send_keys("NOTES")
    wait(driver, lambda d: names(d) == ["notes.txt"])
    box.send_keys(Keys.ARROW_DOWN)
    assert driver.switch_to.active_element.text == "notes.txt"
    box.send_keys(Keys.ESCAPE)


def check_accessibility(driver):
    with open(AXE, encoding="utf-8") as f:
        axe = f.read()
    found = {}
    for scheme in ("light", "dark"):
        theme(driver, scheme)
        open_listing(driver, SITE + "/photos/")
        driver.execute_script(axe)
        result = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document).then(r => done(JSON.stringify(r.violations)), e => done(String(e)));")
        violations = json.loads(result)
        serious = [v for v in violations if v.get("impact") in ("serious", "critical")]
        found[scheme] = [(v["id"], v["impact"], v["help"]) for v in violations]
        assert not serious, json.dumps(serious, indent=1)[:4000]
    theme(driver, "light")
    return found


def record_progress(driver):
    """Counts upload progress events per request, in sessionStorage (the page
    reloads itself when a batch is done)."""
    driver.execute_script("""
        sessionStorage.setItem('progress', '{}');
        const open = XMLHttpRequest.prototype.open;
        XMLHttpRequest.prototype.open = function (method, url) {
            this.upload.addEventListener('progress', () => {
                const p = JSON.parse(sessionStorage.getItem('progress'));
                p[url] = (p[url] || 0) + 1;
                sessionStorage.setItem('progress', JSON.stringify(p));
            });
            return open.apply(this, arguments);
        };""")


def check_uploads(driver, scratch):
    open_listing(driver, SITE + "/")
    paths = []
    for i, size in enumerate((1, 300_000, 2_000_000)):
        p = os.path.join(scratch, f"up{i}.bin")
        with open(p, "wb") as f:
            f.write(os.urandom(size))
        paths.append(p)
    record_progress(driver)
    driver.find_element(By.CSS_SELECTOR, "#upload input[name=file]").send_keys("\n".join(paths))
    # When the batch is done the page reloads and lists the new files.
    wait(driver, lambda d: all(f"up{i}.bin" in names(d) for i in range(3)))
    progress = json.loads(driver.execute_script("return sessionStorage.getItem('progress')"))
    for i in range(3):
        url = next((u for u in progress if u.endswith(f"/up{i}.bin")), None)
        assert url and progress[url] >= 1, progress
        assert sha(os.path.join(ROOT, f"up{i}.bin")) == sha(paths[i])

    # A drop: a file made in the page, dropped on it.
    wait(driver, lambda d: d.find_element(By.ID, "filter").is_displayed())
    record_progress(driver)
    driver.execute_script("""
        const dt = new DataTransfer();
        dt.items.add(new File(['dropped ' + 'x'.repeat(5000)], 'dropped.txt', {type: 'text/plain'}));
        document.body.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true}));
        document.body.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));""")
    wait(driver, lambda d: "dropped.txt" in names(d))
    progress = json.loads(driver.execute_script("return sessionStorage.getItem('progress')"))
    assert any(u.endswith("/dropped.txt") for u in progress), progress
    with open(os.path.join(ROOT, "dropped.txt")) as f:
        assert f.read() == "dropped " + "x" * 5000


def leftovers(folder, name):
    """The file and any temporary or resumable-upload state it left."""
    found = [n for n in os.listdir(folder) if n == name or n.startswith(".wharf-") and n != ".wharf-tus"]
    tus = os.path.join(ROOT, ".wharf-tus")
    if os.path.isdir(tus):
        found += [".wharf-tus/" + n for n in os.listdir(tus)]
    return found


def check_cancel(driver, scratch):
    open_listing(driver, SITE + "/")
    # Slow uploads, so that one can be seen, and cancelled, in progress.
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": False, "latency": 5, "downloadThroughput": -1, "uploadThroughput": 512 * 1024})
    for name, size in (("big.bin", 12 * 1024 * 1024), ("medium.bin", 6 * 1024 * 1024)):
        p = os.path.join(scratch, name)
        with open(p, "wb") as f:
            f.write(os.urandom(size))
        driver.find_element(By.CSS_SELECTOR, "#upload input[name=file]").send_keys(p)
        # In progress: some bytes sent, not all.
        bar = f"#uploads li:last-child progress"
        wait(driver, lambda d: 0 < float(d.find_element(By.CSS_SELECTOR, bar).get_attribute("value"))
             < float(d.find_element(By.CSS_SELECTOR, bar).get_attribute("max")))
        batch = driver.find_element(By.CSS_SELECTOR, "#batch .status").text
        assert "left" in batch or "/s" in batch, batch
        if name == "big.bin":
            driver.execute_script("document.getElementById('uploads').scrollIntoView({block: 'end'})")
            driver.save_screenshot(os.path.join(ARTEFACTS, "upload-in-progress.png"))
        driver.find_element(By.XPATH, "//ul[@id='uploads']/li[last()]//button[text()='Cancel']").click()
        wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#uploads li:last-child .status").text == "cancelled")
        # Nothing is left behind: no file, no temporary file, no upload to resume.
        wait(driver, lambda d: leftovers(ROOT, name) == [])
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})


def check_resume(driver, scratch):
    """A tus upload whose connection drops carries on from where the server is."""
    open_listing(driver, SITE + "/")
    driver.execute_script("""
        sessionStorage.setItem('offsets', '[]');
        const setHeader = XMLHttpRequest.prototype.setRequestHeader;
        XMLHttpRequest.prototype.setRequestHeader = function (name, value) {
            if (name === 'Upload-Offset') {
                const o = JSON.parse(sessionStorage.getItem('offsets'));
                o.push(Number(value));
                sessionStorage.setItem('offsets', JSON.stringify(o));
            }
            return setHeader.apply(this, arguments);
        };""")
    driver.execute_cdp_cmd("Network.enable", {})
    slow = {"offline": False, "latency": 5, "downloadThroughput": -1, "uploadThroughput": 2 * 1024 * 1024}
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", slow)
    p = os.path.join(scratch, "resumed.bin")
    with open(p, "wb") as f:
        f.write(os.urandom(9 * 1024 * 1024))
    driver.find_element(By.CSS_SELECTOR, "#upload input[name=file]").send_keys(p)
    bar = "#uploads li:last-child progress"
    wait(driver, lambda d: float(d.find_element(By.CSS_SELECTOR, bar).get_attribute("value")) > 1024 * 1024)
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", dict(slow, offline=True))
    wait(driver, lambda d: "resuming" in d.find_element(By.CSS_SELECTOR, "#uploads li:last-child .status").text)
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", dict(slow, offline=False))
    wait(driver, lambda d: "resumed.bin" in names(d), timeout=60)
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    assert sha(os.path.join(ROOT, "resumed.bin")) == sha(p)
    offsets = json.loads(driver.execute_script("return sessionStorage.getItem('offsets')"))
    # After the loss the upload went on from a later offset, not from the start.
    assert offsets[0] == 0 and len(offsets) >= 2 and all(o > 0 for o in offsets[1:]), offsets

    # The same name again, through tus too: asked, then replaced.
    with open(p, "wb") as f:
        f.write(os.urandom(9 * 1024 * 1024))
    driver.find_element(By.CSS_SELECTOR, "#upload input[name=file]").send_keys(p)
    wait(driver, lambda d: alert_text(d).endswith("exists. Replace it?"))
    driver.switch_to.alert.accept()
    wait(driver, lambda d: sha(os.path.join(ROOT, "resumed.bin")) == sha(p), timeout=60)
    assert not os.path.exists(os.path.join(ROOT, "resumed (1).bin"))
    return offsets


def check_folder_operations(driver):
    open_listing(driver, SITE + "/")
    driver.find_element(By.XPATH, "//button[text()='New folder']").click()
    alert = driver.switch_to.alert
    alert.send_keys("made here")
    alert.accept()
    wait(driver, lambda d: "made here/" in names(d))
    assert os.path.isdir(os.path.join(ROOT, "made here"))
    driver.find_element(By.CSS_SELECTOR, "button[aria-label='Rename notes.txt']").click()
    alert = driver.switch_to.alert
    alert.send_keys("renamed.txt")
    alert.accept()
    wait(driver, lambda d: "renamed.txt" in names(d))
    assert os.path.exists(os.path.join(ROOT, "renamed.txt"))
    assert not os.path.exists(os.path.join(ROOT, "notes.txt"))
    driver.find_element(By.CSS_SELECTOR, "button[aria-label='Delete renamed.txt']").click()
    driver.switch_to.alert.accept()
    wait(driver, lambda d: "renamed.txt" not in names(d))
    assert not os.path.exists(os.path.join(ROOT, "renamed.txt"))


def check_zip_download(driver, downloads):
    open_listing(driver, SITE + "/photos/")
    driver.find_element(By.CSS_SELECTOR, "a.zip").click()
    target = os.path.join(downloads, "photos.zip")
    wait(driver, lambda d: os.path.exists(target) and not any(
        n.endswith(".crdownload") for n in os.listdir(downloads)), timeout=30)
    with zipfile.ZipFile(target) as z:
        assert z.testzip() is None
        got = {i.filename: hashlib.sha256(z.read(i)).hexdigest() for i in z.infolist() if not i.is_dir()}
    want = {}
    folder = os.path.join(ROOT, "photos")
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for n in filenames:
            if not n.startswith("."):
                p = os.path.join(dirpath, n)
                want[os.path.relpath(p, folder)] = sha(p)
    assert got == want, (got, want)


def check_dev_reload(driver):
    with open(os.path.join(DEV_ROOT, "style.css"), "w") as f:
        f.write("h1 { color: rgb(200, 0, 0); }\n")
    with open(os.path.join(DEV_ROOT, "index.html"), "w") as f:
        f.write(PAGE)
    driver.get(DEV + "/")
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "h1").text == "version 1")
    # The event stream is open once the page has run its script.
    wait(driver, lambda d: d.execute_script(
        "return performance.getEntriesByType('resource').some(e => e.name.includes('/.wharf-dev/reload.js'))"))
    driver.execute_script("window.stillHere = true")
    # A stylesheet change swaps the sheet without a reload.
    with open(os.path.join(DEV_ROOT, "style.css"), "w") as f:
        f.write("h1 { color: rgb(0, 128, 0); }\n")
    wait(driver, lambda d: d.execute_script(
        "return getComputedStyle(document.querySelector('h1')).color") == "rgb(0, 128, 0)", timeout=5)
    assert driver.execute_script("return window.stillHere === true"), "reloaded for CSS"
    changed = time.monotonic()
    with open(os.path.join(DEV_ROOT, "index.html"), "w") as f:
        f.write(PAGE.replace("version 1", "version 2"))
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "h1").text == "version 2", timeout=5)
    took = time.monotonic() - changed
    assert took < 1.0, f"reloaded {took:.2f} s after the change"
    return took


PAGE = ("<!doctype html><html><head><title>dev</title>"
        "<link rel=\"stylesheet\" href=\"style.css\"></head>"
        "<body><h1>version 1</h1></body></html>\n")


def main():
    os.makedirs(ARTEFACTS, exist_ok=True)
    if os.path.exists(os.path.join(ARTEFACTS, "failure.png")):
        os.remove(os.path.join(ARTEFACTS, "failure.png"))
    downloads = tempfile.mkdtemp(prefix="wharf-downloads-")
    scratch = tempfile.mkdtemp(prefix="wharf-uploads-")
    driver = chromium(downloads)
    try:
        check_listing(driver)
        axe = check_accessibility(driver)
        check_uploads(driver, scratch)
        check_cancel(driver, scratch)
        offsets = check_resume(driver, scratch)
        check_folder_operations(driver)
        check_zip_download(driver, downloads)
        took = check_dev_reload(driver)
    except Exception:
        driver.save_screenshot(os.path.join(ARTEFACTS, "failure.png"))
        raise
    finally:
        driver.quit()
    print(json.dumps({"axe_minor_findings": axe, "dev_reload_seconds": round(took, 3),
                      "tus_offsets_sent": offsets}))


if __name__ == "__main__":
    main()
