/* wa-tasks pages: confirmations, no polling in a hidden tab, a login that expired during polling,
   and the dashboard charts.
   No inline scripts (the pages send a Content-Security-Policy without 'unsafe-inline' scripts). */
(function () {
  "use strict";

  // <form data-confirm="..."> asks before it is sent (works in tables that htmx re-renders).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  }, true);

  // A tab in the background does not poll: its parts catch up on the first tick after it is shown.
  // (An htmx trigger filter would need eval, which the Content-Security-Policy forbids.)
  document.addEventListener("htmx:beforeRequest", function (event) {
    var trigger = event.detail.elt && event.detail.elt.getAttribute("hx-trigger");
    if (document.visibilityState === "hidden" && trigger && trigger.indexOf("every ") === 0) {
      event.preventDefault();
    }
  });

  // A polled part that answers with the login page means the login expired: go there.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var url = event.detail.xhr && event.detail.xhr.responseURL;
    if (url && new URL(url).pathname === "/login") {
      event.preventDefault();
      window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
    }
  });

  var COLOURS = {
    sent: "#6b8fd6", delivered: "#2e9e5b", read: "#17663a", failed: "#d64545",
    p50: "#2e9e5b", p95: "#d9a227"
  };
  var SERIES = ["#3b6fd6", "#d9822b", "#7a4fd6", "#2e9e9e", "#c23c8e", "#6d8f2e", "#8a6d3b", "#4a5568"];

  function drawCharts() {
    var holder = document.getElementById("chart-data");
    if (!holder || typeof Chart === "undefined") { return; }
    var data = JSON.parse(holder.textContent);
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.animation = false;
    var labels = data.labels;

    document.querySelectorAll("canvas[data-chart=sends]").forEach(function (canvas) {
      var series = data.sends[canvas.getAttribute("data-session")];
      new Chart(canvas, {
        type: "bar",
        data: {
          labels: labels,
          datasets: ["sent", "delivered", "read", "failed"].map(function (kind) {
            return { label: kind, data: series[kind], backgroundColor: COLOURS[kind], stack: "s" };
          })
        },
        options: {
          plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
          scales: { x: { stacked: true, ticks: { maxTicksLimit: 8 } }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } }
        }
      });
    });

    var depth = document.querySelector("canvas[data-chart=depth]");
    if (depth) {
      var ids = Object.keys(data.depth.sessions);
      new Chart(depth, {
        type: "line",
        data: {
          labels: data.depth.labels,
          datasets: ids.map(function (sid, i) {
            return { label: sid, data: data.depth.sessions[sid], borderColor: SERIES[i % SERIES.length],
                     backgroundColor: SERIES[i % SERIES.length], pointRadius: 0, borderWidth: 2, spanGaps: false };
          })
        },
        options: {
          plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
          scales: { x: { ticks: { maxTicksLimit: 8 } }, y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "messages waiting" } } }
        }
      });
    }

    var latency = document.querySelector("canvas[data-chart=latency]");
    if (latency) {
      new Chart(latency, {
        type: "line",
        data: {
          labels: labels,
          datasets: ["p50", "p95"].map(function (kind) {
            return { label: kind === "p50" ? "median" : "95th percentile", data: data.latency[kind],
                     borderColor: COLOURS[kind], backgroundColor: COLOURS[kind], spanGaps: false, borderWidth: 2 };
          })
        },
        options: {
          plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
          scales: { x: { ticks: { maxTicksLimit: 8 } }, y: { beginAtZero: true, title: { display: true, text: "seconds, sent → delivered" } } }
        }
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawCharts);
  } else {
    drawCharts();
  }
})();
