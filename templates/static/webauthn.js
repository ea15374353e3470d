// Security keys and passkeys (WebAuthn). A form marked data-webauthn
// carries the server's options in data-options ("create" or "get" in
// data-webauthn); on submit this script asks the browser for the key,
// puts the answer (JSON, binary fields base64url) in the form's
// "credential" field and submits the form. There is no inline script: the
// page's CSP allows only this file.
(function () {
  "use strict";

  function toBytes(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }

  function fromBytes(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      return { type: d.type, id: toBytes(d.id), transports: d.transports };
    });
  }

  function creationOptions(o) {
    var pk = o.publicKey;
    pk.challenge = toBytes(pk.challenge);
    pk.user.id = toBytes(pk.user.id);
    pk.excludeCredentials = descriptors(pk.excludeCredentials);
    return { publicKey: pk };
  }

  function requestOptions(o) {
    var pk = o.publicKey;
    pk.challenge = toBytes(pk.challenge);
    pk.allowCredentials = descriptors(pk.allowCredentials);
    return { publicKey: pk };
  }

  function encode(cred) {
    var r = cred.response, out = {
      id: cred.id,
      rawId: fromBytes(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: fromBytes(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = fromBytes(r.attestationObject);
      if (r.getTransports) { out.response.transports = r.getTransports(); }
    } else {
      out.response.authenticatorData = fromBytes(r.authenticatorData);
      out.response.signature = fromBytes(r.signature);
      if (r.userHandle) { out.response.userHandle = fromBytes(r.userHandle); }
    }
    return JSON.stringify(out);
  }

  function show(id) {
    var el = document.getElementById(id);
    if (el) { el.hidden = false; }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var forms = document.querySelectorAll("form[data-webauthn]");
    if (!forms.length) { return; }
    if (!window.PublicKeyCredential || !navigator.credentials) {
      show("webauthn-unsupported");
      forms.forEach(function (f) {
        f.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      });
      return;
    }
    forms.forEach(function (form) {
      var busy = false;
      form.addEventListener("submit", function (ev) {
        var field = form.querySelector("input[name=credential]");
        if (field.value) { return; } // the answer is in: let the form go
        ev.preventDefault();
        if (busy) { return; }
        busy = true;
        var hint = document.getElementById("webauthn-failed");
        if (hint) { hint.hidden = true; }
        var options = JSON.parse(form.getAttribute("data-options"));
        var ask = form.getAttribute("data-webauthn") === "create" ?
          navigator.credentials.create(creationOptions(options)) :
          navigator.credentials.get(requestOptions(options));
        ask.then(function (cred) {
          field.value = encode(cred);
          form.submit();
        }, function () {
          busy = false;
          show("webauthn-failed");
        });
      });
    });
  });
})();
