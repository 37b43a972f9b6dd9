// SPDX-License-Identifier: MIT

// Hub statistics, the telemetry log's head and the C2D feedback.

import { route } from './hub.js';
import { h, replace, timeText, badge, syncRows } from './dom.js';

function tile(label, key) {
  const v = h('div', { class: 'value', dataset: { stat: key } }, '…');
  return { el: h('div', { class: 'tile' }, v, h('div', { class: 'label' }, label)), v };
}

export function statsPage(ctx) {
  const tiles = {
    totalDeviceCount: tile('Devices', 'totalDeviceCount'),
    enabledDeviceCount: tile('Enabled', 'enabledDeviceCount'),
    disabledDeviceCount: tile('Disabled', 'disabledDeviceCount'),
    connectedDeviceCount: tile('Connected', 'connectedDeviceCount'),
    sequenceNumber: tile('Telemetry head (sequence number)', 'sequenceNumber'),
    methodCalls: tile('Method calls recorded', 'methodCalls'),
  };
  const feedback = h('tbody');
  const when = h('span', { class: 'muted' });
  ctx.every(3000, async () => {
    const [reg, svc, head, calls, fb] = await Promise.all([
      ctx.get(route`/statistics/devices`), ctx.get(route`/statistics/service`), ctx.get(route`/emulator/messages/head`),
      ctx.get(route`/emulator/methods`), ctx.get(route`/emulator/feedback`)]);
    const all = { ...reg, ...svc, ...head, methodCalls: calls.length };
    for (const [k, t] of Object.entries(tiles)) t.v.textContent = all[k] === undefined ? '–' : String(all[k]);
    syncRows(feedback, fb.slice().reverse(), (f) => f.originalMessageId + f.enqueuedTimeUtc + f.statusCode, (f) => h('tr', {},
      h('td', {}, timeText(f.enqueuedTimeUtc)), h('td', {}, f.deviceId), h('td', {}, f.originalMessageId), h('td', {}, badge(f.statusCode)), h('td', {}, f.description)), () => {});
    replace(when, `updated ${new Date().toLocaleTimeString([], { hour12: false })}`);
  });
  return h('section', { class: 'page' }, h('h1', {}, 'Statistics'),
    h('div', { class: 'card' }, h('div', { class: 'cardhead' }, h('h2', {}, 'Hub'), when), h('div', { class: 'tiles' }, Object.values(tiles).map((t) => t.el))),
    h('div', { class: 'card' }, h('h2', {}, 'Cloud-to-device feedback'), h('table', { class: 'list', id: 'feedback' },
      h('thead', {}, h('tr', {}, ['Time', 'Device', 'Message id', 'Status', 'Description'].map((t) => h('th', {}, t)))), feedback)));
}
