// zotless web page: browses the registry through zot's search API (GraphQL) on the same origin.
// No framework, no build: the DOM is built with h(), data is never parsed as HTML.

const EXT = new URL("../", location.href);            // .../v2/_zot/
const SEARCH = new URL("ext/search", EXT);
const MGMT = new URL("ext/mgmt", EXT);
const V2 = new URL("../", EXT);                         // .../v2/
const AUTH_KEY = "zotless.auth";
const USER_KEY = "zotless.user";
const SORTS = [["RELEVANCE", "Relevance"], ["UPDATE_TIME", "Recently updated"], ["ALPHABETIC_ASC", "Name A–Z"],
  ["ALPHABETIC_DSC", "Name Z–A"], ["STARS", "Stars"], ["DOWNLOADS", "Downloads"]];
const SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"];
const main = document.getElementById("main");
const state = { authOn: false, bearer: false, query: "", os: "", arch: "", signed: false, sort: "RELEVANCE", platforms: { os: new Set(), arch: new Set() } };

class Unauthorized extends Error {}
class Missing extends Error {}

/** Builds an element: attributes (on* are listeners) and children (strings become text, never HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null && child !== false) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function authHeader() {
  return sessionStorage.getItem(AUTH_KEY);
}

async function request(url, options = {}) {
  const headers = { ...(options.headers || {}) };
  const auth = authHeader();
  if (auth) headers.Authorization = auth;
  const response = await fetch(url, { ...options, headers, credentials: "omit", cache: "no-store" });
  if (response.status === 401) throw new Unauthorized("log in to see this");
  return response;
}

/** One GraphQL document; errors become exceptions with the server's message. */
async function gql(query, variables = {}) {
  const response = await request(SEARCH, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ query, variables }) });
  if (response.status === 404) throw new Error("This registry's search extension is off (extensions.search.enable): the page needs it.");
  const document = await response.json().catch(() => ({}));
  if (document.errors && document.errors.length) {
    const message = document.errors.map((e) => e.message).join("; ");
    throw document.errors.every((e) => /not found/i.test(e.message || "")) ? new Missing(message) : new Error(message);
  }
  if (!response.ok) throw new Error(`search answered ${response.status}`);
  return document.data;
}

// Formatting

function size(value) {
  let n = Number(value || 0);
  const units = ["B", "KB", "MB", "GB", "TB"];
  let unit = 0;
  while (n >= 1000 && unit < units.length - 1) { n /= 1000; unit += 1; }
  return `${n.toFixed(unit && n < 10 ? 1 : 0)} ${units[unit]}`;
}

function when(value) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime()) || date.getUTCFullYear() < 1971) return "";
  return h("time", { datetime: date.toISOString(), title: date.toISOString() }, date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }));
}

function shortDigest(digest) {
  return (digest || "").replace(/^sha256:/, "").slice(0, 12);
}

function platforms(list) {
  const seen = [...new Set((list || []).filter((p) => p && (p.Os || p.Arch)).map((p) => [p.Os, p.Arch, p.Variant].filter(Boolean).join("/")))];
  return h("span", { class: "chips" }, seen.map((p) => h("span", { class: "chip" }, p)));
}

function severityChip(summary) {
  if (!summary || !summary.MaxSeverity || !summary.Count) return null;
  return h("span", { class: `chip sev-${summary.MaxSeverity}`, title: "most severe vulnerability" }, `${summary.Count} CVE · ${summary.MaxSeverity.toLowerCase()}`);
}

function safeLink(url, text) {
  return /^https?:\/\//i.test(url || "") ? h("a", { href: url, rel: "noopener noreferrer" }, text || url) : (text || url || "");
}

function repoHref(name) { return `#/repo/${encodeURIComponent(name)}`; }
function imageHref(name, tag) { return `#/image/${encodeURIComponent(name)}/${encodeURIComponent(tag)}`; }

