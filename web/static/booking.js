// Booking pages: small improvements over forms that work without JavaScript.
// - the booking form shows each site's local time as the organiser types (the server
//   computes it: GET /booking-form/site-times returns the same fragment it renders);
// - an alternative offered after a conflict fills the form in place;
// - guests can be added without a reload; guest links can be copied.
(function () {
  "use strict";

  var form = document.getElementById("booking-form");
  if (form) {
    var siteTimes = document.getElementById("site-times");
    var timer = null;

    function refreshSiteTimes() {
      if (!siteTimes) return;
      var params = new URLSearchParams();
      ["date", "start", "end", "zone"].forEach(function (name) {
        var field = form.elements.namedItem(name);
        if (field) params.set(name, field.value);
      });
      form.querySelectorAll('input[name="room"]:checked').forEach(function (box) {
        params.append("room", box.value);
      });
      fetch("/booking-form/site-times?" + params.toString(), { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) { if (html !== null) siteTimes.innerHTML = html; })
        .catch(function () { /* the server-rendered times stay */ });
    }

    function later() {
      window.clearTimeout(timer);
      timer = window.setTimeout(refreshSiteTimes, 250);
    }

    form.addEventListener("input", function (event) {
      var name = event.target.name;
      if (["date", "start", "end", "zone", "room"].indexOf(name) >= 0) later();
    });
    form.addEventListener("change", function (event) {
      var name = event.target.name;
      if (["date", "start", "end", "zone", "room"].indexOf(name) >= 0) later();
      if (name === "repeat") showRepeat();
    });

    var repeat = document.getElementById("repeat");
    var details = form.querySelector(".repeat-details");
    function showRepeat() {
      if (repeat && details) details.hidden = repeat.value === "none";
    }
    showRepeat();

    document.querySelectorAll("button.alternative").forEach(function (button) {
      button.addEventListener("click", function (event) {
        event.preventDefault();
        form.elements.namedItem("date").value = button.dataset.date;
        form.elements.namedItem("start").value = button.dataset.start;
        form.elements.namedItem("end").value = button.dataset.end;
        document.querySelectorAll("button.alternative").forEach(function (other) {
          other.setAttribute("aria-pressed", other === button ? "true" : "false");
        });
        refreshSiteTimes();
        var book = document.getElementById("book");
        if (book) book.focus();
      });
    });

    var add = document.getElementById("add-guest");
    var rows = document.getElementById("guest-rows");
    if (add && rows) {
      add.hidden = false;
      add.addEventListener("click", function () {
        var n = rows.querySelectorAll(".guest-row").length;
        var template = rows.querySelector(".guest-row");
        var row = template.cloneNode(true);
        var labels = [add.dataset.nameLabel, add.dataset.emailLabel];
        row.querySelectorAll("input").forEach(function (input, i) {
          var id = (i === 0 ? "guest-name-" : "guest-email-") + n;
          input.id = id;
          input.value = "";
          input.removeAttribute("aria-describedby");
          input.removeAttribute("aria-invalid");
          var label = row.querySelectorAll("label")[i];
          label.setAttribute("for", id);
          label.textContent = labels[i].replace("%(n)s", String(n + 1));
        });
        rows.appendChild(row);
        row.querySelector("input").focus();
      });
    }
  }

  document.querySelectorAll("button.copy").forEach(function (button) {
    var field = document.getElementById(button.dataset.copy);
    if (!field) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      field.select();
      if (navigator.clipboard) {
        navigator.clipboard.writeText(field.value).catch(function () {});
      }
    });
  });
})();
