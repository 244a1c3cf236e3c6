// Keeps a healing page's #live region current: re-fetches its fragment every few
// seconds, unless the operator is typing in it (a form must not vanish under them).
(function () {
  const region = document.getElementById("live");
  if (!region) return;
  const every = Number(region.dataset.every || 5000);
  async function refresh() {
    const busy = region.contains(document.activeElement) && document.activeElement.matches("input, textarea, select");
    if (!busy && !document.hidden) {
      const url = new URL(window.location.href);
      url.searchParams.set("fragment", "1");
      try {
        const response = await fetch(url, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" });
        if (response.ok) {
          region.innerHTML = await response.text();
          region.dataset.refreshed = String(Date.now());
        }
      } catch (e) { /* offline for a moment: the next tick tries again */ }
    }
    setTimeout(refresh, every);
  }
  setTimeout(refresh, every);
})();
