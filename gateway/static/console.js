// The live intake. New cases arrive as server-sent events and are written into the page
// with textContent, never as markup: whatever a complaint says stays text.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var rows = document.getElementById("intake-rows");
  var table = document.getElementById("intake");
  if (!live || !rows || !table || !live.dataset.url) {
    if (live) { live.hidden = true; }
    return;
  }

  function show(state) {
    var labels = { live: live.dataset.labelLive, lost: live.dataset.labelLost,
                   connecting: live.dataset.labelConnecting };
    live.dataset.state = state;
    live.textContent = labels[state];
  }

  function cell(tr, cls, text) {
    var td = document.createElement("td");
    td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function badge(parent, cls, text) {
    var span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    parent.appendChild(document.createTextNode(" "));
    parent.appendChild(span);
  }

  // A count that is not on the page yet (the first case of its kind) gets its own entry.
  function bump(selector, list, param, value, label) {
    var el = document.querySelector(selector);
    if (el) {
      el.textContent = String(Number(el.textContent) + 1);
      return;
    }
    var ul = document.querySelector(list);
    if (!ul) { return; }
    var li = document.createElement("li");
    var link = document.createElement("a");
    var query = new URLSearchParams(window.location.search);
    query.set(param, value);
    query.delete("page");
    link.href = "?" + query.toString();
    link.textContent = label;
    var count = document.createElement("span");
    count.className = "count";
    count.dataset["count" + param.charAt(0).toUpperCase() + param.slice(1)] = value;
    count.textContent = "1";
    li.appendChild(link);
    li.appendChild(document.createTextNode(" "));
    li.appendChild(count);
    ul.appendChild(li);
  }

  function add(c) {
    var existing = document.getElementById("case-" + c.id);
    if (existing) {
      existing.classList.add("fresh");
      return;
    }
    var tr = document.createElement("tr");
    tr.id = "case-" + c.id;
    tr.className = "case fresh" + (c.overdue ? " overdue" : "") + (c.confidential ? " confidential" : "");
    cell(tr, "when", c.created);
    var ticket = cell(tr, "ticket", "");
    var link = document.createElement("a");
    link.href = c.url;
    link.textContent = c.ticket;
    ticket.appendChild(link);
    cell(tr, "channel", c.channel);
    var topic = cell(tr, "topic", c.topic_name);
    if (c.confidential) { badge(topic, "badge", table.dataset.confidentialLabel); }
    var status = cell(tr, "status", c.status_name);
    if (c.overdue) { badge(status, "sla", table.dataset.overdueLabel); }
    cell(tr, "reporter", c.reporter);
    cell(tr, "title", c.title);
    rows.insertBefore(tr, rows.firstChild);
    var empty = document.getElementById("empty");
    if (empty) { empty.parentNode.removeChild(empty); }
    if (c.outcome === "new") {
      var total = document.getElementById("total");
      total.textContent = String(Number(total.textContent) + 1);
      bump('[data-count-channel="' + CSS.escape(c.channel) + '"]', "ul.by-channel", "channel",
           c.channel, c.channel);
      bump('[data-count-topic="' + CSS.escape(c.topic) + '"]', "ul.by-topic", "topic",
           c.topic, c.topic_name);
    }
  }

  var source = new EventSource(live.dataset.url);
  source.addEventListener("ready", function () { show("live"); });
  source.addEventListener("case", function (event) { add(JSON.parse(event.data)); });
  source.addEventListener("expired", function () {
    source.close();
    window.location.reload();  // the log-in page, saying the session ended
  });
  source.addEventListener("error", function () {
    show("lost");
    if (source.readyState === EventSource.CLOSED) {
      window.setTimeout(function () { window.location.reload(); }, 5000);
    }
  });
})();