function registryHost() {
  // On the bare execute-api URL the stage ("v2") is the registry's /v2, so the host alone is the registry.
  return location.host;
}

// Page frame

function show(title, ...content) {
  document.title = `${title} · zotless`;
  main.replaceChildren(...content.flat(2).filter((c) => c !== null && c !== undefined && c !== false));
  main.focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

function note(text, kind = "") {
  return h("p", { class: `note ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

function renderSession() {
  const nav = document.getElementById("session");
  const user = sessionStorage.getItem(USER_KEY);
  if (user) {
    nav.replaceChildren(h("span", { class: "muted" }, `Signed in as ${user}`), h("button", { type: "button", id: "logout", onclick: logout }, "Log out"));
  } else if (state.authOn) {
    nav.replaceChildren(h("a", { href: "#/login", id: "login-link" }, "Log in"));
  } else {
    nav.replaceChildren();
  }
}

function logout() {
  sessionStorage.removeItem(AUTH_KEY);
  sessionStorage.removeItem(USER_KEY);
  renderSession();
  location.hash = "#/";
  route();
}

async function handleFailure(error) {
  if (error instanceof Unauthorized) {
    if (authHeader()) {
      sessionStorage.removeItem(AUTH_KEY);
      sessionStorage.removeItem(USER_KEY);
      renderSession();
    }
    loginView("This registry needs you to log in to browse it.");
    return;
  }
  if (error instanceof Missing) {
    const hint = state.authOn && !authHeader() ? " If it is private, log in first." : "";
    show("Not found", h("h1", {}, "Not found"), note(`${error.message}.${hint}`), h("p", {}, h("a", { href: "#/" }, "Back to repositories")));
    return;
  }
  show("Error", note(error.message || String(error), "error"), h("p", {}, h("a", { href: "#/" }, "Back to repositories")));
}

// Login

function loginView(reason = "") {
  const status = h("div", { class: "status", role: "status" });
  const user = h("input", { name: "username", id: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", id: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "login", onsubmit: async (event) => {
    event.preventDefault();
    status.textContent = "Checking…";
    const value = "Basic " + btoa(String.fromCharCode(...new TextEncoder().encode(`${user.value}:${password.value}`)));
    const response = await fetch(V2, { headers: { Authorization: value }, credentials: "omit", cache: "no-store" });
    if (response.status === 200) {
      sessionStorage.setItem(AUTH_KEY, value);
      sessionStorage.setItem(USER_KEY, user.value);
      renderSession();
      location.hash = "#/";
      route();
    } else {
      status.textContent = "";
      status.append(note(response.status === 401 ? "Wrong user name or password." : `The registry answered ${response.status}.`, "error"));
    }
  } },
  h("label", { for: "username" }, "User name", user),
  h("label", { for: "password" }, "Password", password),
  h("button", { class: "primary", type: "submit" }, "Log in"), status);
  show("Log in", h("h1", {}, "Log in"), reason ? h("p", { class: "muted" }, reason) : null, form,
    h("p", { class: "muted" }, "Your credentials stay in this tab (sessionStorage) and go only to this registry, as the Authorization header."));
  user.focus();
}

// Repository list

const LIST_QUERY = `query List($q: String!, $filter: Filter, $page: PageInput) {
  GlobalSearch(query: $q, filter: $filter, requestedPage: $page) {
    Page { TotalCount ItemCount }
    Repos { Name LastUpdated Size StarCount DownloadCount Platforms { Os Arch }
      NewestImage { Tag Description IsSigned Vulnerabilities { MaxSeverity Count } } }
  }
}`;

let listToken = 0;

async function listView() {
  const search = h("input", { type: "search", id: "search", placeholder: "Search repositories  ( / )", "aria-label": "Search repositories", value: state.query, autocomplete: "off" });
  const os = filterSelect("os", "OS", state.platforms.os, state.os);
  const arch = filterSelect("arch", "Architecture", state.platforms.arch, state.arch);
  const signed = h("input", { type: "checkbox", id: "signed", checked: state.signed });
  const sort = h("select", { id: "sort", "aria-label": "Sort by" }, SORTS.map(([value, label]) => h("option", { value, selected: value === state.sort }, label)));
  const count = h("p", { class: "muted", id: "count", "aria-live": "polite" });
  const results = h("ul", { class: "cards", id: "repos" });
  const controls = h("div", { class: "controls", role: "search" }, search, os, arch, h("label", { for: "signed" }, signed, "Signed only"), sort);
  show("Repositories", h("h1", {}, "Repositories"), controls, count, results);
  let timer = 0;
  const refresh = () => {
    state.query = search.value.trim(); state.os = os.value; state.arch = arch.value; state.signed = signed.checked; state.sort = sort.value;
    loadList(count, results, [os, arch]);
  };
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(refresh, 150); });
  for (const control of [os, arch, signed, sort]) control.addEventListener("change", refresh);
  await loadList(count, results, [os, arch]);
}

function filterSelect(id, label, values, current) {
  return h("select", { id, "aria-label": label }, h("option", { value: "" }, `Any ${label}`),
    [...values].sort().map((v) => h("option", { value: v, selected: v === current }, v)));
}

function addOptions(select, values) {
  const have = new Set([...select.options].map((o) => o.value));
  for (const v of [...values].sort()) if (!have.has(v)) select.append(h("option", { value: v }, v));
}

async function loadList(count, results, [os, arch]) {
  const token = ++listToken;
  results.setAttribute("aria-busy", "true");
  const filter = {};
  if (state.os) filter.Os = [state.os];
  if (state.arch) filter.Arch = [state.arch];
  if (state.signed) filter.HasToBeSigned = true;
  const data = await gql(LIST_QUERY, { q: state.query, filter, page: { limit: 100, offset: 0, sortBy: state.sort } });
  if (token !== listToken) return; // a newer keystroke won
  const { Page, Repos } = data.GlobalSearch;
  for (const repo of Repos) for (const p of repo.Platforms || []) {
    if (p.Os) state.platforms.os.add(p.Os);
    if (p.Arch) state.platforms.arch.add(p.Arch);
  }
  addOptions(os, state.platforms.os);
  addOptions(arch, state.platforms.arch);
  count.textContent = Page.TotalCount === 1 ? "1 repository" : `${Page.TotalCount} repositories${Page.TotalCount > Repos.length ? ` (first ${Repos.length} shown)` : ""}`;
  results.replaceChildren(...Repos.map(repoCard));
  results.dataset.query = state.query;
  results.removeAttribute("aria-busy");
  if (!Repos.length) results.append(h("li", { class: "muted" }, state.query ? "No repository matches." : "Nothing here yet: push an image, e.g. with skopeo or docker."));
}

function repoCard(repo) {
  const newest = repo.NewestImage || {};
  return h("li", { class: "card" },
    h("h3", {}, h("a", { href: repoHref(repo.Name) }, repo.Name)),
    newest.Description ? h("p", { class: "about" }, newest.Description.split("\n")[0].slice(0, 200)) : null,
    h("div", { class: "meta" },
      newest.Tag ? h("span", {}, "newest ", h("code", {}, newest.Tag)) : null,
      h("span", {}, size(repo.Size)),
      when(repo.LastUpdated),
      platforms(repo.Platforms),
      newest.IsSigned ? h("span", { class: "chip signed" }, "signed") : null,
      severityChip(newest.Vulnerabilities)));
}

// Repository page

const REPO_QUERY = `query Repo($repo: String!) {
  ExpandedRepoInfo(repo: $repo) {
    Summary { Name LastUpdated Size Vendors StarCount DownloadCount Platforms { Os Arch }
      NewestImage { Tag Title Description Documentation Source Licenses Vendor Authors Labels } }
    Images { Tag Digest MediaType Size PushTimestamp LastUpdated IsSigned IsDeletable Title Description Documentation Source Licenses Vendor Authors
      Manifests { Digest Size Platform { Os Arch } } Vulnerabilities { MaxSeverity Count } }
  }
}`;

const TOOLS = {
  docker: (ref) => `docker pull ${ref}`,
  podman: (ref) => `podman pull${location.protocol === "http:" ? " --tls-verify=false" : ""} ${ref}`,
  skopeo: (ref) => `skopeo copy${location.protocol === "http:" ? " --src-tls-verify=false" : ""} docker://${ref} oci:${ref.split("/").pop().replace(":", "_")}`,
  oras: (ref) => `oras pull${location.protocol === "http:" ? " --plain-http" : ""} ${ref}`,
};

function pullBox(name, tags) {
  const tool = h("select", { id: "pull-tool", "aria-label": "Client" }, Object.keys(TOOLS).map((t) => h("option", { value: t }, t)));
  const tag = h("select", { id: "pull-tag", "aria-label": "Tag" }, tags.map((t) => h("option", { value: t }, t)));
  const command = h("code", { id: "pull-command" });
  const status = h("span", { class: "status", role: "status", id: "copy-status" });
  const update = () => { command.textContent = TOOLS[tool.value](`${registryHost()}/${name}:${tag.value}`); status.textContent = ""; };
  tool.addEventListener("change", update);
  tag.addEventListener("change", update);
  update();
  const copy = h("button", { type: "button", id: "copy", onclick: async () => {
    status.textContent = (await copyText(command.textContent)) ? "Copied" : "Select the command and copy it";
  } }, "Copy");
  return h("div", { class: "pull" }, tool, tags.length > 1 ? tag : null, command, copy, status);
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = h("textarea", { readonly: true, class: "offscreen" });
    area.value = text;
    document.body.append(area);
    area.select();
    const done = document.execCommand("copy");
    area.remove();
    return done;
  }
}

async function repoView(name) {
  const data = await gql(REPO_QUERY, { repo: name });
  const info = data.ExpandedRepoInfo;
  if (!info || !info.Summary || !info.Summary.Name) {
    show("Not found", h("h1", {}, "Repository not found"), note(`No repository ${name} that you may read.`), h("a", { href: "#/" }, "All repositories"));
    return;
  }
  const summary = info.Summary;
  // Runnable images (with a platform) first, newest push first: an SBOM or signature pushed later is not what one pulls.
  const runnable = (i) => (i.Manifests || []).some((m) => m.Platform && m.Platform.Os) ? 0 : 1;
  const images = [...(info.Images || [])].filter((i) => i.Tag)
    .sort((a, b) => runnable(a) - runnable(b) || String(b.PushTimestamp || "").localeCompare(String(a.PushTimestamp || "")));
  const newest = images.find((i) => !runnable(i)) || summary.NewestImage || {};
  const about = newest.Description || (images.find((i) => i.Description) || {}).Description;
  const facts = [["Title", newest.Title], ["Vendor", newest.Vendor || (summary.Vendors || []).join(", ")], ["Licenses", newest.Licenses],
    ["Authors", newest.Authors], ["Source", safeLink(newest.Source)], ["Documentation", safeLink(newest.Documentation)],
    ["Size", size(summary.Size)], ["Last updated", when(summary.LastUpdated)], ["Stars", summary.StarCount], ["Downloads", summary.DownloadCount]]
    .filter(([, v]) => v !== undefined && v !== null && v !== "");
  show(name,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Repositories"), " / "),
    h("h1", {}, name),
    about ? h("section", { "aria-label": "About" }, h("p", { class: "about", id: "about" }, about)) : null,
    h("dl", { class: "facts" }, facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    h("h2", {}, "Pull"),
    images.length ? pullBox(name, images.map((i) => i.Tag)) : note("No tags."),
    h("h2", {}, `Tags (${images.length})`),
    h("div", { class: "scroll" }, h("table", { id: "tags" },
      h("thead", {}, h("tr", {}, h("th", {}, "Tag"), h("th", { class: "hide-narrow" }, "Digest"), h("th", {}, "Platforms"),
        h("th", {}, "Size"), h("th", {}, "Pushed"), h("th", { class: "hide-narrow" }, "Status"), h("th", {}, h("span", { class: "skip" }, "Actions")))),
      h("tbody", {}, images.map((image) => tagRow(name, image))))));
}

function tagRow(name, image) {
  const platformList = (image.Manifests || []).map((m) => m.Platform);
  return h("tr", {},
    h("td", {}, h("a", { href: imageHref(name, image.Tag) }, image.Tag)),
    h("td", { class: "mono hide-narrow" }, shortDigest(image.Digest)),
    h("td", {}, platforms(platformList)),
    h("td", { class: "num" }, size(image.Size)),
    h("td", {}, when(image.PushTimestamp)),
    h("td", { class: "hide-narrow" }, h("span", { class: "chips" }, image.IsSigned ? h("span", { class: "chip signed" }, "signed") : null, severityChip(image.Vulnerabilities))),
    h("td", {}, image.IsDeletable ? h("button", { type: "button", class: "danger", "data-tag": image.Tag, "aria-label": `Delete tag ${image.Tag}`,
      onclick: () => deleteTag(name, image.Tag) }, "Delete") : null));
}

async function deleteTag(name, tag) {
  if (!confirm(`Delete the tag ${name}:${tag}? Pulls of this tag will fail.`)) return;
  const response = await request(new URL(`${name}/manifests/${encodeURIComponent(tag)}`, V2), { method: "DELETE" });
  if (response.status !== 202) {
    const body = await response.json().catch(() => ({}));
    throw new Error(`delete answered ${response.status}: ${(body.errors || []).map((e) => e.message).join("; ")}`);
  }
  await repoView(name);
  main.prepend(note(`Deleted ${name}:${tag}.`));
}

// Image page

const IMAGE_QUERY = `query Img($image: String!) {
  Image(image: $image) {
    RepoName Tag Digest MediaType Size LastUpdated PushTimestamp IsSigned IsDeletable Description ArtifactType
    SignatureInfo { Tool IsTrusted Author }
    Referrers { MediaType ArtifactType Size Digest Annotations { Key Value } }
    Manifests { Digest ConfigDigest Size LastUpdated Platform { Os Arch }
      Layers { Digest Size }
      History { Layer { Digest Size } HistoryDescription { Created CreatedBy Comment EmptyLayer } }
      Referrers { MediaType ArtifactType Size Digest Annotations { Key Value } } }
    Vulnerabilities { MaxSeverity Count UnknownCount LowCount MediumCount HighCount CriticalCount }
  }
  CVEListForImage(image: $image, requestedPage: {limit: 500, offset: 0, sortBy: SEVERITY}) {
    CVEList { Id Title Severity Reference PackageList { Name InstalledVersion FixedVersion } }
    Summary { MaxSeverity Count UnknownCount LowCount MediumCount HighCount CriticalCount }
  }
  BaseImageList(image: $image, requestedPage: {limit: 50, offset: 0}) { Results { RepoName Tag } }
  DerivedImageList(image: $image, requestedPage: {limit: 50, offset: 0}) { Results { RepoName Tag } }
}`;

function referrerKind(referrer) {
  const type = `${referrer.ArtifactType || ""} ${referrer.MediaType || ""}`.toLowerCase();
  if (/cosign|notary|notation|signature|\.sig/.test(type)) return "signature";
  if (/spdx|cyclonedx|sbom|syft/.test(type)) return "SBOM";
  if (/in-toto|attestation|intoto|dsse|provenance|slsa/.test(type)) return "attestation";
  return "other";
}

async function imageView(name, tag) {
  const data = await gql(IMAGE_QUERY, { image: `${name}:${tag}` });
  const image = data.Image;
  if (!image || !image.Digest) {
    show("Not found", h("h1", {}, "Image not found"), note(`No image ${name}:${tag} that you may read.`), h("a", { href: repoHref(name) }, name));
    return;
  }
  const manifests = image.Manifests || [];
  const referrers = [...(image.Referrers || []), ...manifests.flatMap((m) => m.Referrers || [])];
  const unique = [...new Map(referrers.map((r) => [r.Digest, r])).values()];
  const cves = data.CVEListForImage || {};
  const vulnerabilities = cves.Summary && cves.Summary.Count ? cves.Summary : image.Vulnerabilities;
  show(`${name}:${tag}`,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Repositories"), " / ", h("a", { href: repoHref(name) }, name), " /"),
    h("h1", {}, `${name}:${tag}`),
    image.Description ? h("p", { class: "about" }, image.Description) : null,
    h("dl", { class: "facts" },
      h("dt", {}, "Digest"), h("dd", { class: "mono" }, image.Digest),
      h("dt", {}, "Media type"), h("dd", { class: "mono" }, image.MediaType),
      h("dt", {}, "Size"), h("dd", {}, size(image.Size)),
      h("dt", {}, "Created"), h("dd", {}, when(image.LastUpdated) || "unknown"),
      h("dt", {}, "Pushed"), h("dd", {}, when(image.PushTimestamp)),
      h("dt", {}, "Signed"), h("dd", {}, image.IsSigned ? signedBy(image.SignatureInfo) : "no")),
    pullBox(name, [tag]),
    image.IsDeletable ? h("p", {}, h("button", { type: "button", class: "danger", id: "delete-tag", onclick: async () => {
      await deleteTag(name, tag);
      location.hash = repoHref(name);
    } }, `Delete tag ${tag}`)) : null,
    manifests.map((m) => manifestSection(m, manifests.length > 1)),
    h("h2", { id: "referrers" }, `Referrers (${unique.length})`),
    unique.length ? table(["Kind", "Artifact type", "Digest", "Size"], unique.map((r) => [referrerKind(r), h("span", { class: "mono" }, r.ArtifactType || r.MediaType),
      h("span", { class: "mono" }, shortDigest(r.Digest)), size(r.Size)]), "referrer-table")
      : h("p", { class: "muted" }, "No signatures, SBOMs or attestations refer to this image."),
    vulnerabilitySection(vulnerabilities, cves.CVEList || []),
    relatives("Base images", "This image is built on these (their layers are its first layers).", data.BaseImageList),
    relatives("Dependent images", "These images are built on this one.", data.DerivedImageList));
}

function signedBy(infos) {
  const list = (infos || []).map((s) => [s.Tool, s.Author, s.IsTrusted ? "trusted" : ""].filter(Boolean).join(" · "));
  return h("span", { class: "chip signed" }, list.length ? `signed: ${list.join(", ")}` : "signed");
}

function table(headings, rows, id) {
  return h("div", { class: "scroll" }, h("table", { id },
    h("thead", {}, h("tr", {}, headings.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c, i) => h("td", { class: headings[i] === "Size" ? "num" : null }, c)))))));
}

