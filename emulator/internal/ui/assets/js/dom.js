// SPDX-License-Identifier: MIT

// Small DOM helpers: the dashboard builds its elements with h() and never
// with innerHTML, so text from the hub (ids, payloads) is never markup.

// h creates an element. attrs: "class", "on<event>" listeners, "value",
// "checked", "disabled" and "hidden" as properties, "dataset", anything
// else as an attribute (skipped when null or false).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'hidden') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// replace swaps el's children.
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// The hub writes "0001-01-01T00:00:00Z" for "never".
export function isNever(t) {
  return !t || t.startsWith('0001-01-01');
}

export function timeText(t) {
  if (isNever(t)) return 'never';
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

// ago is a short relative time, with the absolute one for the title.
export function ago(t) {
  if (isNever(t)) return h('span', { class: 'muted' }, 'never');
  const d = new Date(t);
  const s = Math.max(0, Math.round((Date.now() - d.getTime()) / 1000));
  let text;
  if (s < 60) text = `${s} s ago`;
  else if (s < 3600) text = `${Math.floor(s / 60)} min ago`;
  else if (s < 86400) text = `${Math.floor(s / 3600)} h ago`;
  else text = d.toLocaleDateString();
  return h('time', { datetime: t, title: d.toISOString() }, text);
}

export function pretty(v) {
  return JSON.stringify(v, null, 2);
}

// jsonBlock shows a value as indented JSON.
export function jsonBlock(v, cls = '') {
  return h('pre', { class: `json ${cls}` }, v === undefined ? '' : pretty(v));
}

// message is the inline status area of a form: ok() and error() fill it.
export function message() {
  const el = h('div', { class: 'msg', role: 'status', 'aria-live': 'polite' });
  return {
    el,
    clear() { el.className = 'msg'; el.replaceChildren(); },
    ok(...content) { el.className = 'msg ok'; replace(el, ...content); },
    error(err) {
      el.className = 'msg error';
      replace(el, String(err && err.toString ? err.toString() : err));
    },
  };
}

// field wraps an input with its label.
export function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'label' }, label), input, hint ? h('small', { class: 'muted' }, hint) : null);
}

// badge is a coloured state word; data-state lets the stylesheet (and the
// browser tests) read it.
export function badge(text, kind) {
  return h('span', { class: `badge ${kind || String(text).toLowerCase()}`, dataset: { state: text } }, text);
}

// copyButton copies the text of a getter; it falls back to selecting a
// hidden field when the Clipboard API is refused (plain http, permissions).
export function copyButton(get, label = 'Copy') {
  const btn = h('button', { type: 'button', class: 'small', onclick: async () => {
    const text = get();
    try {
      await navigator.clipboard.writeText(text);
      btn.textContent = 'Copied';
    } catch {
      const ta = h('textarea', { class: 'offscreen', readonly: true });
      ta.value = text;
      document.body.append(ta);
      ta.select();
      const done = document.execCommand && document.execCommand('copy');
      ta.remove();
      btn.textContent = done ? 'Copied' : 'Copy failed';
    }
    setTimeout(() => { btn.textContent = label; }, 1500);
  } }, label);
  return btn;
}

// confirmButton asks for a second click before it acts.
export function confirmButton(label, confirmLabel, act, cls = 'danger small') {
  let armed = false;
  let timer;
  const btn = h('button', { type: 'button', class: cls, onclick: async () => {
    if (!armed) {
      armed = true;
      btn.textContent = confirmLabel;
      btn.classList.add('armed');
      timer = setTimeout(() => { armed = false; btn.textContent = label; btn.classList.remove('armed'); }, 4000);
      return;
    }
    clearTimeout(timer);
    armed = false;
    btn.textContent = label;
    btn.classList.remove('armed');
    await act();
  } }, label);
  return btn;
}

// syncRows keeps a tbody's rows in step with items by key, updating rows in
// place so that a poll does not swallow a click on a row's button.
export function syncRows(tbody, items, key, create, update) {
  const existing = new Map();
  for (const tr of tbody.children) existing.set(tr.dataset.key, tr);
  let prev = null;
  for (const item of items) {
    const k = key(item);
    let tr = existing.get(k);
    if (tr) existing.delete(k);
    else {
      tr = create(item);
      tr.dataset.key = k;
    }
    update(tr, item);
    const want = prev ? prev.nextSibling : tbody.firstChild;
    if (want !== tr) tbody.insertBefore(tr, want);
    prev = tr;
  }
  for (const tr of existing.values()) tr.remove();
}

// decodeBody turns a base64 body into text, and JSON when it parses.
export function decodeBody(b64) {
  if (!b64) return { text: '', json: undefined };
  let bytes;
  try {
    bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  } catch {
    return { text: b64, json: undefined };
  }
  const text = new TextDecoder('utf-8').decode(bytes);
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { text, json };
}

// tabs renders a tab strip of links; the current one is marked.
export function tabs(items, current) {
  return h('nav', { class: 'tabs' }, items.map(([id, label, href]) =>
    h('a', { href, class: id === current ? 'active' : null, dataset: { tab: id } }, label)));
}
