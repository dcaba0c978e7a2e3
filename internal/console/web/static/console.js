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
