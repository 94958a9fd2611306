// wharf listing page: filter, keyboard navigation and, where the site allows them,
// uploads with progress (resumable with tus above a size), new folder, rename, delete.
// The page works without this script; it only adds to it.
"use strict";
(function () {
  const body = document.body;
  const base = location.pathname; // the folder, ending in "/"
  const rows = () => Array.from(document.querySelectorAll("#list tbody tr:not(.up)"));
  // The name as shown (for people), and as the link spells it (percent-encoded, exact
  // whatever bytes the name holds: what requests use).
  const nameOf = (tr) => tr.querySelector("td.n a").textContent.replace(/\/$/, "");
  const hrefOf = (tr) => tr.querySelector("td.n a").getAttribute("href");
  const canUpload = body.dataset.upload === "true";
  const canDelete = body.dataset.delete === "true";
  const TUS_FROM = 8 * 1024 * 1024; // files this large go through tus
  const TUS_CHUNK = 4 * 1024 * 1024;
  const el = (tag, props, ...children) => {
    const e = Object.assign(document.createElement(tag), props || {});
    for (const c of children) e.append(c);
    return e;
  };
  const enc = (path) => path.split("/").map(encodeURIComponent).join("/");
  const human = (n) => {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    // Onward while the value would show as 1024.0 (1,048,575 bytes is 1.0 MiB).
    while ((i ? n >= 1023.95 : n >= 1024) && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  };
  const duration = (s) => !isFinite(s) ? "" : s < 60 ? Math.ceil(s) + " s" : Math.floor(s / 60) + " min " + Math.ceil(s % 60) + " s";

  // Filter: the box appears only with script, as it needs it.
  const filter = document.getElementById("filter");
  filter.hidden = false;
  filter.addEventListener("input", () => {
    const q = filter.value.toLowerCase();
    for (const tr of rows()) tr.hidden = q !== "" && !nameOf(tr).toLowerCase().includes(q);
  });

  // Keyboard: "/" to filter, arrows (or j/k) to move between entries, Escape to clear.
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const inField = ev.target.matches("input, textarea");
    if (ev.key === "/" && !inField) { ev.preventDefault(); filter.focus(); return; }
    if (ev.key === "Escape" && ev.target === filter) { filter.value = ""; filter.dispatchEvent(new Event("input")); return; }
    const down = ev.key === "ArrowDown" || (!inField && ev.key === "j");
    const up = ev.key === "ArrowUp" || (!inField && ev.key === "k");
    if (!down && !up) return;
    if (inField && ev.target !== filter) return;
    const links = Array.from(document.querySelectorAll("#list tbody tr:not([hidden]) td.n a"));
    if (!links.length) return;
    ev.preventDefault();
    const at = links.indexOf(document.activeElement);
    const next = at < 0 ? (down ? 0 : links.length - 1) : Math.min(links.length - 1, Math.max(0, at + (down ? 1 : -1)));
    links[next].focus();
  });

  function request(method, url, headers) {
    return fetch(url, { method, headers: headers || {}, credentials: "same-origin" });
  }

  // Rename and delete, per entry.
  if (canDelete) {
    document.querySelector("#list thead tr").append(el("th", { className: "x" }, el("span", { className: "sr", textContent: "Actions" })));
    const upRow = document.querySelector("#list tr.up");
    if (upRow) upRow.append(el("td", { className: "x" }));
    for (const tr of rows()) {
      const name = nameOf(tr);
      const href = hrefOf(tr); // ends in "/" for folders
      const isDir = tr.classList.contains("d");
      const cell = el("td", { className: "x" });
      if (canUpload) {
        const rename = el("button", { type: "button", textContent: "Rename" });
        rename.setAttribute("aria-label", "Rename " + name);
        rename.addEventListener("click", async () => {
          const to = prompt("New name for " + name, name);
          if (!to || to === name || to.includes("/")) return;
          const dest = location.origin + base + encodeURIComponent(to) + (isDir ? "/" : "");
          const res = await request("MOVE", base + href, { Destination: dest, Overwrite: "F" });
          if (res.ok) location.reload(); else alert("Rename failed: " + res.status + " " + res.statusText);
        });
        cell.append(rename, " ");
      }
      const del = el("button", { type: "button", textContent: "Delete" });
      del.setAttribute("aria-label", "Delete " + name);
      del.addEventListener("click", async () => {
        if (!confirm("Delete " + name + (isDir ? " and everything in it" : "") + "?")) return;
        const res = await request("DELETE", base + href);
        if (res.ok) tr.remove(); else alert("Delete failed: " + res.status + " " + res.statusText);
      });
      cell.append(del);
      tr.append(cell);
    }
  }

  if (!canUpload) return;

  // Uploads: the plain form becomes a drop zone with a file picker, a folder picker,
  // a new-folder button and a progress list.
  const form = document.getElementById("upload");
  const picker = form.querySelector("input[type=file]");
  const folderPicker = el("input", { type: "file", multiple: true, webkitdirectory: true, className: "sr", id: "folder-input" });
  const folderLabel = el("label", { htmlFor: "folder-input", className: "button" }, "Upload a folder");
  const newFolder = el("button", { type: "button", textContent: "New folder" });
  const list = el("ul", { id: "uploads" });
  list.setAttribute("aria-live", "polite");
  const batch = el("div", { id: "batch", hidden: true });
  const batchBar = el("progress", { max: 1, value: 0, className: "bar" });
  batchBar.setAttribute("aria-label", "All uploads");
  const batchText = el("span", { className: "status" });
  batch.append(batchText, batchBar);
  form.querySelector("button[type=submit]").hidden = true;
  const hint = el("span", { className: "status", textContent: "or drop files and folders anywhere on the page" });
  form.prepend(el("div", { className: "actions" }, form.querySelector("label"), folderPicker, folderLabel, newFolder, hint));
  form.append(batch, list);

  newFolder.addEventListener("click", async () => {
    const name = prompt("Name of the new folder");
    if (!name || name.includes("/")) return;
    const res = await request("MKCOL", base + encodeURIComponent(name) + "/");
    if (res.ok) location.reload(); else alert("Could not create the folder: " + res.status + " " + res.statusText);
  });

  const jobs = [];
  let started = 0; // time the current batch started
  function updateBatch() {
    const active = jobs.filter((j) => j.state !== "cancelled");
    const total = active.reduce((s, j) => s + j.file.size, 0);
    const sent = active.reduce((s, j) => s + j.sent, 0);
    const rate = sent / Math.max(0.001, (performance.now() - started) / 1000);
    batch.hidden = active.length === 0;
    batchBar.max = Math.max(1, total);
    batchBar.value = sent;
    const left = rate > 0 ? duration((total - sent) / rate) : "";
    batchText.textContent = human(sent) + " of " + human(total) + " · " + human(rate) + "/s" + (left && sent < total ? " · " + left + " left" : "");
    const finished = active.every((j) => j.state === "done");
    if (active.length && finished) {
      batchText.textContent = "All " + active.length + " uploaded.";
      // The listing shows the new entries.
      setTimeout(() => location.reload(), 300);
    }
  }

  function addJob(file, path) {
    const job = { file, path, sent: 0, state: "waiting", xhr: null, tus: null };
    const bar = el("progress", { max: Math.max(1, file.size), value: 0, className: "bar" });
    bar.setAttribute("aria-label", "Upload of " + path);
    const status = el("span", { className: "status", textContent: "waiting" });
    const cancel = el("button", { type: "button", textContent: "Cancel" });
    const retry = el("button", { type: "button", textContent: "Retry", hidden: true });
    const li = el("li", {}, el("span", { textContent: path }), el("span", {}, status, " ", cancel, retry), bar);
    list.append(li);
    job.show = (text, cls) => {
      status.textContent = text;
      li.className = cls || "";
      bar.value = job.sent;
      cancel.hidden = job.state === "done" || job.state === "cancelled";
      retry.hidden = job.state !== "failed";
      updateBatch();
    };
    cancel.addEventListener("click", () => {
      job.state = "cancelled";
      if (job.xhr) job.xhr.abort();
      // An unfinished resumable upload is removed on the server too.
      if (job.tus) request("DELETE", job.tus, { "Tus-Resumable": "1.0.0" });
      job.show("cancelled", "failed");
      pump();
    });
    retry.addEventListener("click", () => { job.state = "waiting"; job.show("waiting"); pump(); });
    jobs.push(job);
    return job;
  }

  // Two uploads at a time.
  let running = 0;
  function pump() {
    while (running < 2) {
      const job = jobs.find((j) => j.state === "waiting");
      if (!job) return;
      running++;
      job.state = "running";
      run(job).then(() => {
        if (job.state === "running") { job.state = "done"; job.sent = job.file.size; job.show("done", "done"); }
      }, (err) => {
        if (job.state === "running") { job.state = "failed"; job.show(String(err.message || err), "failed"); }
      }).finally(() => { running--; pump(); });
    }
  }

  // Folders the uploads need, created once each (MKCOL; 405 means it exists).
  const made = new Map();
  function ensureFolders(path) {
    const parts = path.split("/").slice(0, -1);
    let chain = Promise.resolve();
    let sofar = "";
    for (const p of parts) {
      sofar += p + "/";
      const url = base + enc(sofar);
      if (!made.has(url)) {
        const folder = sofar;
        const making = chain.then(() => request("MKCOL", url)).then((r) => {
          if (!r.ok && r.status !== 405) throw new Error("folder " + folder + ": " + r.status);
        });
        // A failure is not remembered: Retry tries again.
        making.catch(() => made.delete(url));
        made.set(url, making);
      }
      chain = made.get(url);
    }
    return chain;
  }

  function send(job, method, url, headers, data, offset) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      job.xhr = xhr;
      xhr.open(method, url);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      const t0 = performance.now();
      xhr.upload.onprogress = (ev) => {
        job.sent = offset + ev.loaded;
        const rate = ev.loaded / Math.max(0.001, (performance.now() - t0) / 1000);
        job.show(Math.floor((100 * job.sent) / Math.max(1, job.file.size)) + "% · " + human(rate) + "/s");
      };
      xhr.onload = () => resolve(xhr);
      xhr.onerror = () => reject(new Error("connection lost"));
      xhr.onabort = () => reject(new Error("cancelled"));
      xhr.send(data);
    });
  }

  async function run(job) {
    await ensureFolders(job.path);
    if (job.file.size >= TUS_FROM) return runTus(job);
    const url = base + enc(job.path);
    let xhr = await send(job, "PUT", url, { "If-None-Match": "*" }, job.file, 0);
    if (xhr.status === 412) {
      if (!confirm(job.path + " exists. Replace it?")) throw new Error("exists, kept");
      xhr = await send(job, "PUT", url, {}, job.file, 0);
    }
    if (xhr.status < 200 || xhr.status > 299) throw new Error("failed: " + xhr.status + " " + xhr.statusText);
  }

  // tus 1.0.0: create, then PATCH in chunks; a lost connection resumes from the
  // offset the server reports.
  async function runTus(job) {
    const folder = job.path.includes("/") ? job.path.slice(0, job.path.lastIndexOf("/") + 1) : "";
    const name = job.path.slice(folder.length);
    const tusHeaders = { "Tus-Resumable": "1.0.0" };
    if (!job.tus) {
      const meta = "filename " + btoa(String.fromCharCode(...new TextEncoder().encode(name)));
      const create = (m) => request("POST", base + enc(folder), Object.assign({ "Upload-Length": String(job.file.size), "Upload-Metadata": m }, tusHeaders));
      let res = await create(meta);
      // The name is taken: asked as for a smaller file, then replaced in one step.
      if (res.status === 409) {
        if (!confirm(job.path + " exists. Replace it?")) throw new Error("exists, kept");
        res = await create(meta + ",overwrite " + btoa("1"));
      }
      if (res.status !== 201) throw new Error("failed: " + res.status + " " + res.statusText);
      job.tus = new URL(res.headers.get("Location"), location.href).href;
    }
    let failures = 0;
    for (;;) {
      try {
        const head = await request("HEAD", job.tus, tusHeaders);
        if (head.status === 404 || head.status === 410) throw new Error("upload expired: " + head.status);
        if (!head.ok) throw new Error("upload unreachable: " + head.status);
        let offset = Number(head.headers.get("Upload-Offset"));
        while (offset < job.file.size) {
          const chunk = job.file.slice(offset, offset + TUS_CHUNK);
          const xhr = await send(job, "PATCH", job.tus, Object.assign({ "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream" }, tusHeaders), chunk, offset);
          if (xhr.status !== 204) throw new Error("failed: " + xhr.status + " " + xhr.statusText);
          offset = Number(xhr.getResponseHeader("Upload-Offset"));
          failures = 0;
        }
        return;
      } catch (err) {
        // A lost connection is retried from the offset the server has; anything
        // else, or too many losses in a row, fails the upload (Retry resumes it).
        const lost = err instanceof TypeError || err.message === "connection lost";
        if (job.state !== "running" || !lost || ++failures > 8) throw err;
        job.show("connection lost; resuming…");
        await new Promise((r) => setTimeout(r, Math.min(8000, 500 * 2 ** failures)));
      }
    }
  }

  function enqueue(items) {
    if (!jobs.some((j) => j.state === "waiting" || j.state === "running")) started = performance.now();
    for (const [file, path] of items) addJob(file, path);
    updateBatch();
    pump();
  }

  picker.addEventListener("change", () => { enqueue(Array.from(picker.files, (f) => [f, f.name])); picker.value = ""; });
  folderPicker.addEventListener("change", () => { enqueue(Array.from(folderPicker.files, (f) => [f, f.webkitRelativePath || f.name])); folderPicker.value = ""; });
  form.addEventListener("submit", (ev) => { ev.preventDefault(); enqueue(Array.from(picker.files, (f) => [f, f.name])); });

  // Drag and drop anywhere on the page; folders are walked.
  async function walk(entry, prefix, out) {
    if (entry.isFile) {
      out.push([await new Promise((res, rej) => entry.file(res, rej)), prefix + entry.name]);
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const e of batch) await walk(e, prefix + entry.name + "/", out);
      }
    }
  }
  document.addEventListener("dragover", (ev) => { ev.preventDefault(); form.classList.add("over"); });
  document.addEventListener("dragleave", (ev) => { if (!ev.relatedTarget) form.classList.remove("over"); });
  document.addEventListener("drop", async (ev) => {
    ev.preventDefault();
    form.classList.remove("over");
    const items = Array.from(ev.dataTransfer.items || []);
    const entries = items.map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
    const out = [];
    if (entries.length) for (const e of entries) await walk(e, "", out);
    else for (const f of ev.dataTransfer.files) out.push([f, f.name]);
    enqueue(out);
  });
})();
