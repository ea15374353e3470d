// Follows a logout across the services shown in the page's frames. It asks
// the IdP for each service's result until none is pending (SAML SPs answer
// into their frame) and every front-channel frame has loaded, or until the
// wait is over, then goes on to the results page. Without JavaScript the
// frames load all the same and the page refreshes to the results.
document.addEventListener("DOMContentLoaded", function () {
  var page = document.querySelector("[data-logout-walk]");
  if (!page) {
    return;
  }
  var status = page.getAttribute("data-status");
  var next = page.getAttribute("data-next");
  var wait = parseInt(page.getAttribute("data-wait"), 10) || 10000;
  var start = Date.now();
  var loading = 0;
  var gone = false;
  page.querySelectorAll("iframe[data-frontchannel]").forEach(function (frame) {
    loading++;
    frame.addEventListener("load", function () {
      loading--;
    }, { once: true });
  });

  function show(row, result) {
    row.querySelectorAll("[data-result]").forEach(function (el) {
      el.hidden = el.getAttribute("data-result") !== result;
    });
  }

  function leave() {
    if (!gone) {
      gone = true;
      window.location.assign(next);
    }
  }

  function poll() {
    fetch(status, { credentials: "same-origin", cache: "no-store" })
      .then(function (resp) {
        if (!resp.ok) {
          throw new Error("status " + resp.status);
        }
        return resp.json();
      })
      .then(function (st) {
        var pending = 0;
        st.items.forEach(function (item, i) {
          var row = page.querySelector('[data-item="' + i + '"]');
          if (row) {
            show(row, item.result);
          }
          if (item.result === "pending") {
            pending++;
          }
        });
        if ((pending === 0 && loading <= 0) || Date.now() - start > wait) {
          leave();
          return;
        }
        setTimeout(poll, 400);
      })
      .catch(function () {
        if (Date.now() - start > wait) {
          leave();
          return;
        }
        setTimeout(poll, 1000);
      });
  }
  poll();
});
