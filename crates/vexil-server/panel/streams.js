// The panel's streams, shared by every tab of it (a SharedWorker): one stream per environment however many tabs are
// open. A browser gives a server six connections; three streams per tab left a second tab, and then the first, with
// none for anything else.
//
// Each tab sends {type: "follow", environments, fresh}; the worker opens what is not open (all anew with `fresh`, after
// a login), and relays every stream's frames and connection state to every tab. It keeps each environment's current
// picture (the last snapshot with every change since applied), so a tab that joins streams already open starts from
// what they have said, not from what it read before joining. A tab leaves with {type: "leave"}.
"use strict";

const ports = new Set();
const sources = new Map(); // environment key → EventSource
const pictures = new Map(); // environment key → Map(flag name → {definition, state, summary})

function send(message) {
  for (const port of ports) port.postMessage(message);
}

function connection(key) {
  const source = sources.get(key);
  return { type: "connection", environment: key, readyState: source ? source.readyState : 2 };
}

function open(key) {
  const source = new EventSource(`/api/feature-flags/stream?env=${encodeURIComponent(key)}`);
  sources.set(key, source);
  const report = () => { if (sources.get(key) === source) send(connection(key)); };
  source.addEventListener("open", report);
  source.addEventListener("error", report);
  source.addEventListener("snapshot", (event) => {
    if (sources.get(key) !== source) return;
    const snapshot = JSON.parse(event.data);
    pictures.set(key, new Map(snapshot.flags.map((flag) => [flag.definition.name, flag])));
    send({ type: "snapshot", environment: key, data: event.data });
  });
  source.addEventListener("change", (event) => {
    if (sources.get(key) !== source) return;
    const change = JSON.parse(event.data);
    const picture = pictures.get(key);
    if (picture) picture.set(change.flag, { definition: change.definition, state: change.state, summary: change.summary });
    send({ type: "change", environment: key, data: event.data });
  });
}

function close(key) {
  const source = sources.get(key);
  if (source) source.close();
  sources.delete(key);
  pictures.delete(key);
}

onconnect = (event) => {
  const port = event.ports[0];
  ports.add(port);
  port.onmessage = ({ data }) => {
    if (data.type === "leave") {
      ports.delete(port);
      if (!ports.size) for (const key of [...sources.keys()]) close(key);
      return;
    }
    if (data.type !== "follow") return;
    for (const key of data.environments) {
      const source = sources.get(key);
      if (data.fresh || !source || source.readyState === EventSource.CLOSED) {
        close(key);
        open(key);
      } else {
        // Already open: this tab starts from the picture the stream has given so far.
        const picture = pictures.get(key);
        if (picture) port.postMessage({ type: "snapshot", environment: key, data: JSON.stringify({ flags: [...picture.values()] }) });
      }
      port.postMessage(connection(key));
    }
  };
  port.start();
};
