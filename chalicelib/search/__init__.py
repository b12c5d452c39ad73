"""zot's search extension: the GraphQL API (zot's schema, ariadne) that zot's web UI and CLI use, answered from the index.

`http` serves the extension endpoints (search, discover, mgmt, userprefs); `gql` makes the shipped
`schema.graphql` executable and bounds queries; `queries` resolves each query; `catalog` reads the
index for one caller (per-repository summaries cached on the catalog items); `facts` builds the
schema's shapes from index items; `vulns` answers the CVE queries and `Vulnerabilities` fields from
the CVE result cache. It sits just below the API, which imports it lazily, and may import cve, the
model, storage, config and spec (never auth or the API).
"""
