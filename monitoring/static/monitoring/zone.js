/* The switch between UTC and the browser's own zone for the admin and the dashboard: a cookie the
   server reads (common/timezones.py), then the page again. */
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("[data-zone-choice]");
    if (!button) return;
    const zone = button.dataset.zoneChoice === "local" ? Intl.DateTimeFormat().resolvedOptions().timeZone : "";
    document.cookie = "opsite_tz=" + zone + "; path=/; max-age=" + (zone ? 31536000 : 0) + "; samesite=lax";
    window.location.reload();
  });
})();
