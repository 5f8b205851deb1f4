// The forecast page: upload files (or ask for the latest regions), show each sample's
// probability against the model's threshold and a small plot of one of its series.
// Everything from the server is written as text (textContent), never as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PLOT = { width: 220, height: 44, pad: 3 };
let current = null; // the last forecast answer

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

async function call(url, options) {
  // The page's requests carry the token cookie (same origin) when the service has one.
  const response = await fetch(url, Object.assign({ credentials: "same-origin" }, options || {}));
  const body = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) {
    const where = body.field ? ` (${body.field})` : "";
    throw new Error(`${response.status}${where}: ${body.detail}`);
  }
  return body;
}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = !message;
}

function setStatus(message) {
  document.getElementById("status").textContent = message;
}

function showModel(model) {
  const list = document.getElementById("model");
  list.replaceChildren();
  const rows = [
    ["Model", model.run_id ? `${model.name} (run ${model.run_id})` : model.name],
    ["Threshold", `${model.threshold.toFixed(3)} (chosen on validation data${model.calibrated ? ", calibrated" : ""})`],
    ["Trained on", model.data_content_hash || "unknown data (a saved folder)"],
    ["Input", `${model.n_timesteps} time steps of ${model.feature_names.length} features`],
  ];
  const scores = ["val_tss", "test_tss", "test_hss2"].filter((k) => typeof model.metrics[k] === "number");
  if (scores.length) rows.push(["Scores", scores.map((k) => `${k} ${model.metrics[k].toFixed(3)}`).join(", ")]);
  if (model.model_sha256) rows.push(["Files", model.model_sha256]);
  for (const [term, value] of rows) {
    list.append(element("dt", term), element("dd", value));
  }
}

function window_(item) {
  if (!item.start) return "";
  const short = (iso) => iso.replace("T", " ").slice(0, 16);
  return item.end ? `${short(item.start)} – ${short(item.end)}` : short(item.start);
}

function probabilityCell(p, threshold) {
  const cell = element("td", null, "probability");
  const bar = element("span", null, "bar");
  const fill = element("span", null, p >= threshold ? "fill flare" : "fill");
  fill.style.width = `${(100 * p).toFixed(1)}%`;
  const mark = element("span", null, "threshold");
  mark.style.left = `${(100 * threshold).toFixed(1)}%`;
  mark.title = `threshold ${threshold.toFixed(3)}`;
  bar.append(fill, mark);
  cell.append(element("span", p.toFixed(3), "value"), bar);
  return cell;
}

function plot(values, name) {
  // A line through the known values (a gap where one is missing), scaled to the sample's range.
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", PLOT.width);
  svg.setAttribute("height", PLOT.height);
  svg.setAttribute("viewBox", `0 0 ${PLOT.width} ${PLOT.height}`);
  svg.setAttribute("role", "img");
  const known = values.filter((v) => v !== null && Number.isFinite(v));
  const title = document.createElementNS(SVG, "title");
  if (!known.length) {
    title.textContent = `${name}: no values`;
    svg.append(title);
    return svg;
  }
  const low = Math.min(...known);
  const high = Math.max(...known);
  title.textContent = `${name}: ${low.toPrecision(4)} to ${high.toPrecision(4)}`;
  svg.append(title);
  const x = (t) => PLOT.pad + (t * (PLOT.width - 2 * PLOT.pad)) / Math.max(values.length - 1, 1);
  const y = (v) => PLOT.height - PLOT.pad - (high > low ? ((v - low) * (PLOT.height - 2 * PLOT.pad)) / (high - low) : (PLOT.height - 2 * PLOT.pad) / 2);
  let path = "";
  let pen = false;
  values.forEach((v, t) => {
    if (v === null || !Number.isFinite(v)) {
      pen = false;
      return;
    }
    path += `${pen ? "L" : "M"}${x(t).toFixed(1)} ${y(v).toFixed(1)} `;
    pen = true;
  });
  const line = document.createElementNS(SVG, "path");
  line.setAttribute("d", path.trim());
  line.setAttribute("class", "series");
  svg.append(line);
  return svg;
}

function render() {
  if (!current) return;
  const feature = document.getElementById("feature").value;
  const body = document.getElementById("forecasts");
  body.replaceChildren();
  for (const item of current.forecasts) {
    const row = element("tr");
    row.dataset.id = item.id;
    const series = element("td", null, "plot");
    if (item.series && item.series[feature]) series.append(plot(item.series[feature], feature));
    row.append(
      element("td", item.id, "id"),
      element("td", item.region || ""),
      element("td", window_(item)),
      probabilityCell(item.probability, current.threshold),
      element("td", item.label ? "flare" : "no flare", item.label ? "label flare" : "label"),
      series,
    );
    body.append(row);
  }
}

function showForecasts(answer) {
  current = answer;
  const select = document.getElementById("feature");
  const names = answer.model.feature_names;
  if (select.options.length !== names.length) {
    select.replaceChildren(...names.map((n) => element("option", n)));
  }
  document.getElementById("summary").textContent =
    `${answer.n_samples} sample${answer.n_samples === 1 ? "" : "s"}: ${answer.n_flare} forecast to flare ` +
    `(probability ≥ threshold ${answer.threshold.toFixed(3)}).`;
  document.getElementById("results").hidden = false;
  render();
}

async function forecast(url, options) {
  showError("");
  setStatus("forecasting…");
  try {
    showForecasts(await call(url, options));
    setStatus("");
  } catch (error) {
    setStatus("");
    showError(error.message);
  }
}

document.getElementById("upload").addEventListener("submit", (event) => {
  event.preventDefault();
  const chosen = document.getElementById("files").files;
  if (!chosen.length) {
    showError("Choose one or more files first.");
    return;
  }
  const form = new FormData();
  for (const file of chosen) form.append("files", file, file.name);
  forecast("/forecast/files?series=true", { method: "POST", body: form });
});

document.getElementById("latest").addEventListener("click", () => {
  forecast("/forecast/latest-regions?series=true");
});

document.getElementById("feature").addEventListener("change", render);

(async () => {
  try {
    const [models, health] = await Promise.all([call("/models"), call("/health")]);
    showModel(models.models[0]);
    document.getElementById("latest").hidden = !health.latest_regions;
    document.body.dataset.ready = "true";
  } catch (error) {
    showError(error.message);
  }
})();
