// da2k annotate: keys, clicks and the display gate of the Annotate and Review views.
//
// An action (answer, skip, undo, review decision) is accepted only once the view it is about
// has been painted (its images decoded, two animation frames) and has stayed on screen for
// SETTLE_MS; from the key press until the next view is painted every input is ignored. The
// action carries the view's token, so the server can refuse one about anything else.
(function () {
  if (window.da2k) return;
  const SETTLE_MS = 150;
  const WATCHDOG_MS = 20000;
  const KEYS = {
    task: { a: "A", b: "B", s: "unsure", n: "skip", " ": "skip", u: "undo" },
    review: { a: "A", b: "B", d: "discard", n: "next", " ": "next" },
  };
  const NEEDS_PAIR = { A: 1, B: 1, unsure: 1, skip: 1, discard: 1 };
  const views = {};
  let adjust = { brightness: 1, contrast: 1, zoom: 1 };
  try {
    adjust = Object.assign(adjust, JSON.parse(localStorage.getItem("da2k-adjust") || "{}"));
  } catch (e) {}
  const timings = [];

  function root(v) {
    return v.element.querySelector("[data-da2k-view]");
  }
  function shown(v) {
    const r = root(v);
    return r && r.offsetParent !== null ? r : null;
  }
  function say(r, text) {
    const note = r && r.querySelector(".da2k-note");
    if (note) note.textContent = text;
  }
  function applyAdjust() {
    for (const img of document.querySelectorAll("img.da2k-adjust")) {
      img.style.filter = `brightness(${adjust.brightness}) contrast(${adjust.contrast})`;
    }
    for (const img of document.querySelectorAll("img.da2k-zoomable")) {
      img.style.transformOrigin = img.dataset.origin || "50% 50%";
      img.style.transform = `scale(${adjust.zoom})`;
    }
    for (const span of document.querySelectorAll(".da2k-levels")) {
      span.textContent =
        `brightness ${Math.round(adjust.brightness * 100)} %, contrast ${Math.round(adjust.contrast * 100)} %, ` +
        `zoom ${adjust.zoom}x`;
    }
    try {
      localStorage.setItem("da2k-adjust", JSON.stringify(adjust));
    } catch (e) {}
  }
  function changeAdjust(key) {
    const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, Math.round(x * 100) / 100));
    if (key === "+" || key === "=") adjust.brightness = clamp(adjust.brightness + 0.2, 0.4, 3);
    else if (key === "-" || key === "_") adjust.brightness = clamp(adjust.brightness - 0.2, 0.4, 3);
    else if (key === "c") adjust.contrast = adjust.contrast >= 2 ? 1 : adjust.contrast + 0.5;
    else if (key === "z") adjust.zoom = adjust.zoom >= 4 ? 1 : adjust.zoom * 2;
    else if (key === "0") adjust = { brightness: 1, contrast: 1, zoom: 1 };
    else return false;
    applyAdjust();
    return true;
  }

  // A new view arrived: lock, wait until it is painted, then open it after SETTLE_MS.
  function arm(v) {
    clearTimeout(v.timer);
    clearTimeout(v.watchdog);
    v.ready = false;
    v.busy = false;
    const r = root(v);
    if (!r) return;
    const token = r.dataset.token || "";
    r.classList.remove("da2k-ready", "da2k-busy");
    applyAdjust();
    const images = Array.from(r.querySelectorAll("img"));
    Promise.all(images.map((img) => (img.decode ? img.decode().catch(() => null) : null))).then(() => {
      requestAnimationFrame(() =>
        requestAnimationFrame(() => {
          const now = root(v);
          if (!now || (now.dataset.token || "") !== token) return; // replaced meanwhile
          now.dataset.paintedAt = String(performance.now());
          if (v.pressedAt !== null) {
            timings.push(performance.now() - v.pressedAt);
            v.pressedAt = null;
          }
          v.timer = setTimeout(() => {
            const still = root(v);
            if (!still || (still.dataset.token || "") !== token) return;
            v.token = token;
            v.ready = true;
            still.classList.add("da2k-ready");
          }, SETTLE_MS);
        })
      );
    });
  }

  function act(v, action) {
    const r = root(v);
    if (!r || !v.ready || v.busy) return false; // not painted and settled yet, or waiting for the server
    if (NEEDS_PAIR[action] && !v.token) {
      say(r, r.dataset.emptyNote || "Nothing to answer here: that key does nothing now.");
      return true;
    }
    v.busy = true;
    v.ready = false;
    r.classList.remove("da2k-ready");
    r.classList.add("da2k-busy");
    v.pressedAt = performance.now();
    v.trigger("act", { action: action, token: v.token });
    // The server always answers with a new view; should it fail, unlock after a while.
    v.watchdog = setTimeout(() => {
      if (v.busy) arm(v);
    }, WATCHDOG_MS);
    return true;
  }

  function typingIn(t) {
    return t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
  }

  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (typingIn(t)) {
      if (e.key === "Escape") {
        t.blur();
        e.preventDefault();
      }
      return;
    }
    if (e.key === " " || e.key === "Enter") {
      e.preventDefault(); // never let Space or Enter press a focused button
      if (t && t.tagName === "BUTTON") t.blur();
    }
    let v = null;
    for (const kind of ["task", "review"]) if (views[kind] && shown(views[kind])) v = views[kind];
    if (!v) return;
    const key = (e.key || "").length === 1 ? e.key.toLowerCase() : e.key;
    if (changeAdjust(key)) {
      e.preventDefault();
      return;
    }
    const action = KEYS[v.kind][key];
    if (!action) return;
    e.preventDefault();
    if (!e.repeat) act(v, action);
  }

  function onKeyUp(e) {
    if ((e.key === " " || e.key === "Enter") && e.target && e.target.tagName === "BUTTON") e.preventDefault();
  }

  function attach(kind, element, trigger, watch) {
    const v = views[kind] || { kind: kind, ready: false, busy: false, token: null, pressedAt: null };
    v.element = element;
    v.trigger = trigger;
    views[kind] = v;
    // Buttons never take the focus (so Space/Enter cannot press them later) and go through
    // the same gate as the keys.
    element.addEventListener("mousedown", (e) => {
      if (e.target.closest("button[data-act]")) e.preventDefault();
    });
    element.addEventListener("click", (e) => {
      const button = e.target.closest("button[data-act]");
      if (!button) return;
      e.preventDefault();
      button.blur();
      act(v, button.dataset.act);
    });
    watch("value", () => arm(v));
    arm(v);
  }

  document.addEventListener("keydown", onKey, true);
  document.addEventListener("keyup", onKeyUp, true);
  window.da2k = { attach: attach, timings: timings, views: views, settleMs: SETTLE_MS };
})();
