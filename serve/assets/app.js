// vault serve: the only script. Reloads pages that ask for it (data-refresh, seconds) and shows
// how long ago the data was loaded. Works without it: every page is complete as served.
(function () {
  var loaded = Date.now();
  var refresh = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  var label = document.getElementById("updated");
  function tick() {
    var secs = Math.round((Date.now() - loaded) / 1000);
    if (label) {
      label.textContent = "loaded " + secs + "s ago" + (refresh ? ", refreshes every " + refresh + "s" : "");
    }
    if (refresh && secs >= refresh) {
      location.reload();
    }
  }
  tick();
  setInterval(tick, 1000);
})();
