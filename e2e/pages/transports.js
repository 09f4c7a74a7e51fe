// Runs in the transports test page: herald.js clients by name, each with its own options
// (transport, token, share), recording what each receives for the test to read.
import { connect } from '/herald.js';

const got = {}, gaps = {}, statuses = {}, clients = {};

function cell(tr, v) {
  const td = document.createElement('td');
  td.textContent = v;
  tr.append(td);
}

function card(name) {
  let el = document.getElementById('c-' + name);
  if (!el) {
    el = document.createElement('div');
    el.className = 'client';
    el.id = 'c-' + name;
    el.innerHTML = '<b></b><span></span>';
    el.querySelector('b').textContent = name;
    document.getElementById('clients').append(el);
  }
  return el.querySelector('span');
}

Object.assign(window, {
  got, gaps, statuses, clients,

  /** Starts client `name`; resolves once this tab's view of its connection is open. */
  start(name, topics, options = {}) {
    got[name] = []; gaps[name] = []; statuses[name] = [];
    const h = connect('', options);
    clients[name] = h;
    return new Promise((resolve) => {
      h.subscribe(topics, {
        onMessage: (m) => {
          got[name].push(m);
          const tr = document.createElement('tr');
          for (const v of [name, m.id, m.topic, m.event || '', m.data]) cell(tr, v);
          document.getElementById('log').append(tr);
        },
        onGap: (g) => gaps[name].push(g),
        onStatus: (s) => {
          statuses[name].push(s);
          card(name).textContent = `${s.state} via ${s.transport || '?'}${s.leader ? ', leader' : ''}` +
            (s.status ? ` (${s.status})` : '') + (s.error ? ': ' + s.error : '');
          if (s.state === 'open') resolve();
        },
      });
    });
  },

  /** Creates client `name` without subscribing (a page that only publishes). */
  make(name, options = {}) {
    clients[name] = connect('', options);
  },

  /** Publishes through client `name`: {id} or {error, code}. */
  async pub(name, topic, data, opts) {
    try {
      return { id: await clients[name].publish(topic, data, opts) };
    } catch (e) {
      return { error: String(e.message), code: e.code };
    }
  },
});
window.pageReady = true;
