// ecglens serve: upload a page, show what was read and found, download the results.
// Plain JS, no build step. Every value from the server is set with textContent (never HTML).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const MM_PER_S = 25;   // paper speed of the lead plot
  const MM_PER_MV = 10;  // gain of the lead plot
  const CLASS_NAMES = {
    NORM: "Normal", MI: "Myocardial infarction", STTC: "ST/T change",
    CD: "Conduction disturbance", HYP: "Hypertrophy",
  };
  const INTERVALS = [
    ["hr_bpm", "Heart rate", "bpm"], ["pr_ms", "PR", "ms"], ["qrs_ms", "QRS", "ms"],
    ["qt_ms", "QT", "ms"], ["qtc_bazett_ms", "QTc (Bazett)", "ms"],
    ["qtc_fridericia_ms", "QTc (Fridericia)", "ms"], ["axis_deg", "Axis", "°"],
  ];

  let config = { max_upload_bytes: 25 * 1024 * 1024, pdf_available: false, disclaimer: "" };
  let lastFile = null;
  let result = null;
  let lead = "II";
  let busy = false;
  let zoomTouched = false;

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function setError(message) {
    const box = $("error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function setStatus(message, spinning) {
    const box = $("status");
    box.textContent = message || "";
    box.classList.toggle("busy", Boolean(spinning));
  }

  function setDisclaimer(text) {
    if (!text) return;
    $("disclaimer").textContent = text;
    $("disclaimer-results").textContent = text;
  }

  function fmt(value, digits) {
    return value === null || value === undefined || !Number.isFinite(value)
      ? null : Number(value).toFixed(digits);
  }

  function mb(bytes) { return (bytes / (1024 * 1024)).toFixed(1) + " MB"; }

  // One line from a failed response: the server's {"error": ...}, else the HTTP status.
  async function errorLine(response) {
    try {
      const data = await response.json();
      if (data && typeof data.error === "string") return data.error;
    } catch (e) { /* not JSON */ }
    return "server answered HTTP " + response.status;
  }

  function formData(file) {
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("page", $("page").value || "1");
    form.append("sex", $("sex").value);
    form.append("age", $("age").value);
    form.append("upright", $("upright").checked ? "1" : "");
    return form;
  }

  async function readFile(file) {
    if (busy || !file) return;
    lastFile = file;
    $("again").disabled = false;
    setError("");
    if (file.size > config.max_upload_bytes) {
      setError(file.name + ": file too large (" + mb(file.size) + "; limit " +
               Math.round(config.max_upload_bytes / (1024 * 1024)) + " MB)");
      return;
    }
    busy = true;
    setStatus("Reading " + file.name + "… (a few seconds)", true);
    try {
      const response = await fetch("/api/read", { method: "POST", body: formData(file) });
      if (!response.ok) {
        setError(await errorLine(response));
        setStatus("");
        return;
      }
      result = await response.json();
      render(result);
      setStatus("Read " + result.file + (result.n_pages > 1
        ? " (page " + result.page + " of " + result.n_pages + ")" : "") + ".");
    } catch (e) {
      setError(file.name + ": the upload failed (" + e.message + ")");
      setStatus("");
    } finally {
      busy = false;
    }
  }

  // ------------------------------------------------------------------ rendering
  function render(r) {
    $("results").hidden = false;
    setDisclaimer(r.disclaimer);
    renderPage(r);
    renderLeadButtons(r.record);
    fitZoom(r.record);
    const firstRead = r.record.leads.includes(lead) ? lead : r.record.leads[0];
    selectLead(firstRead);
    renderStemi(r.analysis);
    renderIntervals(r.analysis);
    renderSt(r.analysis);
    renderClasses(r.classification, r.analysis);
    const warnings = $("analysis-warnings");
    fillList(warnings, r.analysis.warnings || []);
    $("warnings-card").hidden = !warnings.children.length;
    $("dl-pdf").hidden = !r.downloads.pdf;
  }

  function fillList(list, items) {
    list.replaceChildren(...items.map((text) => el("li", text)));
  }

  function renderPage(r) {
    const overlay = $("overlay");
    overlay.dataset.loaded = "false";
    overlay.onload = () => { overlay.dataset.loaded = "true"; };
    overlay.src = r.overlay;
    const d = r.digitize || {};
    const parts = [];
    if (d.layout) parts.push("layout " + d.layout);
    if (d.speed_mm_s) parts.push(d.speed_mm_s + " mm/s");
    if (d.gain_mm_mv) parts.push(d.gain_mm_mv + " mm/mV");
    if (d.leads_read !== undefined) parts.push(d.leads_read + " of 12 leads read");
    if (d.mean_confidence !== undefined) parts.push("confidence " + fmt(d.mean_confidence, 2));
    $("read-meta").textContent = parts.join(" · ");
    fillList($("digitize-warnings"), (d.warnings || []).map((w) => "Reading: " + w));
  }

  function renderLeadButtons(record) {
    const box = $("lead-buttons");
    box.replaceChildren(...record.leads.map((name, k) => {
      const button = el("button", name);
      button.type = "button";
      button.dataset.lead = name;
      if (!(record.confidence[k] > 0)) button.classList.add("unread");
      button.addEventListener("click", () => selectLead(name));
      return button;
    }));
  }

  // 10 s across the plot where that is still readable (>= 2.5 px/mm), else 4 px/mm + scroll.
  function fitZoom(record) {
    const widthMm = Math.max(record.signal[record.leads[0]].length / record.fs, 1) * MM_PER_S;
    const fit = ($("plot-wrap").clientWidth - 2) / widthMm;
    $("zoom").value = String(fit >= 2.5 ? Math.min(fit, 10) : 4);
  }

  function selectLead(name) {
    lead = name;
    for (const button of $("lead-buttons").children) {
      button.setAttribute("aria-pressed", String(button.dataset.lead === name));
    }
    drawLead();
  }

  function drawLead() {
    if (!result) return;
    const record = result.record;
    const k = record.leads.indexOf(lead);
    const values = record.signal[lead] || [];
    const fs = record.fs;
    const finite = values.filter((v) => v !== null);
    const conf = record.confidence[k];
    $("lead-meta").textContent = "Lead " + lead + ": " + (finite.length
      ? (finite.length / fs).toFixed(1) + " s read, confidence " + fmt(conf, 2)
      : "not read on this page");
    const lo = Math.min(-0.5, ...(finite.length ? [Math.min(...finite)] : [])) - 0.2;
    const hi = Math.max(1.0, ...(finite.length ? [Math.max(...finite)] : [])) + 0.2;
    const width = Math.max(values.length / fs, 1) * MM_PER_S;
    const top = Math.ceil(hi * 2) / 2;
    const height = (top - Math.floor(lo * 2) / 2) * MM_PER_MV;
    const scale = Number($("zoom").value);
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("width", String(Math.round(width * scale)));
    svg.setAttribute("height", String(Math.round(height * scale)));
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Lead " + lead + " as read");
    const line = (x1, y1, x2, y2, cls) => {
      const node = document.createElementNS(ns, "line");
      node.setAttribute("x1", x1); node.setAttribute("y1", y1);
      node.setAttribute("x2", x2); node.setAttribute("y2", y2);
      node.setAttribute("class", cls);
      svg.appendChild(node);
    };
    for (let x = 0; x <= width + 1e-6; x += 1) line(x, 0, x, height, x % 5 ? "small" : "big");
    for (let y = 0; y <= height + 1e-6; y += 1) line(0, y, width, y, y % 5 ? "small" : "big");
    let d = "";
    let pen = false;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v === null) { pen = false; continue; }
      const x = (i / fs) * MM_PER_S;
      const y = (top - v) * MM_PER_MV;
      d += (pen ? "L" : "M") + x.toFixed(2) + " " + y.toFixed(2);
      pen = true;
    }
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    path.setAttribute("class", "trace");
    svg.appendChild(path);
    for (let s = 0; s * MM_PER_S <= width; s++) {
      const label = document.createElementNS(ns, "text");
      label.setAttribute("x", String(s * MM_PER_S + 0.5));
      label.setAttribute("y", String(height - 0.8));
      label.textContent = s + " s";
      svg.appendChild(label);
    }
    $("plot-wrap").replaceChildren(svg);
  }

  function renderStemi(analysis) {
    const stemi = analysis.stemi || {};
    const statement = $("stemi-statement");
    const gate = notAssessable(analysis);
    statement.textContent = typeof analysis.not_assessable === "string" && gate
      ? notAssessableText(gate) : stemi.statement || "";
    statement.classList.toggle("alarm", stemi.detected === true);
    const notes = [];
    if (stemi.territories && stemi.territories.length) {
      notes.push("Territories: " + stemi.territories.join(", "));
    }
    if (stemi.leads && stemi.leads.length) notes.push("Leads: " + stemi.leads.join(", "));
    for (const key of ["equivalents", "confounders"]) {
      if (stemi[key] && stemi[key].length) {
        notes.push(key[0].toUpperCase() + key.slice(1) + ": " + stemi[key].join("; "));
      }
    }
    for (const note of stemi.notes || []) notes.push(note);
    fillList($("stemi-notes"), notes);
    const rules = analysis.rules || [];
    $("rules-box").hidden = !rules.length;
    $("rules-table").tBodies[0].replaceChildren(...rules.map((rule) => {
      const row = el("tr");
      if (rule.fired === true) row.className = "fired";
      row.append(el("td", rule.rule),
                 el("td", rule.fired === true ? "met" : rule.fired === false ? "not met" : "n/a"),
                 el("td", rule.detail, "detail"));
      return row;
    }));
  }

  function renderIntervals(analysis) {
    const body = $("intervals-table").tBodies[0];
    const iv = analysis.intervals;
    if (!iv) {
      const row = el("tr");
      row.append(el("td", analysis.cannot_measure ? "Not measured: " + analysis.cannot_measure
                                                  : "Not measured", "na"));
      body.replaceChildren(row);
      return;
    }
    const reasons = iv.reasons || {};
    body.replaceChildren(...INTERVALS.map(([key, name, unit]) => {
      const row = el("tr");
      const value = fmt(iv[key], 0);
      const reason = reasons[key] || (key.startsWith("qtc") ? reasons.qt_ms : "");
      row.append(el("th", name), value === null
        ? el("td", "n/a" + (reason ? " (" + reason + ")" : ""), "na")
        : el("td", value + " " + unit));
      return row;
    }));
  }

  function renderSt(analysis) {
    const body = $("st-table").tBodies[0];
    body.replaceChildren(...(analysis.st || []).map((level) => {
      const row = el("tr", null, "clickable");
      row.title = "Show lead " + level.lead;
      row.addEventListener("click", () => selectLead(level.lead));
      const j = fmt(level.st_j_mv, 2);
      if (j === null) {
        const cell = el("td", "n/a" + (level.reason ? " (" + level.reason + ")" : ""), "na");
        cell.colSpan = 3;
        row.append(el("td", level.lead), cell);
        return row;
      }
      if (Math.abs(level.st_j_mv) >= 0.1) row.classList.add("elevated");
      const sign = (v) => {
        const text = fmt(v, 2);
        return Number(text) === 0 ? "0.00" : (v > 0 ? "+" : "") + text;
      };
      row.append(el("td", level.lead), el("td", sign(level.st_j_mv)),
                 el("td", fmt(level.st_j60_mv, 2) === null ? "n/a" : sign(level.st_j60_mv)),
                 el("td", level.n_beats));
      return row;
    }));
  }

  // The "not assessable" reason a result gives (as the PDF report reads it), or "".
  function notAssessable(d) {
    if (!d) return "";
    if (typeof d.not_assessable === "string" && d.not_assessable.trim()) {
      return d.not_assessable.trim();
    }
    if (d.measurable === false || d.assessable === false) {
      for (const key of ["cannot_measure", "reason", "statement"]) {
        if (typeof d[key] === "string" && d[key].trim()) return d[key].trim();
      }
    }
    return "";
  }

  function notAssessableText(reason) {
    return /^not assessable/i.test(reason) ? reason : "Not assessable: " + reason;
  }

  function renderClasses(given, analysis) {
    const c = given || {};
    const reason = given ? notAssessable(given) : notAssessable(analysis);
    const statement = $("class-statement");
    statement.textContent = reason ? notAssessableText(reason)
      : (typeof c.statement === "string" ? c.statement : "");
    statement.hidden = !statement.textContent;
    const probs = !reason && c.probabilities && Object.keys(c.probabilities).length
      ? c.probabilities : null;
    const thresholds = c.thresholds || {};
    const positive = c.positive || [];
    const classes = (c.classes || Object.keys(probs || {})).filter((n) => probs && n in probs);
    $("class-bars").replaceChildren(...classes.map((name) => {
      const p = probs[name];
      const row = el("div", null, "bar-row" + (positive.includes(name) ? " positive" : ""));
      const bar = el("div", null, "bar");
      const fill = el("div", null, "fill");
      fill.style.width = (100 * p).toFixed(1) + "%";
      bar.append(fill);
      if (thresholds[name] !== undefined) {
        const mark = el("div", null, "threshold");
        mark.style.left = (100 * thresholds[name]).toFixed(1) + "%";
        mark.title = "threshold " + fmt(thresholds[name], 2);
        bar.append(mark);
      }
      bar.setAttribute("role", "img");
      bar.setAttribute("aria-label", name + " " + (100 * p).toFixed(0) + "%");
      row.append(el("span", (CLASS_NAMES[name] || name) + " (" + name + ")", "name"), bar,
                 el("span", (100 * p).toFixed(0) + "%", "value"));
      return row;
    }));
    const meta = [];
    if (probs) meta.push("Bar: probability; mark: the model's decision threshold.");
    if (positive.length) meta.push("Above threshold: " + positive.join(", ") + ".");
    if (c.model_version) meta.push("Model " + c.model_version + ".");
    $("class-meta").textContent = meta.join(" ");
    fillList($("class-warnings"), c.warnings || []);
    $("class-disclaimer").textContent = c.disclaimer || result.disclaimer || "";
  }

  // ------------------------------------------------------------------ downloads
  function save(blob, name) {
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function base64Blob(text, type) {
    const bytes = Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0));
    return new Blob([bytes], { type: type });
  }

  function findings(r) {
    return {
      file: r.file, page: r.page, n_pages: r.n_pages, digitize: r.digitize,
      analysis: r.analysis, classification: r.classification, disclaimer: r.disclaimer,
    };
  }

  function wire() {
    for (const id of ["camera", "file"]) {
      $(id).addEventListener("change", (event) => {
        const file = event.target.files && event.target.files[0];
        event.target.value = "";   // the same file can be chosen again
        if (file) readFile(file);
      });
    }
    $("again").addEventListener("click", () => readFile(lastFile));
    $("zoom").addEventListener("input", () => { zoomTouched = true; drawLead(); });
    let resizeTimer = 0;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        if (result && !zoomTouched) { fitZoom(result.record); drawLead(); }
      }, 150);
    });
    $("overlay-wrap").addEventListener("click", () => {
      $("overlay-wrap").classList.toggle("zoomed");
    });
    $("dl-wfdb").addEventListener("click", () => save(
      base64Blob(result.downloads.wfdb_zip, "application/zip"), result.stem + "_wfdb.zip"));
    $("dl-csv").addEventListener("click", () => save(
      new Blob([result.downloads.csv], { type: "text/csv" }), result.stem + ".csv"));
    $("dl-json").addEventListener("click", () => save(
      new Blob([JSON.stringify(result.record)], { type: "application/json" }),
      result.stem + ".json"));
    $("dl-findings").addEventListener("click", () => save(
      new Blob([JSON.stringify(findings(result), null, 1)], { type: "application/json" }),
      result.stem + "_findings.json"));
    $("dl-pdf").addEventListener("click", () => save(
      base64Blob(result.downloads.pdf, "application/pdf"), result.stem + "_report.pdf"));
  }

  async function loadConfig() {
    try {
      const response = await fetch("/api/config");
      if (response.ok) config = await response.json();
    } catch (e) { /* keep the defaults */ }
    $("limit-mb").textContent = String(Math.round(config.max_upload_bytes / (1024 * 1024)));
    setDisclaimer(config.disclaimer);
    document.body.dataset.ready = "true";
  }

  wire();
  loadConfig();
})();
