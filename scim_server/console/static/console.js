// The console's one script: trees open one level at a time. A row's button fetches the next
// level's rows (HTML rendered by the server) and inserts them below it; a second click hides them.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button.expand");
  if (!button) return;
  const row = button.closest("tr");
  const depth = Number(row.dataset.depth);
  if (button.getAttribute("aria-expanded") === "true") {
    let next = row.nextElementSibling;
    while (next && Number(next.dataset.depth) > depth) {
      const after = next.nextElementSibling;
      next.remove();
      next = after;
    }
    button.setAttribute("aria-expanded", "false");
    button.textContent = "▸";
    return;
  }
  button.disabled = true;
  try {
    const response = await fetch(button.dataset.children, {credentials: "same-origin"});
    if (!response.ok) throw new Error(response.status);
    const body = document.createElement("tbody");
    body.innerHTML = await response.text();
    row.after(...body.children);
    button.setAttribute("aria-expanded", "true");
    button.textContent = "▾";
  } finally {
    button.disabled = false;
  }
});
