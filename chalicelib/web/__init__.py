"""The registry's web page: static HTML, CSS and a JavaScript module shipped in the bundle, served by the API's router.

All data comes from the search API in the browser; this package only serves files. It may import spec only.
"""
