// The labeling workspace: one item at a time, keys pick a class, no page reloads.
//
// #workspace[data-state] is the page's state, for CSS and for the browser tests:
//   loading → ready → saving → loading → … → done, or error when the next item cannot be had.
// #workspace[data-item-id] is the item on screen while ready.
(() => {
  "use strict";
  const root = document.getElementById("workspace");
  if (!root || !window.Kyodo) return;
  const $ = (id) => document.getElementById(id);
  const campaignId = root.dataset.campaign;
  const { ApiError } = window.Kyodo;
  const { api } = window.Kyodo.client(root.querySelector("input[name=csrfmiddlewaretoken]").value);
  const stage = $("stage");
  const media = $("media");
  const text = $("text");
  const loading = $("loading");
  const empty = $("empty");
  const progress = $("progress");
  const statusLine = $("status");
  const errorBox = $("error");
  const errorText = $("error-text");
  const retry = $("retry");
  const buttons = Array.from(root.querySelectorAll("button.cls"));
  const byHotkey = new Map(buttons.filter((b) => b.dataset.hotkey).map((b) => [b.dataset.hotkey, b]));
  // Only show "Loading…" when the next item is slow: a flash of it on every item is a jump.
  const LOADING_DELAY_MS = 400;

  let labeled = Number(root.dataset.labeled) || 0;
  // The campaign's counters as last seen (server-rendered first), kept when a refresh fails.
  let campaignProgress = { completed: Number(root.dataset.completed) || 0, items: Number(root.dataset.items) || 0 };
  let task = null;
  let shownAt = 0;
  let retryAction = null;

  function setState(state) {
    root.dataset.state = state;
    stage.setAttribute("aria-busy", String(state === "loading" || state === "saving"));
    buttons.forEach((b) => { b.disabled = state !== "ready"; });
  }

  function showOnly(element) {
    [media, text, loading, empty].forEach((e) => { e.hidden = e !== element; });
  }

  function announce(message) {
    statusLine.textContent = message;
  }

  function clearError() {
    errorBox.hidden = true;
    errorText.textContent = "";
    retry.hidden = true;
    retryAction = null;
  }

  function showError(err, action) {
    if (window.Kyodo.showError(errorText, err)) action = null; // signed out: only sign-in helps
    retryAction = action;
    retry.hidden = !action;
    errorBox.hidden = false;
    if (action) retry.focus();
  }

  function renderProgress() {
    const items = labeled === 1 ? "item" : "items";
    let line = `You labeled ${labeled} ${items} here`;
    if (campaignProgress) line += ` · ${campaignProgress.completed} of ${campaignProgress.items} items complete`;
    progress.textContent = line;
  }

  async function refreshProgress() {
    renderProgress();
    try {
      const data = await api("GET", `/api/campaigns/${campaignId}/`);
      campaignProgress = data.progress;
      renderProgress();
    } catch (_) {
      // The counters are a nicety: labeling goes on without them.
    }
  }

  async function show(next) {
    task = next;
    if (next.text !== undefined) {
      text.textContent = next.text;
      showOnly(text);
    } else {
      media.alt = `Image to label, item ${next.item_id}`;
      media.src = next.media_url;
      try {
        await media.decode();
      } catch (_) {
        showOnly(null);
        setState("error");
        showError(new ApiError("This image could not be loaded."), () => show(next));
        return;
      }
      showOnly(media);
    }
    buttons.forEach((b) => b.classList.remove("chosen"));
    root.dataset.itemId = String(next.item_id);
    shownAt = performance.now();
    setState("ready");
  }

  async function loadNext() {
    task = null;
    setState("loading");
    const slow = setTimeout(() => showOnly(loading), LOADING_DELAY_MS);
    try {
      const next = await api("GET", `/api/campaigns/${campaignId}/next/`);
      clearError();
      if (next === null) {
        delete root.dataset.itemId;
        buttons.forEach((b) => b.classList.remove("chosen"));
        showOnly(empty);
        setState("done");
        return;
      }
      await show(next); // a slow image also gets "Loading…"
    } catch (err) {
      buttons.forEach((b) => b.classList.remove("chosen"));
      showOnly(null);
      setState("error");
      showError(err, loadNext);
    } finally {
      clearTimeout(slow);
    }
  }

  async function submit(button) {
    if (root.dataset.state !== "ready" || !task) return;
    const label = button.dataset.label;
    button.classList.add("chosen");
    setState("saving");
    try {
      await api("POST", `/api/items/${task.item_id}/annotations/`, {
        label,
        duration_ms: Math.round(performance.now() - shownAt),
      });
    } catch (err) {
      if (err.status === 409) {
        // The lease expired or the item closed meanwhile: not the contributor's fault, move on.
        announce(`${err.message} Moving on to the next item.`);
        await loadNext();
        return;
      }
      // The item is still leased to them: show why, and let them choose again.
      button.classList.remove("chosen");
      setState("ready");
      showError(err, null);
      return;
    }
    labeled += 1;
    announce(`Saved “${label}”.`);
    refreshProgress();
    await loadNext();
  }

  retry.addEventListener("click", () => {
    const action = retryAction;
    clearError();
    if (action) action();
  });
  buttons.forEach((b) => b.addEventListener("click", () => submit(b)));
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const target = event.target;
    if (target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) {
      return;
    }
    const button = byHotkey.get(event.key) || byHotkey.get(event.key.toLowerCase());
    if (!button) return;
    event.preventDefault();
    submit(button);
  });

  setState("loading");
  loadNext();
})();
