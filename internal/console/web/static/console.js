// Live updates: the server sends "change" when the cluster or the workspace
// changes; every element marked data-live then refreshes itself (htmx).
(function () {
  if (!window.EventSource || !document.body.hasAttribute("hx-headers")) return;
  var es = new EventSource("/events");
  es.addEventListener("change", function () {
    var active = document.activeElement;
    document.querySelectorAll("[data-live]").forEach(function (el) {
      // Never replace what the person is typing in.
      if (active && el.contains(active) && active.matches("input, select, textarea")) return;
      if (window.htmx) window.htmx.trigger(el, "live");
    });
  });
})();

// Live logs of an app's pods: a stream of JSON lines (server-sent events),
// each put into the page as text, never as HTML. The stream is closed when
// the person stops it, picks another component, or leaves the page (a
// boosted navigation replaces the body without unloading it).
(function () {
  var stream = null, out = null;
  var maxLines = 2000;
  function status(text) {
    var s = document.getElementById("logs-status");
    if (s) s.textContent = text;
  }
  function buttons(following) {
    var f = document.getElementById("logs-follow"), s = document.getElementById("logs-stop");
    if (f) f.disabled = following;
    if (s) s.disabled = !following;
  }
  function stop(text) {
    if (stream) { stream.close(); stream = null; }
    buttons(false);
    if (text) status(text);
  }
  function line(ev) {
    var d = JSON.parse(ev.data);
    var el = document.createElement("div");
    el.className = d.error ? "log-line log-error" : "log-line";
    var src = document.createElement("span");
    src.className = "log-src";
    src.textContent = d.pod + "/" + d.container + " ";
    el.appendChild(src);
    el.appendChild(document.createTextNode(d.error ? d.error : d.text));
    var atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
    out.appendChild(el);
    while (out.childNodes.length > maxLines) out.removeChild(out.firstChild);
    if (atEnd) out.scrollTop = out.scrollHeight;
  }
  function follow() {
    var box = document.getElementById("logs");
    out = document.getElementById("log-lines");
    if (!box || !out) return;
    stop();
    out.textContent = "";
    var comp = document.getElementById("logs-component").value;
    var url = box.getAttribute("data-src") + (comp ? "?component=" + encodeURIComponent(comp) : "");
    status("Connecting…");
    buttons(true);
    stream = new EventSource(url);
    stream.addEventListener("started", function () { status("Following" + (comp ? " " + comp : "") + "."); });
    stream.addEventListener("line", line);
    stream.addEventListener("failed", function (ev) { stop(JSON.parse(ev.data).error); });
    stream.onerror = function () { if (stream && stream.readyState === EventSource.CLOSED) stop("The stream ended."); };
  }
  document.addEventListener("click", function (e) {
    var t = e.target;
    if (!(t instanceof Element)) return;
    if (t.closest("#logs-follow")) follow();
    else if (t.closest("#logs-stop")) stop("Stopped.");
  });
  document.addEventListener("change", function (e) {
    if (stream && e.target instanceof Element && e.target.id === "logs-component") follow();
  });
  document.addEventListener("htmx:afterSwap", function () {
    if (stream && (!out || !document.body.contains(out))) stop();
  });
  window.addEventListener("pagehide", function () { stop(); });
})();
