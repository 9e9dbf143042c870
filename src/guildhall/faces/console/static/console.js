// Guildhall console: the few things a page does better with a script.
// Every page works without it; this only adds the live feed and image previews.
"use strict";

function startFeed(list) {
  let last = Number(list.dataset.last || 0);
  const url = list.dataset.feed;
  async function poll() {
    try {
      const response = await fetch(`${url}?after=${last}`, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const body = await response.json();
        for (const event of body.events) {
          const item = document.createElement("li");
          item.className = "new";
          const time = document.createElement("time");
          time.textContent = event.timestamp;
          const name = document.createElement("code");
          name.textContent = event.event;
          const data = document.createElement("span");
          data.className = "data";
          data.textContent = JSON.stringify(event.data);
          item.append(time, " ", name, " ", data);
          const empty = list.querySelector(".empty");
          if (empty) empty.remove();
          list.prepend(item);
        }
        last = Math.max(last, Number(body.last || 0));
      }
    } catch (error) {
      // The server is restarting or the network dropped: try again at the next tick.
    }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 1000);
}

function previewImages() {
  for (const input of document.querySelectorAll("input[type=file][data-preview]")) {
    const image = document.getElementById(input.dataset.preview);
    if (!image) continue;
    input.addEventListener("change", () => {
      const file = input.files && input.files[0];
      if (!file) { image.classList.remove("shown"); return; }
      image.src = URL.createObjectURL(file);
      image.classList.add("shown");
    });
  }
}

function confirmForms() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const feed = document.getElementById("feed");
  if (feed && feed.dataset.feed) startFeed(feed);
  previewImages();
  confirmForms();
});
