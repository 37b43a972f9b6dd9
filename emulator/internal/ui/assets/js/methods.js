// SPDX-License-Identifier: MIT

// The history of direct-method calls the emulator recorded.

import { route } from './hub.js';
import { h, jsonBlock, timeText, syncRows, badge } from './dom.js';
import { identityHash } from './devices.js';

// methodRow shows one recorded call: what was asked, and the device's
// answer or the hub's error code.
export function methodRow(c, withDevice = true) {
  const outcome = c.errorCode ? badge(`error ${c.errorCode}`, 'failed') : badge(`status ${c.status}`, c.status >= 200 && c.status < 300 ? 'ok' : 'failed');
  return h('tr', { dataset: { method: c.methodName } },
    h('td', {}, timeText(c.startTime)),
    withDevice ? h('td', {}, h('a', { href: identityHash(c.deviceId, c.moduleId || '', 'methods') }, c.moduleId ? `${c.deviceId}/${c.moduleId}` : c.deviceId)) : null,
    h('td', { class: 'code' }, c.methodName),
    h('td', {}, jsonBlock(c.payload)),
    h('td', {}, outcome),
    h('td', {}, c.responsePayload === undefined ? '' : jsonBlock(c.responsePayload)),
    h('td', { class: 'num' }, `${c.durationMs} ms`));
}

export function methodTable(tbody, withDevice = true) {
  const cols = ['Time', withDevice ? 'Identity' : null, 'Method', 'Payload', 'Outcome', 'Response', 'Duration'].filter(Boolean);
  return h('table', { class: 'list methods' }, h('thead', {}, h('tr', {}, cols.map((t) => h('th', {}, t)))), tbody);
}

export function methodsPage(ctx) {
  const tbody = h('tbody');
  const filter = h('input', { name: 'deviceId', autocomplete: 'off', placeholder: 'all devices' });
  const count = h('span', { class: 'muted' });
  let last = [];
  function render() {
    const f = filter.value.trim();
    const calls = last.filter((c) => !f || c.deviceId === f).slice().reverse();
    syncRows(tbody, calls, (c) => `${c.startTime}/${c.deviceId}/${c.moduleId || ''}/${c.methodName}`, (c) => methodRow(c), () => {});
    count.textContent = `${calls.length} call${calls.length === 1 ? '' : 's'}`;
  }
  filter.addEventListener('input', render);
  ctx.every(3000, async () => {
    last = await ctx.get(route`/emulator/methods`);
    render();
  });
  return h('section', { class: 'page' }, h('h1', {}, 'Direct methods'),
    h('div', { class: 'card' }, h('div', { class: 'cardhead' }, h('h2', {}, 'Recorded calls'), count),
      h('label', { class: 'field inline' }, h('span', { class: 'label' }, 'Device id'), filter),
      h('p', { class: 'muted' }, 'Invoke a method from a device\'s page. Newest first.'),
      methodTable(tbody)));
}
