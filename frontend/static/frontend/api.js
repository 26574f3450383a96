// The pages' one way to call the JSON API (session cookie + CSRF header) and to read its errors.
//
// Every error a page shows is an ApiError whose message is a sentence for people: the API's
// {"error": {"code", "message"}} message when there is one, else a line naming the HTTP status.
(() => {
  "use strict";

  class ApiError extends Error {
    constructor(message, status, code, detail) {
      super(message);
      this.status = status || 0;
      this.code = code || "";
      // The whole {"error": {...}} body: some errors carry more (e.g. the rejected files).
      this.detail = detail || null;
    }
    get signedOut() {
      return this.status === 401 || this.code === "not_authenticated" || /^CSRF/.test(this.message);
    }
  }

  const NETWORK = "Could not reach the server. Check your connection and try again.";

  function sentence(message) {
    return message.charAt(0).toUpperCase() + message.slice(1);
  }

  function describe(status, data) {
    const message = data && data.error && data.error.message;
    if (typeof message === "string" && message) return sentence(message);
    if (status === 413) return "The upload is too large for the server (HTTP 413).";
    if (status >= 500) return `The server had a problem (HTTP ${status}). Please try again in a moment.`;
    return `The request failed (HTTP ${status}).`;
  }

  function errorFrom(status, data) {
    const detail = data && typeof data.error === "object" ? data.error : null;
    const code = detail && typeof detail.code === "string" ? detail.code : "";
    return new ApiError(describe(status, data), status, code, detail);
  }

  function parse(text) {
    try {
      return text ? JSON.parse(text) : null;
    } catch (_) {
      return null; // an HTML error page from a proxy: describe() falls back to the status
    }
  }

  function client(csrf) {
    // The result, null for 204, or an ApiError.
    async function api(method, url, body) {
      let response;
      try {
        response = await fetch(url, {
          method,
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (_) {
        throw new ApiError(NETWORK, 0, "network");
      }
      if (response.status === 204) return null;
      const data = parse(await response.text().catch(() => ""));
      if (response.ok) return data;
      throw errorFrom(response.status, data);
    }

    // A multipart POST through XMLHttpRequest, the one browser API that reports bytes sent.
    // onProgress(sent, total) runs as the body goes out, and once more with sent === total when
    // all of it is out (small bodies may send no progress event at all). Returns {promise, abort}.
    function upload(url, formData, onProgress) {
      const xhr = new XMLHttpRequest();
      let total = 0;
      const promise = new Promise((resolve, reject) => {
        xhr.open("POST", url);
        xhr.setRequestHeader("X-CSRFToken", csrf);
        xhr.setRequestHeader("Accept", "application/json");
        xhr.upload.addEventListener("progress", (event) => {
          if (!event.lengthComputable) return;
          total = event.total;
          onProgress(event.loaded, event.total);
        });
        xhr.upload.addEventListener("load", () => onProgress(total, total));
        xhr.addEventListener("load", () => {
          const data = parse(xhr.responseText);
          if (xhr.status >= 200 && xhr.status < 300) resolve(data);
          else reject(errorFrom(xhr.status, data));
        });
        xhr.addEventListener("error", () => reject(new ApiError(NETWORK, 0, "network")));
        xhr.addEventListener("abort", () => reject(new ApiError("Upload cancelled.", 0, "aborted")));
        xhr.send(formData);
      });
      return { promise, abort: () => xhr.abort() };
    }

    return { api, upload };
  }

  // Put an error's message into `element`; a signed-out user gets a link back to sign-in instead.
  function showError(element, err) {
    element.textContent = err.message;
    if (!err.signedOut) return false;
    element.textContent = "You are signed out. ";
    const link = document.createElement("a");
    link.href = `/login/?next=${encodeURIComponent(window.location.pathname)}`;
    link.textContent = "Sign in again";
    element.append(link);
    return true;
  }

  window.Kyodo = Object.freeze({ ApiError, client, showError, describe });
})();
