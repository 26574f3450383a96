// The requester's campaign page: live progress, uploads with progress bars, recent imports.
//
// #upload[data-state] is the upload panel's state, for CSS and for the browser tests:
//   idle → uploading → (importing →) done | failed, or error when a request itself failed;
//   loading → importing → done | failed when an earlier import is opened from the list.
// Several images go to POST /api/campaigns/{id}/items/ and are stored within the request; one zip,
// CSV or JSONL goes to POST /api/campaigns/{id}/imports/, a job a worker runs, which is polled.
(() => {
  "use strict";
  const root = document.getElementById("campaign");
  if (!root || !window.Kyodo) return;
  const $ = (id) => document.getElementById(id);
  const { api, upload } = window.Kyodo.client(root.querySelector("input[name=csrfmiddlewaretoken]").value);
  const campaignId = root.dataset.campaign;
  const isText = root.dataset.text === "1";
  const maxFiles = Number(root.dataset.maxFiles) || 1000;
  const recent = Number(root.dataset.recent) || 10;
  const PROGRESS_EVERY_MS = 5000;
  const POLL_FIRST_MS = 300;
  const POLL_MAX_MS = 2000;
  const POLL_FAILURES = 5;
  // Rows are built in slices so a long rejection list never freezes the page.
  const ROWS_PER_FRAME = 2000;
  // An import's rejected files come a page at a time (the API's largest page).
  const REJECTED_PAGE = 200;
  const number = new Intl.NumberFormat("en-US");

  const form = $("upload-form");
  const input = $("files");
  const dropzone = $("dropzone");
  const selection = $("selection");
  const uploadButton = $("upload-button");
  const cancelButton = $("cancel-button");
  const panel = $("upload");
  const errorBox = $("upload-error");
  const errorText = $("upload-error-text");

  let chosen = [];
  let busy = false;
  let cancel = null;
  // The `next` link of the last page of an import's rejected files shown, if there are more.
  let moreRejected = null;

  // ---- formatting ---------------------------------------------------------------------------

  function bytes(n) {
    if (n < 1000) return `${n} B`;
    const units = ["kB", "MB", "GB", "TB"];
    let value = n;
    let unit = -1;
    do {
      value /= 1000;
      unit += 1;
    } while (value >= 1000 && unit < units.length - 1);
    return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
  }

  // One decimal, floored: 99.96% is "99.9%", so 100% means every bit is there.
  function percentOf(part, whole) {
    if (!whole) return 0;
    return Math.min(100, Math.floor((1000 * part) / whole) / 10);
  }

  function plural(n, word) {
    return `${number.format(n)} ${word}${n === 1 ? "" : "s"}`;
  }

  function when(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  // ---- campaign progress --------------------------------------------------------------------

  function setBar(bar, percent, valueText) {
    if (percent === null) {
      bar.removeAttribute("aria-valuenow"); // indeterminate: the total is not known yet
      bar.classList.add("indeterminate");
    } else {
      bar.setAttribute("aria-valuenow", String(percent));
      bar.classList.remove("indeterminate");
      bar.style.setProperty("--p", `${percent}%`);
    }
    if (valueText) bar.setAttribute("aria-valuetext", valueText);
  }

  function renderProgress(progress) {
    const open = progress.items - progress.completed;
    const percent = percentOf(progress.completed, progress.items);
    $("stat-items").textContent = number.format(progress.items);
    $("stat-completed").textContent = number.format(progress.completed);
    $("stat-open").textContent = number.format(open);
    $("stat-labels").textContent = number.format(progress.labels);
    $("stat-percent").textContent = `${percent}%`;
    $("bar-done").setAttribute("width", String(percent));
    const bar = $("campaign-bar");
    bar.setAttribute("aria-valuenow", String(percent));
    bar.setAttribute("aria-valuetext", `${number.format(progress.completed)} of ${number.format(progress.items)} items completed`);
  }

  async function refreshProgress() {
    try {
      const campaign = await api("GET", `/api/campaigns/${campaignId}/`);
      renderProgress(campaign.progress);
      $("progress-updated").textContent = `· updated ${new Date().toLocaleTimeString("en-GB")}`;
      $("progress-updated").title = "";
    } catch (err) {
      // The counters are a nicety: keep the last ones and say they may be stale.
      $("progress-updated").textContent = "· not updating";
      $("progress-updated").title = err.message;
    }
  }

  let progressTimer = null;
  function tick() {
    refreshProgress();
    if (importsUnsettled()) refreshImports();
  }
  function startTicking() {
    if (progressTimer === null) progressTimer = setInterval(tick, PROGRESS_EVERY_MS);
  }
  function stopTicking() {
    clearInterval(progressTimer);
    progressTimer = null;
  }
  // Only while someone looks: a tab in the background asks for nothing.
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      stopTicking();
    } else {
      tick();
      startTicking();
    }
  });

  // ---- recent imports -----------------------------------------------------------------------

  function importRow(job) {
    const tr = document.createElement("tr");
    tr.dataset.import = String(job.id);
    tr.dataset.status = job.status;
    const name = cell(job.source_name, "name");
    name.title = job.source_name;
    const status = document.createElement("td");
    const badge = document.createElement("span");
    badge.className = `badge status-${job.status}`;
    badge.textContent = job.status.charAt(0).toUpperCase() + job.status.slice(1);
    if (job.error) badge.title = job.error;
    status.append(badge);
    const processed = job.total === null ? number.format(job.processed) : `${number.format(job.processed)} / ${number.format(job.total)}`;
    const started = document.createElement("td");
    const time = document.createElement("time");
    time.dateTime = job.created_at;
    time.textContent = when(job.created_at);
    started.append(time);
    const details = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.dataset.show = String(job.id);
    button.textContent = "Details";
    details.append(button);
    tr.append(
      cell(String(job.id)),
      name,
      status,
      cell(processed, "n"),
      cell(number.format(job.created), "n"),
      cell(number.format(job.duplicates), "n"),
      cell(number.format(job.rejected_count), "n"),
      started,
      details,
    );
    return tr;
  }

  function importsUnsettled() {
    return Boolean(document.querySelector('#import-rows tr[data-status="queued"], #import-rows tr[data-status="running"]'));
  }

  async function refreshImports() {
    let jobs;
    try {
      // The newest page is the recent list: {next, previous, results}.
      jobs = (await api("GET", `/api/campaigns/${campaignId}/imports/?page_size=${recent}`)).results;
    } catch (_) {
      return; // the list is a convenience; the panel above shows what matters
    }
    $("import-rows").replaceChildren(...jobs.slice(0, recent).map(importRow));
    $("imports").hidden = jobs.length === 0;
    $("no-imports").hidden = jobs.length !== 0;
  }

  // The server renders times in UTC; show them in the reader's time, as fresh rows are.
  document.querySelectorAll("#import-rows time").forEach((t) => { t.textContent = when(t.dateTime); });

  $("import-rows").addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-show]");
    if (!button || busy) return;
    busy = true;
    syncButtons();
    resetPanel();
    setState("loading");
    try {
      const job = await api("GET", `/api/imports/${button.dataset.show}/`);
      await followImport(job);
    } catch (err) {
      failWith(err);
    } finally {
      busy = false;
      syncButtons();
    }
  });

  // ---- choosing files -----------------------------------------------------------------------

  const BATCH_NAME = /\.(zip|csv|tsv|jsonl|ndjson|json|txt)$/i;
  const BATCH_TYPE = /(zip|csv|json)/i;

  function isBatchFile(file) {
    return BATCH_NAME.test(file.name) || BATCH_TYPE.test(file.type);
  }

  // Where a set of files goes, or why it cannot go anywhere as it is.
  function plan(files) {
    if (files.length === 0) return { problem: "Choose one or more files first." };
    if (files.length > maxFiles) {
      return { problem: `That is ${number.format(files.length)} files; at most ${number.format(maxFiles)} go in one upload. Put them in a zip.` };
    }
    if (isText) {
      if (files.length > 1) return { problem: "Upload one CSV or JSONL file at a time." };
      return { to: "import", file: files[0] };
    }
    if (files.some(isBatchFile)) {
      if (files.length > 1) return { problem: "Upload a zip or JSONL file on its own; several images can go together." };
      return { to: "import", file: files[0] };
    }
    return { to: "items", files };
  }

  function describeChoice(files, route) {
    if (files.length === 0) return "";
    const size = bytes(files.reduce((sum, f) => sum + f.size, 0));
    if (route.problem) return route.problem;
    if (route.to === "import") return `${route.file.name} (${size}), imported in the background.`;
    const names = files.slice(0, 3).map((f) => f.name).join(", ");
    const more = files.length > 3 ? `, … ${number.format(files.length - 3)} more` : "";
    return `${plural(files.length, "image")} (${size}): ${names}${more}.`;
  }

  function choose(files) {
    chosen = files;
    const route = plan(files);
    selection.textContent = describeChoice(files, route);
    selection.classList.toggle("error", Boolean(route.problem) && files.length > 0);
    syncButtons();
  }

  function syncButtons() {
    const route = plan(chosen);
    uploadButton.disabled = busy || Boolean(route.problem);
    input.disabled = busy;
    dropzone.classList.toggle("disabled", busy);
  }

  input.addEventListener("change", () => choose(Array.from(input.files || [])));

  ["dragenter", "dragover"].forEach((type) => dropzone.addEventListener(type, (event) => {
    event.preventDefault();
    if (busy) {
      event.dataTransfer.dropEffect = "none";
      return;
    }
    event.dataTransfer.dropEffect = "copy";
    dropzone.classList.add("over");
  }));
  dropzone.addEventListener("dragleave", (event) => {
    if (!dropzone.contains(event.relatedTarget)) dropzone.classList.remove("over");
  });
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropzone.classList.remove("over");
    if (busy) return;
    choose(Array.from(event.dataTransfer.files || []));
    uploadButton.focus();
  });
  // A file dropped beside the zone would make the browser leave the page to show it.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());

  // ---- the upload panel ---------------------------------------------------------------------

  function setState(state) {
    panel.dataset.state = state;
    panel.setAttribute("aria-busy", String(state === "uploading" || state === "importing"));
  }

  function resetPanel() {
    $("upload-meter").hidden = true;
    $("import-meter").hidden = true;
    $("result").hidden = true;
    $("rejected").hidden = true;
    $("rejected-rows").replaceChildren();
    $("rejected-more").hidden = true;
    moreRejected = null;
    errorBox.hidden = true;
    errorText.textContent = "";
  }

  function showUploadProgress(sent, total) {
    const percent = total ? percentOf(sent, total) : 100;
    $("upload-meter").hidden = false;
    setBar($("upload-bar"), percent, `${bytes(sent)} of ${bytes(total)}`);
    $("upload-text").textContent = total ? `${bytes(sent)} of ${bytes(total)} · ${percent}%` : "100%";
  }

  function showImportProgress(job) {
    $("import-meter").hidden = false;
    $("import-title").textContent = `Import #${job.id} · ${job.source_name}`;
    const status = job.status;
    if (job.total === null || job.total === undefined) {
      setBar($("import-bar"), status === "failed" ? 0 : null, status === "queued" ? "Queued" : "Reading the file");
      $("import-text").textContent = status === "queued" ? "Queued…" : `Reading the file… ${plural(job.processed, "file")} done`;
      return;
    }
    const percent = status === "done" ? 100 : percentOf(job.processed, job.total);
    setBar($("import-bar"), percent, `${number.format(job.processed)} of ${number.format(job.total)}`);
    const what = isText ? "rows" : "files";
    $("import-text").textContent = `${number.format(job.processed)} of ${number.format(job.total)} ${what} · ${percent}%`;
  }

  function renderRejected(rejected) {
    $("rejected-rows").replaceChildren();
    $("rejected").hidden = true;
    $("rejected-more").hidden = true;
    moreRejected = null;
    appendRejected(rejected);
  }

  function appendRejected(rejected) {
    const rows = $("rejected-rows");
    if (rejected.length) $("rejected").hidden = false;
    let start = 0;
    const slice = () => {
      const fragment = document.createDocumentFragment();
      for (const r of rejected.slice(start, start + ROWS_PER_FRAME)) {
        const tr = document.createElement("tr");
        tr.append(cell(r.name, "name"), cell(r.reason));
        fragment.append(tr);
      }
      rows.append(fragment);
      start += ROWS_PER_FRAME;
      if (start < rejected.length) requestAnimationFrame(slice);
    };
    slice();
  }

  // An upload's answer lists its rejected files; an import job counts them (`rejected_count`),
  // and loadRejected pages them in.
  function showResult({ created, duplicates, rejected = [], rejected_count: count = rejected.length }, source) {
    $("result").hidden = false;
    $("result-created").textContent = number.format(created);
    $("result-duplicates").textContent = number.format(duplicates);
    $("result-rejected").textContent = number.format(count);
    $("result-source").textContent = source ? `· ${source}` : "";
    renderRejected(rejected);
  }

  async function loadRejected(url) {
    try {
      const page = await api("GET", url);
      appendRejected(page.results);
      moreRejected = page.next;
    } catch (err) {
      // The import's result stands; only its list of reasons could not be read.
      window.Kyodo.showError(errorText, err);
      errorBox.hidden = false;
    }
    $("rejected-more").hidden = !moreRejected;
  }

  $("rejected-more").addEventListener("click", async () => {
    const button = $("rejected-more");
    if (!moreRejected || button.disabled) return;
    button.disabled = true;
    try {
      await loadRejected(moreRejected);
    } finally {
      button.disabled = false;
    }
  });

  function failWith(err) {
    setState(err.code === "aborted" ? "idle" : "error");
    window.Kyodo.showError(errorText, err);
    errorBox.hidden = false;
  }

  function sleep(ms) {
    return new Promise((resolve) => { setTimeout(resolve, ms); });
  }

  // Poll an import until it is done or failed, showing its progress. With eager Celery (tests, a
  // small demo) the job may already be finished when the 202 arrives: then one look suffices.
  async function followImport(job) {
    setState("importing");
    showImportProgress(job);
    let delay = POLL_FIRST_MS;
    let failures = 0;
    while (job.status === "queued" || job.status === "running") {
      await sleep(delay);
      delay = Math.min(POLL_MAX_MS, delay * 1.5);
      try {
        job = await api("GET", `/api/imports/${job.id}/`);
        failures = 0;
      } catch (err) {
        failures += 1;
        if (err.status >= 400 && err.status < 500) throw err;
        if (failures >= POLL_FAILURES) {
          const message = `Lost track of import #${job.id}: ${err.message} The import goes on on the server; see Recent imports.`;
          throw new window.Kyodo.ApiError(message, err.status, err.code);
        }
        continue;
      }
      showImportProgress(job);
    }
    showResult(job, `import #${job.id}, ${job.source_name}`);
    if (job.rejected_count > 0) {
      await loadRejected(`/api/imports/${job.id}/rejected/?page_size=${REJECTED_PAGE}`);
    }
    if (job.status === "failed") {
      setState("failed");
      errorText.textContent = `The import failed: ${job.error || "no reason given"}.`.replace(/\.\.$/, ".");
      errorBox.hidden = false;
    } else {
      setState("done");
    }
    return job;
  }

  async function send(route) {
    const data = new FormData();
    let url;
    if (route.to === "import") {
      data.append("file", route.file, route.file.name);
      url = `/api/campaigns/${campaignId}/imports/`;
    } else {
      route.files.forEach((f) => data.append("files", f, f.name));
      url = `/api/campaigns/${campaignId}/items/`;
    }
    setState("uploading");
    showUploadProgress(0, route.to === "import" ? route.file.size : route.files.reduce((s, f) => s + f.size, 0));
    const request = upload(url, data, showUploadProgress);
    cancel = request.abort;
    cancelButton.hidden = false;
    let body;
    try {
      body = await request.promise;
    } finally {
      cancel = null;
      cancelButton.hidden = true;
    }
    if (route.to === "import") {
      await followImport(body);
    } else {
      showResult(body, plural(route.files.length, "file") + " uploaded");
      setState("done");
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const route = plan(chosen);
    if (busy || route.problem) return;
    busy = true;
    syncButtons();
    resetPanel();
    try {
      await send(route);
      form.reset();
      choose([]);
    } catch (err) {
      if (err.detail && Array.isArray(err.detail.rejected)) {
        // Nothing could be imported: say which files and why, as for a partial success.
        showResult({ created: 0, duplicates: 0, rejected: err.detail.rejected }, "");
        setState("failed");
        window.Kyodo.showError(errorText, err);
        errorBox.hidden = false;
      } else {
        failWith(err);
      }
    } finally {
      busy = false;
      syncButtons();
      refreshProgress();
      refreshImports();
    }
  });

  cancelButton.addEventListener("click", () => {
    if (cancel) cancel();
  });

  window.addEventListener("beforeunload", (event) => {
    // Leaving mid-upload loses the upload; an import already sent goes on without the page.
    if (panel.dataset.state === "uploading") event.preventDefault();
  });

  choose([]);
  startTicking();
  refreshProgress();
})();
