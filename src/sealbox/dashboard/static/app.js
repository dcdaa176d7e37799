// Run progress on the overview: while a job runs, poll /ui/jobs every second, show how long it
// has been running, and reload the page when it ends (the cards then show its result).
"use strict";
(function () {
  const cells = document.querySelectorAll(".progress[data-job]");
  if (!cells.length) return;
  const params = new URLSearchParams(location.search);
  const started = params.get("started");
  const startedRun = Number(params.get("run") || 0);
  const wasRunning = new Set();
  const mib = (n) => `${(n / 1048576).toFixed(1)} MiB`;

  function finish(job, last) {
    cells.forEach((cell) => {
      if (cell.dataset.job === job) {
        cell.textContent = last ? `finished: ${last.result}` : "finished";
        cell.classList.remove("running");
      }
    });
    const url = new URL(location.href);
    url.searchParams.delete("started");
    url.searchParams.delete("run");
    url.searchParams.set("done", job);
    setTimeout(() => location.replace(url.toString()), 800);
  }

  async function tick() {
    let doc;
    try {
      const response = await fetch("/ui/jobs", { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) { location.href = "/login"; return; }
      doc = await response.json();
    } catch (e) {
      setTimeout(tick, 3000);
      return;
    }
    let anyRunning = false;
    cells.forEach((cell) => {
      const job = doc.jobs[cell.dataset.job];
      if (!job) return;
      if (job.running) {
        anyRunning = true;
        wasRunning.add(cell.dataset.job);
        const seconds = Math.max(0, Math.round(doc.now - job.running_since));
        let text = `running for ${seconds} s (run ${job.run_id})`;
        const p = job.progress;
        if (p && p.total_bytes > 0) {
          const percent = Math.min(100, Math.floor((100 * p.bytes) / p.total_bytes));
          text += `: ${percent}% (${mib(p.bytes)} of ${mib(p.total_bytes)}, ${p.files} files)`;
          if (p.bytes > 0 && seconds > 0 && percent < 100) {
            const left = Math.round((seconds * (p.total_bytes - p.bytes)) / p.bytes);
            text += `, about ${left} s left`;
          }
        }
        cell.textContent = text;
        cell.classList.add("running");
      }
    });
    // The run started from this page ended (perhaps before the first poll), or any run we saw.
    for (const job of new Set([...wasRunning, ...(started ? [started] : [])])) {
      const state = doc.jobs[job];
      const last = doc.last[job];
      if (state && !state.running && last && (job !== started || last.id >= startedRun)) {
        finish(job, last);
        return;
      }
    }
    if (anyRunning || started) setTimeout(tick, 1000);
  }
  tick();
})();
