"""CVE scanning: the OSV advisory database, the layer scanner, the result cache, and the queries on them.

It may import model, storage, config and spec; lifecycle, the API, search, the adapters and the CLI
import it (it never imports them). Nothing here loads with `import app`: the Lambda's handlers
import it lazily.

The interface (`service.CveService(registry, index, store)`, from a Service: `CveService(service.api.registry,
service.index, service.store)`), shaped after zot's GraphQL types so resolvers stay thin:

- `cve_list_for_image(repo, reference) -> ScanResult | NotScanned`: CVEListForImage. ScanResult.cves
  are dicts with zot's CVE fields (Id, Title, Description, Reference, Severity, PackageList of Name,
  PackagePath, InstalledVersion, FixedVersion); `filtered(searched, excluded, severity)` applies
  searchedCVE/excludedCVE/severity; `summary.as_graphql()` is ImageVulnerabilitySummary.
  NotScanned.reason is "pending" (not scanned yet), "unscannable" or "no database".
- `images_affected_by(cve_id, repos=None) -> list[ImageRef]`: ImageListForCVE (tagged images).
- `images_with_fix(cve_id, repo) -> list[ImageRef]`: ImageListWithCVEFixed (zot's rule: never an image
  that was not scanned).
- `diff((repo, ref), (repo, ref)) -> ScanResult | NotScanned`: CVEDiffListForImages.
- `summary(repo, digest)`, `summaries(digests)`: ImageSummary.Vulnerabilities for one image or a listing.
- `briefs(digests) -> {digest: Brief}`: state, summary and CVE ids per digest, one projected BatchGetItem
  per 100 (what search's listings, ImageListForCVE and ImageListWithCVEFixed read).
- `resolve(repo, reference)` raises ManifestUnknown for an unknown tag or digest.

Every query reads only the cache (one GetItem per image, BatchGetItem for lists); scanning is
`scan(repo, digest)` and `rematch_all()`, run by `worker.ScanWorker` locally and by the queue and
schedule functions in app.py on AWS.

Modules: `versions` (ecosystem version orders, OSV ranges), `osv` (records to per-package advisories,
severity, CVE naming), `sources` (directory, zip, s3://, https://), `database` (versioned S3 layout and
the pointer), `layers` (streamed tars, whiteouts), `packages` (dpkg, apk, Python, npm, os-release),
`scanner`, `results` (the cache), `service`, `worker`.
"""
