// Runs in the test page: starts subscribers and records what each receives, for the test to read.
import { connect } from '/herald.js';
import { fetchEventSource } from '@microsoft/fetch-event-source';

const got = { native: [], fes: [], herald: [] };
const gaps = [];
const statuses = [];
const query = (topics) => topics.map((t) => 'topic=' + encodeURIComponent(t)).join('&') + '&format=envelope';

function record(client, m) {
  got[client].push(m);
  const tr = document.createElement('tr');
  for (const v of [client, m.id, m.topic, m.event || '', m.data]) {
    const td = document.createElement('td');
    td.textContent = v;
    tr.append(td);
  }
  document.getElementById('log').append(tr);
}

function status(text) { document.getElementById('status').textContent = text; }

Object.assign(window, {
  got, gaps, statuses,

  /** Native EventSource; resolves once the stream is open (which means subscribed). */
  startNative(topics, types = []) {
    return new Promise((resolve) => {
      const es = new EventSource('/events?' + query(topics));
      const on = (e) => record('native', { ...JSON.parse(e.data), lastEventId: e.lastEventId });
      es.onmessage = on;
      types.forEach((t) => es.addEventListener(t, on));
      es.onopen = () => resolve();
    });
  },

  /** @microsoft/fetch-event-source, as the seed Vue app uses it. */
  startFES(topics) {
    return new Promise((resolve) => {
      fetchEventSource('/events?' + query(topics), {
        openWhenHidden: true,
        async onopen() { resolve(); },
        // Unlike EventSource, fetch-event-source also dispatches frames without data (Herald's
        // "retry:" and its id-only position line): skip them.
        onmessage(ev) {
          if (ev.data && ev.event !== 'herald.gap') record('fes', { ...JSON.parse(ev.data), lastEventId: ev.id });
        },
      });
    });
  },

  /** Our client; resolves once this tab's view of the connection is open. */
  startHerald(topics, options = {}) {
    return new Promise((resolve) => {
      const h = connect('', options);
      window.h = h;
      h.subscribe(topics, {
        onMessage: (m) => record('herald', m),
        onGap: (g) => gaps.push(g),
        onStatus: (s) => {
          statuses.push(s);
          status(`herald: ${s.state} via ${s.transport || '?'}${h.leader ? ' (leader tab)' : ' (follower tab)'}`);
          if (s.state === 'open') resolve();
        },
      });
    });
  },
});
window.harnessReady = true;
