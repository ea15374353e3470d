// Sends a SAML message form on to the service provider as soon as the page
// has loaded. The form has a visible Continue button for browsers without
// JavaScript; the page's CSP allows this file (script-src 'self') and no
// inline script.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form[data-autosubmit]");
  if (form) {
    form.submit();
  }
});
