// Keeps an open status page current: every data-refresh seconds the page is fetched again and
// its <main> swapped in place (no flash, the scroll position kept). Without script the page
// reloads itself (<noscript> meta refresh).
(function () {
  "use strict";
  var seconds = parseInt(document.body.getAttribute("data-refresh"), 10) || 20;
  var live = document.getElementById("live");
  var busy = false;

  function say(text, failed) {
    if (!live) return;
    live.textContent = text;
    live.classList.toggle("failed", !!failed);
  }

  function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(window.location.href, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        // A page that is gone (404) or a server error: keep what is shown, say so.
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, "text/html");
        var main = next.getElementById("content");
        var current = document.getElementById("content");
        if (main && current) {
          current.replaceWith(document.adoptNode(main));
          document.title = next.title;
        }
        say("每 " + seconds + " 秒刷新", false);
      })
      .catch(function () {
        say("连接中断，正在重试 · offline, retrying", true);
      })
      .then(function () {
        busy = false;
      });
  }

  window.setInterval(refresh, seconds * 1000);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) refresh();
  });
})();
