// Export links carry the filters the page shows now: htmx swaps only the table when a filter
// changes, so the link's href is rebuilt from its filter form at the moment it is followed.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-export-form]");
  if (!link) return;
  const form = document.querySelector(link.dataset.exportForm);
  if (!form) return;
  const params = new URLSearchParams();
  for (const [name, value] of new FormData(form)) {
    if (typeof value === "string" && value !== "") params.append(name, value);
  }
  const base = link.href.split("?")[0];
  link.href = params.toString() ? `${base}?${params}` : base;
});
