// The labeling workspace: one item at a time, keys pick a class, no page reloads.
(() => {
  "use strict";
  const root = document.getElementById("workspace");
  const campaignId = root.dataset.campaign;
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const media = document.getElementById("media");
  const text = document.getElementById("text");
  const empty = document.getElementById("empty");
  const progress = document.getElementById("progress");
  const statusLine = document.getElementById("status");
  const buttons = Array.from(document.querySelectorAll("button.cls"));
  const byHotkey = new Map(buttons.filter((b) => b.dataset.hotkey).map((b) => [b.dataset.hotkey, b]));

  let task = null;
  let shownAt = 0;
  let busy = false;
  let labeledHere = 0;

  async function api(method, url, body) {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    return { status: response.status, data };
  }

  function setEnabled(on) {
    buttons.forEach((b) => { b.disabled = !on; });
  }

  async function refreshProgress() {
    const { status, data } = await api("GET", `/api/campaigns/${campaignId}/`);
    if (status === 200) {
      const p = data.progress;
      progress.textContent = `You labeled ${labeledHere} this session · campaign: ${p.completed} of ${p.items} items done, ${p.labels} labels`;
    }
  }

  function show(next) {
    task = next;
    media.hidden = true;
    text.hidden = true;
    empty.hidden = true;
    if (!task) {
      empty.hidden = false;
      setEnabled(false);
      root.dataset.state = "done";
      return;
    }
    if (task.text !== undefined) {
      text.textContent = task.text;
      text.hidden = false;
    } else {
      media.src = task.media_url;
      media.hidden = false;
    }
    root.dataset.itemId = String(task.item_id);
    root.dataset.state = "ready";
    shownAt = performance.now();
    setEnabled(true);
  }

  async function loadNext() {
    root.dataset.state = "loading";
    const { status, data } = await api("GET", `/api/campaigns/${campaignId}/next/`);
    if (status === 200) show(data);
    else if (status === 204) show(null);
    else {
      statusLine.textContent = (data && data.error && data.error.message) || `error ${status}`;
      show(null);
    }
  }

  async function submit(label) {
    if (!task || busy) return;
    busy = true;
    setEnabled(false);
    const itemId = task.item_id;
    const { status, data } = await api("POST", `/api/items/${itemId}/annotations/`, {
      label,
      duration_ms: Math.round(performance.now() - shownAt),
    });
    if (status === 201) {
      labeledHere += 1;
      statusLine.textContent = `Saved “${label}”.`;
    } else {
      // A closed item or an expired lease is not the contributor's fault: move on.
      statusLine.textContent = (data && data.error && data.error.message) || `error ${status}`;
    }
    busy = false;
    await loadNext();
    refreshProgress();
  }

  buttons.forEach((b) => b.addEventListener("click", () => submit(b.dataset.label)));
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const button = byHotkey.get(event.key);
    if (button) {
      event.preventDefault();
      button.classList.add("pressed");
      setTimeout(() => button.classList.remove("pressed"), 120);
      submit(button.dataset.label);
    }
  });

  setEnabled(false);
  loadNext().then(refreshProgress);
})();