function manifestSection(manifest, titled) {
  const platform = [manifest.Platform && manifest.Platform.Os, manifest.Platform && manifest.Platform.Arch].filter(Boolean).join("/");
  const history = (manifest.History || []).map((step) => {
    const d = step.HistoryDescription || {};
    return [when(d.Created), h("code", { class: "about" }, (d.CreatedBy || d.Comment || "").replace(/^\/bin\/sh -c (#\(nop\) )?/, "")),
      d.EmptyLayer ? h("span", { class: "muted" }, "empty") : size(step.Layer && step.Layer.Size)];
  });
  return h("section", { class: "manifest", "aria-label": `Platform ${platform || manifest.Digest}` },
    titled ? h("h2", {}, `Platform ${platform || "unknown"}`, " ", h("span", { class: "muted mono" }, shortDigest(manifest.Digest))) : null,
    h(titled ? "h3" : "h2", {}, `Layers (${(manifest.Layers || []).length})`),
    table(["#", "Digest", "Size"], (manifest.Layers || []).map((l, i) => [i + 1, h("span", { class: "mono" }, l.Digest), size(l.Size)]), "layers"),
    h(titled ? "h3" : "h2", {}, "History"),
    history.length ? table(["Created", "Step", "Size"], history, "history") : h("p", { class: "muted" }, "The image's config has no history."));
}

function vulnerabilitySection(summary, list) {
  const counts = summary || {};
  const byLevel = { CRITICAL: counts.CriticalCount, HIGH: counts.HighCount, MEDIUM: counts.MediumCount, LOW: counts.LowCount, UNKNOWN: counts.UnknownCount };
  const rows = [...list].sort((a, b) => SEVERITIES.indexOf(a.Severity) - SEVERITIES.indexOf(b.Severity)).flatMap((cve) => {
    const packages = cve.PackageList && cve.PackageList.length ? cve.PackageList : [{}];
    return packages.map((p) => [h("span", { class: `chip sev-${cve.Severity}` }, (cve.Severity || "UNKNOWN").toLowerCase()),
      cve.Reference ? safeLink(cve.Reference, cve.Id) : cve.Id, p.Name || "", p.InstalledVersion || "",
      p.FixedVersion ? h("strong", {}, p.FixedVersion) : h("span", { class: "muted" }, "not fixed"), cve.Title || ""]);
  });
  return h("section", { "aria-labelledby": "vulns" },
    h("h2", { id: "vulns" }, `Vulnerabilities (${counts.Count || 0})`),
    counts.Count ? h("p", { class: "chips", id: "severity-counts" }, SEVERITIES.filter((s) => byLevel[s]).map((s) => h("span", { class: `chip sev-${s}` }, `${byLevel[s]} ${s.toLowerCase()}`))) : null,
    rows.length ? table(["Severity", "CVE", "Package", "Installed", "Fixed in", "Title"], rows, "cves")
      : h("p", { class: "muted" }, "No known vulnerabilities reported for this image (none found, or not scanned yet)."));
}

function relatives(title, help, result) {
  const images = (result && result.Results) || [];
  return h("section", {}, h("h2", {}, `${title} (${images.length})`),
    images.length ? h("ul", {}, images.map((i) => h("li", {}, h("a", { href: imageHref(i.RepoName, i.Tag) }, `${i.RepoName}:${i.Tag}`))))
      : h("p", { class: "muted" }, `None found. ${help}`));
}

// Routing

async function route() {
  const [, view, ...rest] = location.hash.replace(/^#/, "").split("/");
  const parts = rest.map(decodeURIComponent);
  try {
    if (view === "login") loginView();
    else if (view === "repo" && parts[0]) await repoView(parts[0]);
    else if (view === "image" && parts.length >= 2) await imageView(parts[0], parts.slice(1).join("/"));
    else await listView();
  } catch (error) {
    await handleFailure(error);
  }
}

async function start() {
  try {
    const response = await fetch(MGMT, { credentials: "omit" });
    const mgmt = response.ok ? await response.json() : {};
    const auth = (mgmt.http && mgmt.http.auth) || {};
    state.authOn = Boolean(auth.htpasswd || auth.bearer);
    state.bearer = Boolean(auth.bearer);
  } catch { /* no mgmt endpoint: treat as no logins */ }
  renderSession();
  window.addEventListener("hashchange", route);
  document.addEventListener("keydown", (event) => {
    const search = document.getElementById("search");
    if (event.key === "/" && search && document.activeElement !== search && !["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName)) {
      event.preventDefault();
      search.focus();
    }
  });
  window.addEventListener("unhandledrejection", (event) => handleFailure(event.reason));
  await route();
}

start();
