"""CVE scanning: the OSV advisory database, the layer scanner, the result cache, and the queries on them.

It may import model, storage, config and spec; lifecycle, the API, search, the adapters and the CLI
import it (it never imports them). Nothing here loads with `import app`: the Lambda's handlers
import it lazily.

The interface (`service.CveService(registry, index, store)`, from a Service: `CveService(service.api.registry,
service.index, service.store)`), shaped after zot's GraphQL types so resolvers stay thin:

- `result(digest) -> ScanResult | NotScanned`: one image's cached result (CVEListForImage,
  CVEDiffListForImages). ScanResult.cves are dicts with zot's CVE fields (Id, Title, Description,
  Reference, Severity, PackageList of Name, PackagePath, InstalledVersion, FixedVersion);
  `summary.as_graphql()` is ImageVulnerabilitySummary. NotScanned.reason is "pending" (not scanned
  yet), "unscannable" or "no database".
- `briefs(digests) -> {digest: Brief}`: state, summary and CVE ids per digest, one projected BatchGetItem
  per 100 (what search's listings, ImageListForCVE and ImageListWithCVEFixed read).

The query rules (which tags are fixed, the diff, the base image, filters and pages) live in search
(`chalicelib/search/vulns.py` and `queries.py`) only, so there is one of each.

Every query reads only the cache (one GetItem per image, BatchGetItem for lists); scanning is
`scan(repo, digest)` and `rematch_all()`, run by `worker.ScanWorker` locally and by the queue and
schedule functions in app.py on AWS.

Modules: `versions` (ecosystem version orders, OSV ranges), `osv` (records to per-package advisories,
severity, CVE naming), `sources` (directory, zip, s3://, https://), `database` (versioned S3 layout and
the pointer), `layers` (streamed tars, whiteouts), `packages` (dpkg, apk, Python, npm, os-release),
`scanner`, `results` (the cache), `service`, `worker`.
"""
