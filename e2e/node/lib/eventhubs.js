// SPDX-License-Identifier: MIT
'use strict';

// Reading a device's telemetry back the way backends do: @azure/event-hubs
// on the hub's Event Hub-compatible endpoint.

// collect subscribes to one partition and resolves done with the events
// of deviceId once until() says enough.
function collect(client, partitionId, deviceId, startPosition, until) {
  const events = [];
  let sub;
  const done = new Promise((resolve, reject) => {
    sub = client.subscribe(partitionId, {
      processEvents: async (evs) => {
        for (const e of evs) {
          if (e.systemProperties && e.systemProperties['iothub-connection-device-id'] === deviceId) {
            events.push(e);
          }
        }
        if (until(events)) {
          resolve(events);
        }
      },
      processError: async (err) => reject(err),
    }, { startPosition, maxWaitTimeInSeconds: 1 });
  });
  return { done, close: () => sub.close(), events };
}

// bodyOf is an event's JSON body, whether the client decoded it or not.
function bodyOf(e) {
  return Buffer.isBuffer(e.body) ? JSON.parse(e.body.toString()) : e.body;
}

module.exports = { collect, bodyOf };
