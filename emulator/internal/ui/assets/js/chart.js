// SPDX-License-Identifier: MIT

// A small SVG line chart: one series per identity, time on x, value on y.
// Written here rather than vendored: it needs axes, a legend and points,
// which is a page of code.

const NS = 'http://www.w3.org/2000/svg';
const W = 800;
const H = 260;
const PAD = { left: 56, right: 16, top: 12, bottom: 28 };
export const palette = ['#0b5cad', '#d9480f', '#2b8a3e', '#862e9c', '#c92a2a', '#1098ad', '#e67700', '#5c940d'];

function s(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

// niceTicks returns about n round values covering [lo, hi].
export function niceTicks(lo, hi, n = 5) {
  if (lo === hi) {
    const d = Math.abs(lo) || 1;
    lo -= d / 2;
    hi += d / 2;
  }
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((x) => x >= raw) || raw;
  const out = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step / 2; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function clock(t, ms = false) {
  const d = new Date(t);
  const s = d.toLocaleTimeString([], { hour12: false });
  return ms ? `${s}.${String(d.getMilliseconds()).padStart(3, '0')}` : s;
}

// render draws series, a Map of name -> [{t (ms), v, seq}] in time order,
// into svg (replacing what was there).
export function render(svg, series, emptyText) {
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  let tMin = Infinity; let tMax = -Infinity; let vMin = Infinity; let vMax = -Infinity;
  for (const pts of series.values()) {
    for (const p of pts) {
      tMin = Math.min(tMin, p.t); tMax = Math.max(tMax, p.t);
      vMin = Math.min(vMin, p.v); vMax = Math.max(vMax, p.v);
    }
  }
  if (tMin === Infinity) {
    svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, emptyText));
    return;
  }
  const ticks = niceTicks(vMin, vMax);
  const lo = ticks[0];
  const hi = ticks[ticks.length - 1];
  if (tMax === tMin) { tMin -= 1000; tMax += 1000; }
  const x = (t) => PAD.left + ((t - tMin) / (tMax - tMin)) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - ((v - lo) / (hi - lo || 1)) * (H - PAD.top - PAD.bottom);

  const grid = s('g', { class: 'grid' });
  for (const v of ticks) {
    grid.append(s('line', { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }));
    grid.append(s('text', { x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, String(v)));
  }
  // Milliseconds matter when the whole span is a few seconds.
  const fine = tMax - tMin < 10000;
  for (const [t, anchor] of [[tMin, 'start'], [(tMin + tMax) / 2, 'middle'], [tMax, 'end']]) {
    grid.append(s('text', { x: x(t), y: H - 8, 'text-anchor': anchor }, clock(t, fine)));
  }
  svg.append(grid);

  let i = 0;
  for (const [name, pts] of series) {
    const color = palette[i++ % palette.length];
    const g = s('g', { class: 'series', 'data-series': name, stroke: color, fill: color });
    g.append(s('polyline', { fill: 'none', 'stroke-width': 2, points: pts.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ') }));
    for (const p of pts) {
      g.append(s('circle', { class: 'pt', cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 3, 'data-seq': p.seq, 'data-value': p.v },
        s('title', {}, `${name}: ${p.v} at ${clock(p.t, true)} (#${p.seq})`)));
    }
    svg.append(g);
  }
}

export function newChart() {
  return s('svg', { class: 'chart', role: 'img', 'aria-label': 'telemetry chart' });
}
