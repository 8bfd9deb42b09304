/* jitsi-monitor beacon: times this pool's Jitsi servers from the user's browser.
   What it sends, and why: docs/beacon.md. No cookies, no ids, nothing about the page. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !window.fetch || !window.URL || !window.performance ||
      !navigator.sendBeacon) {
    return;
  }
  var here = new URL(script.src, location.href);
  var monitor = here.origin + here.pathname.replace(/beacon\.js$/, "");
  var pool = script.getAttribute("data-pool") || "";
  var region = script.getAttribute("data-region") || "";
  var KEY = "jitsi-monitor-beacon:" + pool;
  var TRIES = 4; // the first opens the connection and is dropped
  var WAIT = 200; // ms between requests to one member

  function mark(state) {
    // For whoever debugs the page (and the tests): what the script did last.
    script.setAttribute("data-state", state);
  }

  function later(ms) {
    return new Promise(function (done) { setTimeout(done, ms); });
  }

  function idle() {
    return new Promise(function (done) {
      if (window.requestIdleCallback) {
        window.requestIdleCallback(function () { done(); }, { timeout: 10000 });
      } else {
        setTimeout(done, 2000);
      }
    });
  }

  function due() {
    try {
      return Date.now() >= Number(window.localStorage.getItem(KEY) || 0);
    } catch (e) {
      return true; // no storage: the period cannot be kept, the limits still apply
    }
  }

  function remember(period) {
    try {
      window.localStorage.setItem(KEY, String(Date.now() + period * 1000));
    } catch (e) { /* storage refused: nothing to keep */ }
  }

  // A Jitsi meeting on the page: the external API's iframe, or any frame of a member.
  function meeting(origins) {
    var frames = document.getElementsByTagName("iframe");
    for (var i = 0; i < frames.length; i++) {
      var frame = frames[i];
      if (/^jitsiConferenceFrame/.test(frame.id || "") ||
          /^jitsiConferenceFrame/.test(frame.name || "")) {
        return true;
      }
      var src = frame.getAttribute("src");
      if (!src) {
        continue;
      }
      try {
        if (origins.indexOf(new URL(src, location.href).origin) >= 0) {
          return true;
        }
      } catch (e) { /* not a URL */ }
    }
    return false;
  }

  function median(values) {
    var sorted = values.slice().sort(function (a, b) { return a - b; });
    var n = sorted.length;
    return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  }

  function entryOf(url) {
    var entries = performance.getEntriesByName(url);
    return entries.length ? entries[entries.length - 1] : null;
  }

  // One request's round trip in ms: from Resource Timing when the server sends
  // Timing-Allow-Origin (request sent to first byte), else the request's duration.
  function timeOnce(url) {
    var unique = url + (url.indexOf("?") < 0 ? "?" : "&") + "jitsi-monitor-beacon=" +
      Math.random().toString(36).slice(2);
    var started = performance.now();
    return fetch(unique, {
      mode: "no-cors", cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer"
    }).then(function () {
      var took = performance.now() - started;
      var tries = 0;
      function look() {
        var entry = entryOf(unique);
        if (entry && entry.requestStart > 0 && entry.responseStart >= entry.requestStart) {
          return entry.responseStart - entry.requestStart;
        }
        if (entry && entry.duration > 0) {
          return entry.duration;
        }
        if (tries++ < 5) {
          return later(50).then(look); // the entry comes when the body has ended
        }
        return took;
      }
      return look();
    }, function () { return null; });
  }

  function timeMember(url) {
    var got = [];
    var i = 0;
    function next() {
      if (i++ >= TRIES) {
        return got.length ? median(got) : null;
      }
      return timeOnce(url).then(function (ms) {
        if (ms !== null && i > 1) {
          got.push(ms);
        }
        return later(WAIT).then(next);
      });
    }
    return next();
  }

  function run() {
    if (!pool) {
      mark("no-pool");
      return null;
    }
    if (!due()) {
      mark("period");
      return null;
    }
    if (meeting([])) {
      mark("meeting");
      return null;
    }
    return fetch(monitor + "beacon/pools/" + encodeURIComponent(pool), {
      credentials: "omit", referrerPolicy: "no-referrer"
    }).then(function (answer) {
      if (!answer.ok) {
        throw new Error("refused");
      }
      return answer.json();
    }).then(function (config) {
      var members = config.members || [];
      var origins = members.map(function (m) { return new URL(m.url).origin; });
      if (meeting(origins)) {
        mark("meeting");
        return null;
      }
      remember(Number(config.period) || 0);
      mark("timing");
      var rtt = {};
      var k = 0;
      function each() {
        if (k >= members.length) {
          return rtt;
        }
        var member = members[k++];
        return timeMember(member.url).then(function (ms) {
          if (ms !== null && ms > 0) {
            rtt[member.server] = Math.round(ms * 10) / 10;
          }
          return each();
        });
      }
      return each().then(function () {
        if (meeting(origins)) {
          mark("meeting"); // a meeting began meanwhile: its traffic comes first
          return null;
        }
        if (!Object.keys(rtt).length) {
          mark("nothing");
          return null;
        }
        var body = { pool: pool, rtt: rtt };
        if (region) {
          body.region = region;
        }
        var blob = new Blob([JSON.stringify(body)], { type: "text/plain" });
        mark(navigator.sendBeacon(monitor + "beacon", blob) ? "sent" : "not-sent");
        return null;
      });
    }).catch(function () {
      mark("refused");
    });
  }

  idle().then(run);
})();
