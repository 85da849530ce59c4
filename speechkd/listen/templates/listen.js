/* speechkd listening tests: MOS (ITU-T P.800 ACR), CMOS (P.800 CCR), AB, ABX, MUSHRA (ITU-R BS.1534-3).
 *
 * Vanilla JS that works from file:// (no fetch of data, no server, no CDN). The test data come from
 * <script type="application/json" id="listen-data">; strings from the data reach the page only through
 * textContent, never innerHTML. Answers live in localStorage (per site and listener) and are exported
 * as CSV/JSON, one row per rating. Served over http by `speechkd listen serve`, answers are also POSTed.
 * Test hook: window.speechkdListen.rows() returns the current listener's rows.
 */
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("listen-data").textContent);
  const NS = "speechkd-listen:" + D.site_id + ":";
  const FIELDS = ["listener", "test", "item", "system", "other", "score", "plays", "listening_time_s",
    "timestamp", "kind", "expected", "position"];
  const $ = (id) => document.getElementById(id);
  const ACR = [[5, "Excellent"], [4, "Good"], [3, "Fair"], [2, "Poor"], [1, "Bad"]];  // ITU-T P.800 Annex B
  const CCR = [[3, "Much better"], [2, "Better"], [1, "Slightly better"], [0, "About the same"],
    [-1, "Slightly worse"], [-2, "Worse"], [-3, "Much worse"]];  // ITU-T P.800 Annex E
  const PROMPTS = {
    mos: "How natural does this sample sound?",
    cmos: "Compared with A, B sounds:",
    ab: "Which sample do you prefer?",
    abx: "Is X the same as A or the same as B?",
    mushra: "Rate each sample against the reference (0 = bad, 100 = excellent).",
  };

  // ---- seeded randomisation: the order is a function of hash(seed, listener, test) ----
  function cyrb53(str) {
    let h1 = 0xdeadbeef, h2 = 0x41c6ce57;
    for (let i = 0; i < str.length; i++) {
      const ch = str.charCodeAt(i);
      h1 = Math.imul(h1 ^ ch, 2654435761);
      h2 = Math.imul(h2 ^ ch, 1597334677);
    }
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    return 4294967296 * (2097151 & h2) + (h1 >>> 0);
  }
  function mulberry32(a) {
    return function () {
      a |= 0; a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  function rngFor() { return mulberry32(cyrb53(Array.from(arguments).join("\u001f")) % 4294967296); }
  function shuffle(a, rand) {
    a = a.slice();
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      const x = a[i]; a[i] = a[j]; a[j] = x;
    }
    return a;
  }
  // n flags, half true and half false (odd one drawn), in random order: counterbalancing.
  function balanced(n, rand) {
    const h = Math.floor(n / 2), f = [];
    for (let i = 0; i < n; i++) f.push(i < h ? true : i < 2 * h ? false : rand() < 0.5);
    return shuffle(f, rand);
  }

  function plan(listener) {
    const rand = rngFor(D.seed, listener, D.test);
    if (D.test === "mushra") {
      return shuffle(D.trials, rand).map((t) => Object.assign({}, t, { stimuli: shuffle(t.stimuli, rand) }));
    }
    const nNormal = D.trials.filter((t) => t.kind === "normal").length;
    const swaps = balanced(nNormal, rand), xsys = balanced(nNormal, rand);
    let k = 0;
    const order = shuffle(D.trials, rand).map((t) => Object.assign({}, t, t.kind === "normal"
      ? { swap: swaps[k], xsys: xsys[k++] } : { swap: rand() < 0.5, xsys: rand() < 0.5 }));
    // Consistency repeats: items of the first half heard again later (never adjacent), A/B swapped.
    const firstHalf = order.slice(0, Math.ceil(order.length / 2)).filter((t) => t.kind === "normal");
    const nrep = Math.min(D.repeats || 0, Math.floor(nNormal / 2), firstHalf.length);
    for (const src of shuffle(firstHalf, rand).slice(0, nrep)) {
      const lo = order.indexOf(src) + 2;
      const pos = Math.min(order.length, lo + Math.floor(rand() * (order.length - lo + 1)));
      order.splice(pos, 0, Object.assign({}, src, { key: src.key + "#r", kind: "repeat", swap: !src.swap }));
    }
    return order;
  }

  // ---- storage and export ----
  function load(listener) {
    try { return JSON.parse(localStorage.getItem(NS + "answers:" + listener)) || {}; } catch (e) { return {}; }
  }
  function save(listener, all) { localStorage.setItem(NS + "answers:" + listener, JSON.stringify(all)); }
  function rowsFor(listener) {
    const all = load(listener), out = [];
    for (const test of Object.keys(all)) for (const key of Object.keys(all[test])) out.push.apply(out, all[test][key]);
    out.sort((a, b) => (a.test < b.test ? -1 : a.test > b.test ? 1 : a.position - b.position));
    return out;
  }
  function toCSV(rows) {
    const q = (v) => {
      let s = v === undefined || v === null ? "" : String(v);
      // Text that a spreadsheet would run as a formula gets a leading apostrophe (read_csv strips it).
      if (typeof v === "string" && /^[=+\-@\t\r]/.test(s)) s = "'" + s;
      return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
    };
    return [FIELDS.join(",")].concat(rows.map((r) => FIELDS.map((f) => q(r[f])).join(","))).join("\r\n") + "\r\n";
  }
  function download(name, text, type) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([text], { type: type }));
    a.download = name;
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 2000);
  }
  function fileStem() { return "answers_" + listener.replace(/[^A-Za-z0-9._-]+/g, "_") + "_" + D.site_id; }
  function exportJSON() {
    const doc = { site_id: D.site_id, title: D.title, listener: listener, exported: new Date().toISOString(),
      rows: rowsFor(listener) };
    download(fileStem() + ".json", JSON.stringify(doc, null, 1), "application/json");
  }
  function exportCSV() { download(fileStem() + ".csv", toCSV(rowsFor(listener)), "text/csv"); }
  function post(rows) {
    if (!/^https?:$/.test(location.protocol)) return;  // file://: localStorage only
    fetch("api/answers", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ site_id: D.site_id, rows: rows }) })
      .then((r) => { if (!r.ok) throw new Error("HTTP " + r.status); $("post-msg").textContent = ""; })
      .catch((e) => { $("post-msg").textContent = "Not saved on the server (" + e.message + "); kept in this browser."; });
  }

  // ---- audio: a sample counts as heard once play_fraction of it has actually played ----
  let current = null;
  function makePlayer(src, label, onReady) {
    const audio = new Audio();
    audio.preload = "auto";
    audio.src = src;
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "play";
    btn.textContent = "\u25b6 " + label;
    const st = { plays: 0, listened: 0, ready: false, btn: btn, audio: audio };
    let last = null;
    function check() {
      const dur = audio.duration;
      if (!st.ready && isFinite(dur) && dur > 0 && st.listened >= D.play_fraction * dur - 0.02) {
        st.ready = true;
        btn.classList.add("played");
        onReady();
      }
    }
    function tick() {
      if (last !== null) {
        const d = audio.currentTime - last;
        if (d > 0 && d < 2) st.listened += d;
      }
      last = audio.paused ? null : audio.currentTime;
      check();
    }
    function stopped() { btn.classList.remove("playing"); btn.textContent = "\u25b6 " + label; }
    audio.addEventListener("play", () => {
      st.plays += 1; last = audio.currentTime;
      btn.classList.add("playing"); btn.textContent = "\u25a0 " + label;
    });
    audio.addEventListener("timeupdate", tick);
    audio.addEventListener("pause", () => { tick(); last = null; stopped(); });
    audio.addEventListener("ended", () => { tick(); stopped(); });
    btn.addEventListener("click", () => {
      if (!audio.paused) { audio.pause(); return; }
      if (current && current !== audio) current.pause();
      current = audio;
      audio.currentTime = 0;
      audio.play().catch((e) => { $("trial-msg").textContent = "Cannot play audio: " + e.message; });
    });
    return st;
  }
  function stopAll() { if (current) current.pause(); current = null; }

  // ---- rating widgets ----
  function scale(options, onChange) {
    const fs = document.createElement("fieldset");
    fs.className = "scale";
    fs.disabled = true;
    for (const [value, label] of options) {
      const lab = document.createElement("label");
      const inp = document.createElement("input");
      inp.type = "radio"; inp.name = "score"; inp.value = String(value);
      inp.addEventListener("change", () => onChange(value));
      const n = document.createElement("span");
      n.className = "n";
      n.textContent = typeof value === "number" && value > 0 && options === CCR ? "+" + value : String(value);
      const t = document.createElement("span");
      t.textContent = label;
      lab.append(inp, n, t);
      fs.append(lab);
    }
    return fs;
  }

  let listener = "", trials = [], idx = 0, result = null;

  function renderTrial() {
    stopAll();
    const t = trials[idx];
    $("progress-text").textContent = "Item " + (idx + 1) + " of " + trials.length;
    $("progress-bar").max = trials.length;
    $("progress-bar").value = idx;
    $("prompt").textContent = PROMPTS[D.test];
    $("transcript").textContent = t.text;
    $("transcript").hidden = !t.text;
    $("trial-msg").textContent = "Play the sample" + (D.test === "mos" ? "" : "s") + " to enable rating.";
    $("next-btn").disabled = true;
    $("next-btn").textContent = idx + 1 === trials.length ? "Finish" : "Next";
    const box = $("stimuli"), rating = $("rating");
    box.replaceChildren(); rating.replaceChildren();
    result = null;
    const players = [];
    let widget = null;
    const allReady = () => players.every((p) => p.ready);
    const onReady = () => {
      if (widget && allReady()) { widget.disabled = false; $("trial-msg").textContent = ""; }
    };
    const add = (src, label, cb) => {
      const p = makePlayer(src, label, cb || onReady);
      const wrap = document.createElement("span");
      wrap.className = "stimulus";
      wrap.append(p.btn);
      box.append(wrap);
      players.push(p);
      return p;
    };
    const totals = () => ({ plays: players.reduce((s, p) => s + p.plays, 0),
      listening_time_s: +players.reduce((s, p) => s + p.listened, 0).toFixed(3) });
    const choose = (fn) => (v) => { result = () => [Object.assign(fn(v), totals())]; $("next-btn").disabled = false; };

    if (D.test === "mos") {
      add(t.stimuli[0], "Play");
      widget = scale(ACR, choose((v) => ({ system: t.system, other: t.other, score: v })));
    } else if (D.test === "cmos" || D.test === "ab") {
      // cmos: stimuli = [other, system]; ab: stimuli = [system, other]. swap exchanges A and B.
      const sysIdx = D.test === "cmos" ? 1 : 0;
      const a = t.swap ? 1 : 0;
      add(t.stimuli[a], "A"); add(t.stimuli[1 - a], "B");
      const bIsSystem = (1 - a) === sysIdx;
      if (D.test === "cmos") {
        widget = scale(CCR, choose((v) => ({ system: t.system, other: t.other, score: bIsSystem ? v : -v })));
      } else {
        const opts = [["A", "A is better"], ["B", "B is better"]];
        if (D.no_preference) opts.push(["none", "No preference"]);
        widget = scale(opts, choose((v) => ({ system: t.system, other: t.other,
          score: v === "none" ? 0.5 : ((v === "B") === bIsSystem ? 1 : 0) })));
      }
    } else if (D.test === "abx") {
      const a = t.swap ? 1 : 0;  // stimuli = [system, other]
      add(t.stimuli[a], "A"); add(t.stimuli[1 - a], "B"); add(t.stimuli[t.xsys ? 0 : 1], "X");
      const xLetter = (t.xsys ? 0 : 1) === a ? "A" : "B";
      widget = scale([["A", "X is A"], ["B", "X is B"]], choose((v) => ({ system: t.system, other: t.other,
        score: v === xLetter ? 1 : 0 })));
    } else {
      renderMushra(t, add, players);
      return;
    }
    rating.append(widget);
  }

  function renderMushra(t, add, players) {
    const rating = $("rating");
    const ref = add(t.reference, "Reference", () => {});
    ref.ready = true;  // the open reference need not be played to rate
    const values = new Array(t.stimuli.length).fill(null);
    const head = document.createElement("div");
    head.className = "mushra-scale";
    const ticks = document.createElement("div");
    for (const w of ["Bad", "Poor", "Fair", "Good", "Excellent"]) {
      const s = document.createElement("span"); s.textContent = w; ticks.append(s);
    }
    head.append(document.createElement("span"), ticks, document.createElement("span"));
    rating.append(head);
    t.stimuli.forEach((s, i) => {
      const row = document.createElement("div");
      row.className = "mushra-row";
      const slider = document.createElement("input");
      slider.type = "range"; slider.min = "0"; slider.max = "100"; slider.step = "1"; slider.value = "50";
      slider.disabled = true;
      slider.setAttribute("aria-label", "score of sample " + (i + 1));
      const out = document.createElement("output");
      out.textContent = "\u2013";
      const p = makePlayer(s.src, "Sample " + (i + 1), () => { slider.disabled = false; });
      players.push(p);
      slider.addEventListener("input", () => {
        values[i] = Number(slider.value); out.textContent = slider.value;
        if (values.every((v) => v !== null)) {
          $("next-btn").disabled = false; $("trial-msg").textContent = "";
        }
      });
      row.append(p.btn, slider, out);
      rating.append(row);
    });
    result = () => t.stimuli.map((s, i) => ({ system: s.system, other: "", score: values[i],
      plays: players[i + 1].plays, listening_time_s: +players[i + 1].listened.toFixed(3), kind: s.kind }));
  }

  function next() {
    if (!result || $("next-btn").disabled) return;
    const t = trials[idx];
    const now = new Date().toISOString();
    const rows = result().map((r) => Object.assign({ listener: listener, test: D.test, item: t.item,
      timestamp: now, kind: t.kind, expected: t.expected || "", position: idx + 1 }, r));
    const all = load(listener);
    all[D.test] = all[D.test] || {};
    all[D.test][t.key] = rows;
    save(listener, all);
    post(rows);
    advance();
  }

  function advance() {
    const done = (load(listener)[D.test]) || {};
    idx = trials.findIndex((t) => !(t.key in done));
    $("trial").hidden = idx < 0;
    $("done").hidden = idx >= 0;
    if (idx >= 0) renderTrial(); else stopAll();
  }

  function start() {
    const id = $("listener").value.trim();
    if (!id) { $("start-msg").textContent = "Please enter a listener id."; return; }
    listener = id;
    localStorage.setItem("speechkd-listen:last-listener", id);
    $("listener-label").textContent = "Listener: " + id;
    trials = plan(id);
    $("start").hidden = true;
    advance();
  }

  $("listener").value = localStorage.getItem("speechkd-listen:last-listener") || "";
  $("start-btn").addEventListener("click", start);
  $("listener").addEventListener("keydown", (e) => { if (e.key === "Enter") start(); });
  $("next-btn").addEventListener("click", next);
  $("export-csv").addEventListener("click", () => { if (listener) exportCSV(); });
  $("export-json").addEventListener("click", () => { if (listener) exportJSON(); });
  window.speechkdListen = { rows: () => rowsFor(listener), plan: plan, toCSV: toCSV, fields: FIELDS };
})();
