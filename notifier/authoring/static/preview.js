// Template preview: fit each mail frame to its content, and reload the page
// when the server reports that a file in templates/ or locales/ changed.
"use strict";

(function () {
  const shown = document.body.dataset.fingerprint;
  const live = document.getElementById("live");

  function fit(frame) {
    const doc = frame.contentDocument;
    if (doc && doc.documentElement && doc.location.href !== "about:blank") {
      frame.style.height = doc.documentElement.scrollHeight + "px";
    }
  }

  for (const frame of document.querySelectorAll("iframe.mail-frame")) {
    frame.addEventListener("load", () => fit(frame));
    if (frame.contentDocument && frame.contentDocument.readyState === "complete") {
      fit(frame);
    }
  }

  async function poll() {
    try {
      const response = await fetch("/fingerprint", { cache: "no-store" });
      const body = await response.json();
      if (body.fingerprint !== shown) {
        live.textContent = "Change found: reloading…";
        window.location.reload();
        return;
      }
      live.textContent = "Live: updates when you save a file";
      live.classList.remove("offline");
    } catch (error) {
      live.textContent = "The preview server is not running";
      live.classList.add("offline");
    }
    window.setTimeout(poll, 1000);
  }

  window.setTimeout(poll, 1000);
})();
