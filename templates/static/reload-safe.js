// A form POST that answered with its page (an error) names the GET address
// of the same screen; showing it in the address bar makes a reload fetch
// the page instead of resubmitting the form.
(function () {
  "use strict";
  var main = document.querySelector("main[data-get-url]");
  if (!main || !window.history || !history.replaceState) {
    return;
  }
  var url = main.getAttribute("data-get-url");
  // Same-origin paths only.
  if (url && url.charAt(0) === "/" && url.charAt(1) !== "/") {
    history.replaceState(null, "", url);
  }
})();
